"""GRPO and PPO under FSDP2 (`train.parallel = "fsdp"`), torchrun on CPU (gloo): two sharded
processes end on the model one process reaches on the same global batch.

The one process runs `batch_size = 2, grad_accum = 2`, the two `batch_size = 2` each: all
three sample the step's whole global batch of rollouts (4 prompts × 4 answers) with one
seed, and micro-batch r of the one is rank r's groups (pipelines.train_events.StepRows), so
they agree to float rounding (1e-5) whatever the sampled lengths. With KL to the reference:
a frozen whole copy (full fine-tuning), or the sharded policy with its adapter off (LoRA),
which every rank runs alike while sampling.

The policy is the tiny base briefly SFT-ed on count_letters, whose answers (0-3) it then
samples right now and then: a random model earns no reward, so GRPO would not move it.

PPO the same way: every process samples the step's whole rollout and cuts it into the same
global minibatches, each rank training on its part; its policy (the LM under the value head)
is an FSDP unit of its own, which sampling runs alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from store import Store
from tests.conftest import workbench
from tests.pipelines.rl_fixtures import SFT, eval_by_step, make_base, pairs_file, write_spec
from tests.pipelines.test_fsdp_stages import (
    assert_same_tensors,
    assert_two_ranks,
    ok,
    run_dir,
    torchrun,
)
from tests.pipelines.test_ppo import RM
from tests.pipelines.test_ppo import spec as ppo_spec

GRPO = """
pipeline = "grpo"
seed = 4
[model]
policy = "tiny-sft"
[data]
tasks = ["count_letters"]
n_prompts = 50
eval_n = 4
eval_max_new_tokens = 6
[grpo]
group_size = 4
max_new_tokens = 6
kl_coef = 0.05
{extra}
[train]
batch_size = 2
max_steps = 4
lr = 5e-3
warmup_steps = 1
sample_every = 2
checkpoint_every = 2
log_every = 1
device = "cpu"
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory, base) -> Path:
    """A home with the tiny base imported and SFT-ed on count_letters as tiny-sft."""
    h = tmp_path_factory.mktemp("home")
    ok(workbench("models", "import", str(base), "--name", "tiny-base", home=h))
    sft = SFT.format(base="tiny-base", name="tiny-sft").replace('"arithmetic"', '"count_letters"')
    ok(workbench("run", str(write_spec(h / "sft.toml", sft)), home=h))
    return h


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_fsdp_grpo_matches_one_process(home, tmp_path, lora):
    """The same model folder (and adapter), the same per-step reward (the same rollouts), and
    rank 0 measured the gathered policy at step 2 and at the end."""
    extra = "[lora]\nenabled = true\nr = 2\nalpha = 4\ndropout = 0.0" if lora else ""
    spec = write_spec(tmp_path / "grpo.toml", GRPO, extra=extra)
    tag = f"grpo-{lora}"
    ok(workbench("run", str(spec), "--set", "train.grad_accum=2",
                 "--set", f"output.model_name={tag}-one", home=home))  # fmt: skip
    ok(torchrun(home, "run", str(spec), "--set", "train.parallel=fsdp",
                "--set", f"output.model_name={tag}-two"))  # fmt: skip
    one, two = run_dir(home, f"{tag}-one"), run_dir(home, f"{tag}-two")
    assert_same_tensors(one / "model" / "model.safetensors", two / "model" / "model.safetensors")
    if lora:
        adapter = Path("adapter") / "adapter_model.safetensors"
        assert_same_tensors(one / adapter, two / adapter)
    assert_two_ranks(two)
    store = Store(home)
    rewards = [
        {m["step"]: m["value"] for m in store.metrics(r.name, ["reward"])} for r in (one, two)
    ]
    assert rewards[0] == pytest.approx(rewards[1]) and len(rewards[0]) == 4
    assert any(rewards[0].values()), "some answers were right: GRPO had gradients"
    sft = load_file(run_dir(home, "tiny-sft") / "model" / "model.safetensors")
    moved = load_file(two / "model" / "model.safetensors")
    assert max((moved[k] - sft[k]).abs().max().item() for k in sft) > 1e-3, "it trained"
    assert set(eval_by_step(store, two.name, "accuracy")) == {0, 2, 4}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """tests/pipelines/test_ppo.py's home: tiny-base and tiny-rm, a reward model from it."""
    root = tmp_path_factory.mktemp("ppo")
    home = root / "home"
    ok(workbench("models", "import", str(make_base(root / "tiny-base")), "--name", "tiny-base",
                 home=home))  # fmt: skip
    rm = write_spec(root / "rm.toml", RM, path=pairs_file(root / "pairs.jsonl"))
    ok(workbench("run", str(rm), home=home))
    return home


@pytest.mark.slow
def test_fsdp_ppo_matches_one_process(prepared, tmp_path):
    """PPO (tests/pipelines/test_ppo.py's tiny base and reward model, 6 steps: two rollouts of
    8 prompts, each cut into 4 minibatches of 4 rows): the one process at `grad_accum = 2` and
    the two sharded ranks save the same policy and log the same per-step reward; the value
    head, outside the policy's own FSDP unit, trained alike."""
    path = ppo_spec(tmp_path, steps=6)
    ok(workbench("run", str(path), "--set", "train.grad_accum=2",
                 "--set", "output.model_name=ppo-one", home=prepared))  # fmt: skip
    ok(torchrun(prepared, "run", str(path), "--set", "train.parallel=fsdp",
                "--set", "output.model_name=ppo-two"))  # fmt: skip
    one, two = run_dir(prepared, "ppo-one"), run_dir(prepared, "ppo-two")
    assert_same_tensors(one / "model" / "model.safetensors", two / "model" / "model.safetensors")
    assert_two_ranks(two)
    store = Store(prepared)
    rewards = [
        {m["step"]: m["value"] for m in store.metrics(r.name, ["reward"])} for r in (one, two)
    ]
    assert rewards[0] == pytest.approx(rewards[1]) and len(rewards[0]) == 6
    base = load_file(prepared.parent / "tiny-base" / "model.safetensors")
    moved = load_file(two / "model" / "model.safetensors")
    assert max((moved[k] - base[k]).abs().max().item() for k in base) > 1e-4, "it trained"
