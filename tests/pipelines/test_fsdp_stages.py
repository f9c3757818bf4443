"""FSDP2 (`train.parallel = "fsdp"`) beyond pretraining, under torchrun on CPU (gloo): SFT
(full and LoRA), the reward model and DPO in two sharded processes end where one process on
the same global batch ends, and the saved model (and adapter) folders are the ones a single
process writes.

The one process runs `batch_size = 4, grad_accum = 2`, the two `batch_size = 4` each: both
draw the same global batch of 8 from one seed, micro-batch r of the one being rank r's rows,
and both average the two halves' mean losses (SFT's token-weighted mean, the reward model's
pair mean), so they agree to float rounding whatever the data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from store import Store
from tests.conftest import ROOT, workbench
from tests.pipelines.rl_fixtures import eval_by_step, pairs_file, write_spec
from tests.pipelines.test_fsdp import run_script


def torchrun(home: Path, *args: str, module: str = "workbench") -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run` of 2 processes of `-m module args` on this host."""
    env = {**os.environ, "WORKBENCH_HOME": str(home), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(29500 + (os.getpid() + 17) % 1000),
        "-m", module, *args,
    ]  # fmt: skip
    return subprocess.run(
        cmd, check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600
    )


def ok(p: subprocess.CompletedProcess) -> None:
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]


def run_dir(home: Path, name: str) -> Path:
    """The folder of the run that made the model `name`."""
    store = Store(home)
    return Path(store.get_run(store.get_model(name)["run_id"])["run_dir"])


def one_and_two(home: Path, spec: Path, tag: str) -> tuple[Path, Path]:
    """The run folders of `spec` in one process and in two FSDP processes (see the module
    docstring), models named `{tag}-one` and `{tag}-two`."""
    one = ["--set", "train.grad_accum=2", "--set", f"output.model_name={tag}-one"]
    ok(workbench("run", str(spec), *one, home=home))
    two = ["--set", "train.parallel=fsdp", "--set", f"output.model_name={tag}-two"]
    ok(torchrun(home, "run", str(spec), *two))
    return run_dir(home, f"{tag}-one"), run_dir(home, f"{tag}-two")


def assert_same_tensors(a: Path, b: Path, atol: float = 1e-5) -> None:
    x, y = load_file(a), load_file(b)
    assert x.keys() == y.keys()
    for k in x:
        assert torch.allclose(x[k], y[k], atol=atol), (k, (x[k] - y[k]).abs().max())


def events(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]


def assert_two_ranks(run: Path) -> list[dict]:
    evs = events(run)
    starts = [e for e in evs if e["kind"] == "run_started"]
    assert len(starts) == 1 and starts[0]["world_size"] == 2
    assert evs[-1]["kind"] == "run_finished" and evs[-1]["status"] == "done", evs[-1]
    return evs


@pytest.fixture(scope="module")
def home(tmp_path_factory, base) -> Path:
    """One workbench home for the module, with the tiny base model imported as tiny-base."""
    h = tmp_path_factory.mktemp("home")
    ok(workbench("models", "import", str(base), "--name", "tiny-base", home=h))
    return h


SFT = """
pipeline = "sft"
seed = 1
[model]
base = "tiny-base"
[data]
tasks = ["arithmetic"]
n_per_task = 60
max_len = 48
eval_n = 4
eval_max_new_tokens = 6
{extra}
[train]
batch_size = 4
max_steps = 6
lr = 5e-3
warmup_steps = 1
eval_every = 3
eval_batches = 2
sample_every = 3
checkpoint_every = 3
log_every = 1
device = "cpu"
"""


@pytest.mark.slow
def test_fsdp_sft_full_matches_one_process(home, tmp_path):
    """Full fine-tuning: the same model folder; rank 0 sampled and evaluated the gathered
    model; the checkpoint is a single process's (whole weights and AdamW state)."""
    spec = write_spec(tmp_path / "sft.toml", SFT, extra="")
    one, two = one_and_two(home, spec, "sft")
    assert_same_tensors(one / "model" / "model.safetensors", two / "model" / "model.safetensors")
    evs = assert_two_ranks(two)
    assert any(e["kind"] == "sample" and e["step"] == 3 for e in evs), "sampled at step 3"
    store = Store(home)
    assert 6 in eval_by_step(store, two.name, "accuracy"), "final held-out accuracy"
    assert_same_tensors(
        one / "checkpoints" / "step-6" / "model.safetensors",
        two / "checkpoints" / "step-6" / "model.safetensors",
    )
    o1, o2 = (
        torch.load(r / "checkpoints/step-6/optimizer.pt", weights_only=True) for r in (one, two)
    )
    assert o1["state"].keys() == o2["state"].keys()
    cfg = json.loads((two / "model" / "generation_config.json").read_text())
    assert isinstance(cfg["eos_token_id"], list), "the gathered copy keeps the turn ends"


