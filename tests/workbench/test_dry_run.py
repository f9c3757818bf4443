"""`workbench run --dry-run` through the real entry point: memory per rank by part, 6·N·D,
a wall time at a stated MFU of a measured peak; nothing started; a job that cannot fit is
refused (exit 2) with what to change. One estimate is checked against the peak RSS of the
real run it describes."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from engines.model_size import ModelSize
from tests.conftest import ROOT, workbench

# SmolLM2-135M's shape (its config.json), for the shipped LoRA preset without the download.
SMOLLM2 = {
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "vocab_size": 49152,
    "max_position_embeddings": 8192,
    "tie_word_embeddings": True,
}


def dry(home: Path, *args: str) -> dict:
    p = workbench("run", *args, "--dry-run", "--json", home=home, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)


def check_time(est: dict) -> None:
    assert est["peak_flops"] > 0 and "measured now" in est["peak_how"]
    rate = est["mfu"] * est["peak_flops"] * est["devices"]
    assert math.isclose(est["seconds"], est["flops"] / rate, rel_tol=1e-9)


def test_pretrain_tiny_prints_memory_compute_and_time_and_starts_nothing(home):
    p = workbench("run", "--preset", "pretrain-tiny", "--dry-run", home=home, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    params = ModelSize(4, 4, 128, 128, 2048).params
    tokens = 900 * 16 * 128  # steps × batch × context of the preset
    for part in ("weights", "gradients", "AdamW state", "activations", "total", "peak"):
        assert part in out, part
    assert f"parameters       {params:,}; training {params:,}" in out
    assert f"tokens D         {tokens:,} (900 steps × batch 16 × 128 context)" in out
    assert f"{6.0 * params * tokens:.3e} FLOPs = 6·N·D, N = {params:,}" in out
    assert "wall time" in out and "at MFU 40% (assumed for cpu" in out
    assert "fits" in out and "nothing started" in out
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())


def test_pretrain_json_figures_agree_and_fsdp_splits_the_state(home):
    params = ModelSize(4, 4, 128, 128, 2048).params
    est = dry(home, "--preset", "pretrain-tiny")
    m = est["memory"]
    assert (est["params"], est["trainable"], est["tokens"]) == (params, params, 900 * 16 * 128)
    assert (m["weights"], m["gradients"], m["optimizer"]) == (4 * params, 4 * params, 8 * params)
    assert est["flops"] == 6.0 * params * est["tokens"] and est["flops_formula"] == "6·N·D"
    assert est["per_rank"] == m["total"] + est["runtime"] and est["fits"]
    check_time(est)
    fsdp = dry(home, "--preset", "pretrain-tiny", "--set", "train.parallel=fsdp", "--nproc", "4")
    f = fsdp["memory"]
    assert f["shards"] == 4 and f["weights"] == params and f["optimizer"] == 2 * params
    assert f["activations"] == m["activations"] and f["gathered"] > 0
    assert fsdp["tokens"] == 4 * est["tokens"]  # 4 processes, each its own batch
    assert fsdp["ranks_here"] == 4 and fsdp["need"] == 4 * fsdp["per_rank"]  # one CPU host
    assert fsdp["compare"]['train.parallel = "ddp"'] > fsdp["need"]


def test_without_torchrun_or_nproc_the_dry_run_reads_the_launch_section(home):
    params = ModelSize(4, 4, 128, 128, 2048).params
    fsdp = ["--set", "train.parallel=fsdp"]
    p = workbench(
        "run", "--preset", "pretrain-tiny", "--set", "launch.nproc_per_node=2", *fsdp,
        "--dry-run", home=home, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    assert '2 processes, train.parallel = "fsdp"' in p.stdout
    assert "memory per rank (FSDP: split over 2)" in p.stdout
    assert "(2 processes on this host)" in p.stdout
    est = dry(home, "--preset", "pretrain-tiny", "--set", "launch.nproc_per_node=2", *fsdp)
    assert (est["nproc"], est["ranks_here"], est["memory"]["shards"]) == (2, 2, 2)
    assert est["memory"]["optimizer"] == 8 * params // 2
    assert est["need"] == 2 * est["per_rank"]
    # Two nodes of 2: a world of 4, 2 processes sharing this host's memory.
    nodes = ["--set", "launch.nnodes=2", "--set", "launch.rdzv_endpoint=host:29500"]
    est = dry(home, "--preset", "pretrain-tiny", "--set", "launch.nproc_per_node=2", *fsdp, *nodes)
    assert (est["nproc"], est["ranks_here"], est["memory"]["shards"]) == (4, 2, 4)
    # --nproc still wins over the section.
    est = dry(home, "--preset", "pretrain-tiny", "--set", "launch.nproc_per_node=2", "--nproc", "3")
    assert (est["nproc"], est["ranks_here"]) == (3, 3)


def test_a_job_that_cannot_fit_is_refused_with_what_to_change(home):
    big = ["--set", "model.n_layer=48", "--set", "model.n_embd=8192", "--set", "model.n_head=64"]
    p = workbench("run", "--preset", "pretrain-tiny", *big, "--dry-run", home=home, timeout=300)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "DOES NOT FIT" in p.stdout and "weights" in p.stdout  # the estimate, then the refusal
    err = p.stderr
    assert err.startswith("error: this job needs about") and "GB of cpu memory" in err
    assert "train.batch_size = " in err and "model.block_size = " in err
    assert "model.n_layer" in err
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())


def smollm2_shaped(folder: Path) -> int:
    """A model folder of SmolLM2-135M's shape: its config and a safetensors file whose header
    lists every tensor (the data a sparse run of zeros: nothing is downloaded or trained).
    Returns the parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**SMOLLM2)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    header, offset = {}, 0
    for name, t in model.state_dict().items():
        if name == "lm_head.weight":  # tied to the embedding: stored once
            continue
        n = t.numel() * 2
        header[name] = {
            "dtype": "BF16",
            "shape": list(t.shape),
            "data_offsets": [offset, offset + n],
        }
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    folder.mkdir(parents=True)
    config.save_pretrained(folder)
    with open(folder / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
    return offset // 2


def test_sft_lora_preset_optimizer_memory_far_below_full(home, tmp_path):
    base = smollm2_shaped(tmp_path / "smollm2-shape")
    assert base == 134_515_008  # SmolLM2-135M
    est = dry(
        home, "--preset", "sft-smollm2-lora", "--set", f"model.base={tmp_path / 'smollm2-shape'}"
    )
    lora = 30 * (8 * (576 + 576) + 8 * (576 + 3 * 64))  # r=8 on q_proj, v_proj, 30 layers
    m = est["memory"]
    assert est["lora"] is True and est["trainable"] == lora and est["params"] == base + lora
    assert (m["gradients"], m["optimizer"]) == (4 * lora, 8 * lora)
    assert m["weights"] == 4 * (base + lora)
    full = est["compare"]["full fine-tuning"]
    assert full - est["need"] == 12 * base - 16 * lora  # full: 16 B a weight; LoRA: 4
    assert m["optimizer"] < 0.005 * 8 * base  # LoRA's AdamW state: < 0.5% of full's
    tokens = 60 * 8 * 96  # steps × batch × data.max_len of the preset
    assert est["tokens"] == tokens
    assert est["flops"] == (4.0 * (base + lora) + 2.0 * lora) * tokens
    check_time(est)


PRETRAIN = """
pipeline = "pretrain"
seed = 3
[[data.sources]]
kind = "synthetic"
generator = "stories"
max_docs = 400
weight = 1.0
[tokenizer]
vocab_size = 2048
sample_bytes = 100000
[model]
n_layer = 4
n_head = 4
n_embd = 256
block_size = 128
[train]
batch_size = 32
max_steps = 2
warmup_steps = 1
eval_every = 0
eval_batches = 1
sample_every = 0
checkpoint_every = 0
log_every = 1
device = "cpu"
"""

PEAK_RSS = """
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
sys.stderr.write(p.stdout[-2000:] + p.stderr[-2000:])
"""


def run_peak(home: Path, *argv: str) -> tuple[int, int, str]:
    """`python argv…`'s exit status, the largest peak RSS (bytes) of its processes (under
    torchrun: of its ranks; RUSAGE_CHILDREN's ru_maxrss is the largest of every waited-for
    descendant) and the tail of its output."""
    env = {**os.environ, "WORKBENCH_HOME": str(home), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", PEAK_RSS, sys.executable, *argv]
    p = subprocess.run(
        cmd, check=False, capture_output=True, text=True, cwd=ROOT, timeout=600, env=env
    )
    rc, peak = map(int, p.stdout.split())
    return rc, peak, p.stderr


def peak_rss(home: Path, *argv: str) -> int:
    rc, peak, out = run_peak(home, *argv)
    assert rc == 0, out
    return peak


def check_ratio(label: str, est: dict, peak: int) -> None:
    ratio = est["per_rank"] / peak
    print(f"{label}: dry-run estimate {est['per_rank'] / 2**20:.0f} MB a process, peak RSS "
          f"{peak / 2**20:.0f} MB, estimate/measured {ratio:.2f}")  # fmt: skip
    assert 0.75 <= ratio <= 1.25, f"{label}: estimate/measured {ratio:.2f}"


@pytest.mark.slow
def test_the_estimate_is_within_a_quarter_of_a_real_runs_peak_rss(home, tmp_path):
    spec = tmp_path / "rss.toml"
    spec.write_text(PRETRAIN)
    est = dry(home, str(spec))
    check_ratio("full", est, peak_rss(home, "-m", "workbench", "run", str(spec)))


SFT_LORA = """
pipeline = "sft"
seed = 1
[model]
base = "rss-base"
[data]
tasks = ["arithmetic", "reverse"]
n_per_task = 200
max_len = 40
eval_n = 4
eval_max_new_tokens = 4
[lora]
enabled = true
[train]
batch_size = 32
max_steps = 3
warmup_steps = 1
eval_every = 0
sample_every = 0
checkpoint_every = 0
log_every = 1
device = "cpu"
[output]
model_name = "rss-lora"
"""


def rss_base(out: Path) -> Path:
    """A small random Llama (4 layers, width 256) with a BPE trained on task text."""
    from engines.model import build_model
    from engines.tasks import get_task
    from engines.tokenizer import train_bpe

    tasks = ("arithmetic", "reverse")
    texts = [e.prompt + " " + e.answer for t in tasks for e in get_task(t).examples(200, seed=0)]
    tok = train_bpe(texts, 400)
    size = ModelSize(n_layer=4, n_head=4, n_embd=256, block_size=128, vocab_size=len(tok))
    model = build_model(
        size, seed=0, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, bos_id=tok.eos_token_id
    )
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.mark.slow
def test_the_lora_estimate_is_within_a_quarter_of_a_real_runs_peak_rss(home, tmp_path):
    base = rss_base(tmp_path / "rss-base")
    p = workbench("models", "import", str(base), "--name", "rss-base", home=home)
    assert p.returncode == 0, p.stderr
    spec = tmp_path / "lora.toml"
    spec.write_text(SFT_LORA)
    est = dry(home, str(spec))
    assert est["lora"] is True and est["trainable"] < est["params"]
    check_ratio("LoRA", est, peak_rss(home, "-m", "workbench", "run", str(spec)))


@pytest.mark.slow
def test_the_fsdp_estimate_is_within_a_quarter_of_each_ranks_peak_rss(home, tmp_path):
    spec = tmp_path / "fsdp.toml"
    spec.write_text(PRETRAIN + 'parallel = "fsdp"\n[launch]\nnproc_per_node = 2\n')
    est = dry(home, str(spec))  # no --nproc: the [launch] section says 2
    assert (est["nproc"], est["memory"]["shards"]) == (2, 2)
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    rc, peak, out = run_peak(home, *torchrun, "-m", "workbench", "run", str(spec))
    assert "[val] step 2/2" in out, out  # both steps trained and evaluated
    assert rc == 0, out  # the final checkpoint saves (tied embedding included)
    check_ratio("FSDP x2", est, peak)


def test_on_gpus_the_refusal_names_how_many_fsdp_gpus_fit(monkeypatch):
    """The rule on CUDA (each rank its own GPU), with 24 GiB free a GPU: a 1.3B model at
    batch 4 × 1024 does not fit one; FSDP over enough GPUs does, and the refusal says so."""
    import engines.memory
    from pipelines import preflight as check
    from pipelines.spec import SpecError

    monkeypatch.setattr(engines.memory, "available_bytes", lambda device: 24 * 2**30)
    size = ModelSize(24, 16, 2048, 1024, 50304)
    shape = check.TrainShape(
        pipeline="pretrain", params=size.params, trainable=size.params, sequences=4,
        seq_len=1024, n_layer=24, n_embd=2048, vocab_size=50304, seq_field="model.block_size",
    )  # fmt: skip
    one = check.fit(shape, "cuda")
    assert not one.fits and one.ranks_here == 1
    with pytest.raises(SpecError) as err:
        check.check_fits(shape, "cuda", world_size=1)
    msg = str(err.value)
    assert 'train.parallel = "fsdp" over 4 GPUs (torchrun --nproc_per_node 4)' in msg
    four = check.fit(shape, "cuda", world_size=4, parallel="fsdp")
    two = check.fit(shape, "cuda", world_size=2, parallel="fsdp")
    assert four.fits and not two.fits
    assert four.memory.optimizer == -(-8 * size.params // 4)
    check.check_fits(shape, "cuda", world_size=4, parallel="fsdp")  # no refusal


def test_the_estimate_assumes_its_processes_without_touching_the_environment(monkeypatch, tmp_path):
    """The TUI estimates in a worker thread while jobs start from the same process: the dry
    run's process count must not pass through os.environ (a job would inherit it)."""
    from pipelines import preflight
    from pipelines.registry import load_spec
    from store import Store
    from workbench.ops.estimate import dry_run

    seen = []
    fit = preflight.fit

    def spying_fit(shape, device, **kw):
        seen.append((os.environ.get("WORLD_SIZE"), preflight.world_size_env(),
                     preflight.ranks_per_host()))  # fmt: skip
        return fit(shape, device, **kw)

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(preflight, "fit", spying_fit)
    job = load_spec(ROOT / "pipelines" / "presets" / "pretrain-tiny.toml")
    est = dry_run(Store(tmp_path), job, nproc=2, mfu=0.4)
    assert est.nproc == 2 and seen and seen[0] == (None, 2, 2)
    assert "WORLD_SIZE" not in os.environ and preflight.world_size_env() == 1
