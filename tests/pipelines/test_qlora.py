"""QLoRA (`lora.quantize_base = "nf4"`): the refusals before a run exists, and a tiny model
trained a few steps over a 4-bit bitsandbytes base on CPU (the test-only WORKBENCH_QLORA_ON_CPU
hatch; skipped where bitsandbytes is not installed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from engines.lora import QLORA_ON_CPU_ENV
from pipelines.registry import load_spec
from pipelines.sft_spec import check_qlora
from pipelines.spec import SpecError
from tests.pipelines.rl_fixtures import make_base

SPEC = """
pipeline = "{pipeline}"
[model]
{ref} = "{base}"
[data]
tasks = ["reverse"]
[lora]
enabled = {enabled}
r = 2
alpha = 4
quantize_base = "nf4"
[train]
max_steps = 2
device = "cpu"
parallel = "{parallel}"
"""


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> Path:
    """A tiny random Llama folder (what `workbench run --dry-run` reads before it checks)."""
    return make_base(tmp_path_factory.mktemp("base") / "tiny-base", tasks=("reverse",))


def spec_file(tmp_path: Path, pipeline: str = "sft", *, enabled: bool = True,
              parallel: str = "ddp", base: Path | None = None) -> Path:  # fmt: skip
    """A job spec with a 4-bit base (the model folder is only read when `base` is given)."""
    path = tmp_path / f"{pipeline}.toml"
    path.write_text(SPEC.format(
        pipeline=pipeline, ref="base" if pipeline == "sft" else "policy",
        base=base or tmp_path / "no-model", enabled=str(enabled).lower(), parallel=parallel,
    ))  # fmt: skip
    return path


def refusal(path: Path) -> str:
    with pytest.raises(SpecError) as e:
        check_qlora(load_spec(path))
    return str(e.value)


def test_quantize_base_without_lora_is_refused_by_the_spec(wb, tmp_path):
    p = wb("run", str(spec_file(tmp_path, enabled=False)))
    assert p.returncode == 2, p.stdout + p.stderr
    assert "field 'lora'" in p.stderr and "set lora.enabled = true" in p.stderr


def test_cpu_refusal_names_the_field_and_the_fixes(tmp_path, monkeypatch):
    monkeypatch.delenv(QLORA_ON_CPU_ENV, raising=False)
    msg = refusal(spec_file(tmp_path))
    assert msg.startswith("field 'lora.quantize_base': QLoRA needs a CUDA GPU")
    assert "drop lora.quantize_base" in msg and "--quantize int4" in msg and "\n" not in msg


@pytest.mark.parametrize("pipeline", ["dpo", "grpo"])
def test_every_stage_with_a_lora_section_is_checked(tmp_path, monkeypatch, pipeline):
    monkeypatch.delenv(QLORA_ON_CPU_ENV, raising=False)
    assert "QLoRA needs a CUDA GPU" in refusal(spec_file(tmp_path, pipeline))


def test_missing_bitsandbytes_is_refused_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv(QLORA_ON_CPU_ENV, "1")  # stands in for a CUDA device
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import fails
    msg = refusal(spec_file(tmp_path))
    assert "QLoRA needs bitsandbytes" in msg and "pip install bitsandbytes" in msg


def test_fsdp_is_refused(tmp_path):
    assert 'train.parallel = "ddp"' in refusal(spec_file(tmp_path, parallel="fsdp"))


def test_memory_counts_the_4bit_linear_layers_at_nf4_bytes():
    from engines.lora import NF4_BYTES_PER_PARAM, qlora_weight_params

    assert NF4_BYTES_PER_PARAM == 0.5 + 1 / 64 + 4 / (64 * 256)  # codes + 8-bit absmax + fp32
    config = {"vocab_size": 100, "hidden_size": 10, "tie_word_embeddings": False}
    # 2 × 1000 fp32 embedding weights; 6400 linear weights × 0.5159 bytes = 3302 B ≈ 826 × 4 B
    assert qlora_weight_params(8400, config) == 2000 + 826


def test_workbench_run_refuses_qlora_on_cpu_before_the_run_exists(wb, tmp_path, home, base_model):
    spec = spec_file(tmp_path, base=base_model)
    for args in (["run"], ["run", "--dry-run"]):
        p = wb(*args, str(spec), env={QLORA_ON_CPU_ENV: ""})
        assert p.returncode == 2, p.stdout + p.stderr
        assert "lora.quantize_base" in p.stderr and "QLoRA needs a CUDA GPU" in p.stderr
    assert not list(home.glob("runs/*"))  # no run folder was made


def test_workbench_run_refuses_qlora_without_bitsandbytes(wb, tmp_path, home, base_model):
    blocked = tmp_path / "blocked"
    (blocked / "bitsandbytes").mkdir(parents=True)
    (blocked / "bitsandbytes" / "__init__.py").write_text("raise ImportError('blocked')\n")
    env = {QLORA_ON_CPU_ENV: "1", "PYTHONPATH": str(blocked)}
    p = wb("run", str(spec_file(tmp_path, base=base_model)), env=env)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "lora.quantize_base" in p.stderr and "pip install bitsandbytes" in p.stderr


# ---- the 4-bit base on CPU (bitsandbytes' CPU backend) ----------------------------------


class Rows:
    """The same (B, T) batch of token ids every step: enough for a loss to fall."""

    def __init__(self, ids):
        self.ids = ids

    def next_batch(self):
        return self.ids[:, :-1], self.ids[:, 1:]

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def qlora_model(base: Path):
    """The tiny base with its linear layers in 4 bits and r=2 adapters on q_proj, v_proj."""
    from engines.lora import apply_lora
    from engines.model_folders import load_causal_lm

    model, tok = load_causal_lm(base, device="cpu")
    model, share = apply_lora(model, r=2, alpha=4, dropout=0.0, targets=["q_proj", "v_proj"],
                              quantize_base="nf4")  # fmt: skip
    return model, tok, share


def train(model, ids, ckpt_root: Path) -> list[float]:
    """Six steps of the real trainer on one batch (a checkpoint every 3); the train losses."""
    from engines.trainer import TrainConfig, Trainer, causal_lm_loss

    cfg = TrainConfig(max_steps=6, lr=1e-2, min_lr=1e-3, warmup_steps=0, weight_decay=0.0,
                      grad_clip=1.0, grad_accum=1, eval_every=0, eval_batches=1, sample_every=0,
                      checkpoint_every=3, keep_checkpoints=2, log_every=1, compile=False,
                      device="cpu", peak_flops=1e12)  # fmt: skip
    trainer = Trainer(model, cfg, train_batches=Rows(ids), loss_fn=causal_lm_loss,
                      ckpt_root=ckpt_root)  # fmt: skip
    records = list(trainer.train())
    return [r["values"]["loss"] for r in records if r["type"] == "metrics"
            and r["split"] == "train"]  # fmt: skip


def test_qlora_trains_adapters_over_a_4bit_base_on_cpu(tmp_path, monkeypatch, base_model):
    bnb = pytest.importorskip("bitsandbytes")
    import torch
    from peft import PeftModel

    from engines.checkpoint import load_checkpoint
    from engines.lora import merged_model
    from engines.model_folders import load_causal_lm

    monkeypatch.setenv(QLORA_ON_CPU_ENV, "1")
    model, tok, share = qlora_model(base_model)
    q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj.get_base_layer(), bnb.nn.Linear4bit)
    assert type(q_proj.get_base_layer().weight).__name__ == "Params4bit"
    mlp = model.base_model.model.model.layers[0].mlp.down_proj  # not a target: 4-bit, no LoRA
    assert isinstance(mlp, bnb.nn.Linear4bit)
    trains = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trains and all("lora_" in n for n in trains) and 0 < share < 0.1
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    ids = tok(["hello olleh abc cba"] * 4, return_tensors="pt").input_ids
    losses = train(model, ids, tmp_path / "ckpt")
    assert len(losses) == 6 and losses[-1] < losses[0], losses
    after = dict(model.named_parameters())
    assert all(not torch.equal(before[n], after[n].detach()) for n in trains if "lora_B" in n)
    model.eval()
    with torch.no_grad():
        want = model(input_ids=ids).logits

    resumed, _, _ = qlora_model(base_model)  # what a resumed run loads: same codes, same output
    load_checkpoint(tmp_path / "ckpt" / "step-6", model=resumed.eval())
    with torch.no_grad():
        assert torch.equal(resumed(input_ids=ids).logits, want)

    model.save_pretrained(tmp_path / "adapter")  # the adapter alone, onto the fp base folder
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base_model)
    fp_base, _ = load_causal_lm(base_model, device="cpu")
    loaded = dict(PeftModel.from_pretrained(fp_base, tmp_path / "adapter").named_parameters())
    assert all(torch.equal(after[n].detach(), loaded[n]) for n in trains if "lora_B" in n)

    merged = merged_model(model)  # dequantized: a plain model, no bitsandbytes layers
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in merged.modules())
    with torch.no_grad():
        got = merged(input_ids=ids).logits
    assert (got - want).abs().max() < 0.05  # the 4-bit forward computes in bf16


def test_workbench_run_sft_trains_over_a_4bit_base(wb, tmp_path, home, base_model):
    """The SFT stage passes lora.quantize_base to its model: the checkpoint holds the 4-bit
    base (bitsandbytes' quantization state beside the packed weights), the run ends done and
    its merged model loads without bitsandbytes' layers."""
    pytest.importorskip("bitsandbytes")
    from safetensors import safe_open

    from engines.model_folders import load_causal_lm

    p = wb("run", str(spec_file(tmp_path, base=base_model)), env={QLORA_ON_CPU_ENV: "1"})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    [run] = list(home.glob("runs/sft-*"))
    [ckpt] = sorted(run.glob("checkpoints/step-*"))[-1:]
    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any("quant_state" in k or k.endswith(".absmax") for k in keys), keys[:20]
    merged, _ = load_causal_lm(run / "model", device="cpu")
    assert all(type(m).__name__ != "Linear4bit" for m in merged.modules())