@pytest.mark.slow
def test_fsdp_sft_lora_matches_one_process(home, tmp_path):
    """LoRA (frozen base, trainable adapters in the same FSDP units): the same adapter and the
    same merged model folder, which loads as a plain Llama."""
    lora = "[lora]\nenabled = true\nr = 2\nalpha = 4\ndropout = 0.0"
    spec = write_spec(tmp_path / "lora.toml", SFT, extra=lora)
    one, two = one_and_two(home, spec, "lora")
    adapter = Path("adapter") / "adapter_model.safetensors"
    assert_same_tensors(one / adapter, two / adapter)
    assert_same_tensors(one / "model" / "model.safetensors", two / "model" / "model.safetensors")
    assert json.loads((two / "adapter" / "adapter_config.json").read_text())["r"] == 2
    assert_two_ranks(two)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(two / "model", local_files_only=True)
    assert type(model).__name__ == "LlamaForCausalLM"


def only_pairs(path: Path, n: int = 80) -> Path:
    """Chosen/rejected records only (pairs_file's two-completion half): every ranking one
    pair, so one process's mean over 8 pairs is the mean of two processes' means over 4."""
    kept = [r for r in pairs_file(path.with_suffix(".all"), n=3 * n).read_text().splitlines()
            if "chosen" in r][:n]  # fmt: skip
    path.write_text("\n".join(kept) + "\n")
    return path


REWARD = """
pipeline = "reward"
seed = 2
[model]
base = "tiny-base"
[data]
path = "{path}"
heldout_fraction = 0.2
max_len = 48
[train]
batch_size = 4
max_steps = 6
lr = 3e-3
warmup_steps = 1
eval_every = 3
eval_batches = 2
checkpoint_every = 3
log_every = 1
device = "cpu"
"""


@pytest.fixture(scope="module")
def reward_runs(home, tmp_path_factory) -> tuple[Path, Path, Path]:
    """(spec, one process's run at batch 8, two FSDP processes' run at batch 4 each)."""
    tmp = tmp_path_factory.mktemp("reward")
    spec = write_spec(tmp / "rm.toml", REWARD, path=only_pairs(tmp / "pairs.jsonl"))
    ok(workbench("run", str(spec), "--set", "train.batch_size=8",
                 "--set", "output.model_name=rm-one", home=home))  # fmt: skip
    ok(torchrun(home, "run", str(spec), "--set", "train.parallel=fsdp",
                "--set", "output.model_name=rm-two"))  # fmt: skip
    return spec, run_dir(home, "rm-one"), run_dir(home, "rm-two")


@pytest.mark.slow
def test_fsdp_reward_model_matches_one_process(home, reward_runs):
    """The reward head and transformer: the same model folder; each rank trained on its own
    rankings of the global batch (with the same rows on both ranks it would not match)."""
    _, one, two = reward_runs
    assert_same_tensors(one / "model" / "model.safetensors", two / "model" / "model.safetensors")
    assert_two_ranks(two)
    store = Store(home)
    acc = eval_by_step(store, two.name, "pair_accuracy")
    assert acc[6] == eval_by_step(store, one.name, "pair_accuracy")[6]
    assert store.get_model("rm-two")["kind"] == "reward"


@pytest.mark.slow
def test_fsdp_reward_checkpoints_resume_across_process_counts(home, reward_runs):
    """The step-3 checkpoint of the two FSDP processes resumed by one process (batch 8), and
    the one process's resumed by two FSDP processes (batch 4 each): each ends on the model of
    the uninterrupted runs."""
    from pipelines.registry import load_spec
    from pipelines.runner import prepare_run

    spec, one, two = reward_runs
    store = Store(home)
    ends = {}
    for source, sets, name in ((two, ["train.batch_size=8"], "rm-from-two"),
                               (one, ["train.parallel=fsdp"], "rm-from-one")):  # fmt: skip
        job = load_spec(spec, overrides=[*sets, f"output.model_name={name}"])
        run_id = prepare_run(store, job)
        target = store.runs_dir / run_id / "checkpoints" / "step-3"
        shutil.copytree(source / "checkpoints" / "step-3", target)
        if source == two:
            ok(workbench("runs", "resume", run_id, home=home))
        else:
            ok(torchrun(home, run_id, "--resume", module="pipelines.distributed"))
        ends[name] = store.runs_dir / run_id
    for run in ends.values():
        steps = [e["step"] for e in events(run) if e["kind"] == "metrics" and e["split"] == "train"]
        assert min(steps) == 4, "resumed after step 3"
        assert_same_tensors(
            one / "model" / "model.safetensors", run / "model" / "model.safetensors"
        )


DPO = """
pipeline = "dpo"
seed = 5
[model]
policy = "tiny-base"
[data]
path = "{path}"
heldout_fraction = 0.25
max_len = 48
[eval]
eval_tasks = ["arithmetic"]
eval_n = 4
eval_max_new_tokens = 4
[dpo]
beta = 0.5
{extra}
[train]
batch_size = 4
max_steps = 6
lr = 5e-3
warmup_steps = 1
sample_every = 3
checkpoint_every = 3
log_every = 1
device = "cpu"
"""


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_fsdp_dpo_matches_one_process(home, tmp_path, lora):
    """DPO's policy sharded; its reference whole on every rank (a frozen copy) or, with
    LoRA, the sharded policy with its adapter off, which every rank runs alike. Rank 0
    measured the gathered policy at step 3 and at the end against the same reference."""
    extra = "[lora]\nenabled = true\nr = 2\nalpha = 4\ndropout = 0.0" if lora else ""
    path = pairs_file(tmp_path / "pairs.jsonl", n=60)
    spec = write_spec(tmp_path / "dpo.toml", DPO, path=path, extra=extra)
    one, two = one_and_two(home, spec, f"dpo-{lora}")
    assert_same_tensors(one / "model" / "model.safetensors", two / "model" / "model.safetensors")
    if lora:
        adapter = Path("adapter") / "adapter_model.safetensors"
        assert_same_tensors(one / adapter, two / adapter)
    assert_two_ranks(two)
    store = Store(home)
    assert set(eval_by_step(store, two.name, "reward_accuracy")) == {0, 3, 6}
    assert set(eval_by_step(store, two.name, "accuracy")) == {0, 3, 6}


def test_every_training_stage_accepts_fsdp():
    """Every stage with a trainer shards (GRPO and PPO: tests/pipelines/test_fsdp_rl.py), so
    the refusal naming those that do is never met."""
    from pipelines.registry import PIPELINES, spec_class
    from pipelines.spec import FSDP_PIPELINES

    training = {n for n in PIPELINES if "train" in spec_class(n).model_fields}
    assert training == {"pretrain", "sft", "reward", "dpo", "grpo", "ppo"}
    assert training <= set(FSDP_PIPELINES)
    for name, models in (("grpo", {"policy": "sft"}), ("ppo", {"policy": "sft", "reward": "rm"})):
        spec = {"pipeline": name, "model": models, "data": {"tasks": ["arithmetic"]},
                "train": {"parallel": "fsdp"}}  # fmt: skip
        assert spec_class(name).model_validate(spec).train.parallel == "fsdp"


LORA_ACROSS = """
import shutil, sys
from pathlib import Path
import torch
sys.path.insert(0, {root!r})
from engines import distributed as D
from tests.pipelines.test_fsdp_stages import lora_trainer

out = Path(sys.argv[1])
torch.set_num_threads(1)
info = D.init_distributed("cpu")
a = lora_trainer(out / "two", info.rank, info.world_size)  # writes step-3 and step-6
list(a.train())
b = lora_trainer(out / "from-one", info.rank, info.world_size)  # one process's step-3
list(b.train(resume=True))
states = [D.full_state_dict(t.model) for t in (a, b)]
if info.is_main:
    torch.save({{"two": states[0], "from_one": states[1], "from": b.resumed["step"]}},
               out / "result.pt")
D.leave()  # not destroy_process_group: engines.distributed.leave says why
"""


def lora_trainer(root: Path, rank: int = 0, world: int = 1):
    """A Trainer of a LoRA-wrapped tiny Llama (r 2 on q_proj and v_proj), FSDP under torchrun,
    on one global batch of 4 rows a step; checkpoints at step 3 and 6."""
    from engines.lora import apply_lora
    from engines.trainer import Trainer, causal_lm_loss
    from tests.engines.trainer_fixtures import ToyBatches, tiny_config, tiny_model

    torch.manual_seed(0)
    model, _ = apply_lora(tiny_model(), r=2, alpha=4, dropout=0.0, targets=["q_proj", "v_proj"])
    cfg = tiny_config(max_steps=6, checkpoint_every=3, parallel="fsdp", lr=1e-2)
    return Trainer(model, cfg, train_batches=ToyBatches(4, seed=0, rank=rank, world=world),
                   loss_fn=causal_lm_loss, ckpt_root=root)  # fmt: skip


@pytest.mark.slow
def test_fsdp_lora_checkpoints_resume_across_process_counts(tmp_path):
    """A peft model's checkpoint (base and adapter weights, the adapters' AdamW state) written
    by 2 FSDP processes resumes in 1, and one that 1 process wrote resumes in 2 (the sharded
    model loads it through an unsharded peft copy): all end on the uninterrupted weights."""
    out = tmp_path / "out"
    one = lora_trainer(tmp_path / "one")
    list(one.train())
    shutil.copytree(tmp_path / "one" / "step-3", out / "from-one" / "step-3")
    run_script(tmp_path / "across.py", LORA_ACROSS, out, port_offset=19)
    result = torch.load(out / "result.pt", weights_only=True)
    assert result["from"] == 3
    shutil.copytree(out / "two" / "step-3", tmp_path / "from-two" / "step-3")
    back = lora_trainer(tmp_path / "from-two")  # 1 process continues the 2-process checkpoint
    list(back.train(resume=True))
    assert back.resumed["step"] == 3
    plain = one.model.state_dict()
    assert any("lora_A" in k for k in plain)
    for k, v in plain.items():
        for name, state in (("two", result["two"]), ("from one", result["from_one"])):
            assert torch.allclose(state[k], v, atol=1e-5), (name, k)
        assert torch.allclose(back.model.state_dict()[k], v, atol=1e-5), ("from two", k)
