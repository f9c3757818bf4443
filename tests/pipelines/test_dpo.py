"""The DPO pipeline through `workbench`: pairs from a file, LoRA, held-out implicit reward."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from store import Store
from tests.pipelines.rl_fixtures import eval_by_step, pairs_file, run_smollm2_preset, write_spec

SPEC = """
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
batch_size = 8
max_steps = 12
lr = 5e-3
warmup_steps = 1
sample_every = 6
checkpoint_every = 6
log_every = 2
device = "cpu"
[output]
model_name = "tiny-dpo"
"""


def write(tmp_path: Path, path: Path, extra: str = "") -> Path:
    return write_spec(tmp_path / "dpo.toml", SPEC, path=path, extra=extra)


@pytest.mark.parametrize("lora", [False, True])
def test_dpo_raises_heldout_implicit_reward_accuracy(wb, tmp_path, home, base, lora):
    assert wb("models", "import", str(base), "--name", "tiny-base").returncode == 0
    extra = "[lora]\nenabled = true\nr = 4\nalpha = 8\ndropout = 0.0" if lora else ""
    p = wb("run", str(write(tmp_path, pairs_file(tmp_path / "pairs.jsonl"), extra)))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    store = Store(home)
    rid = store.list_runs(pipeline="dpo")[0]["run_id"]
    acc = eval_by_step(store, rid, "reward_accuracy")
    print(f"DPO lora={lora}: held-out implicit reward accuracy {acc[0]:.2f} -> {acc[12]:.2f}")
    assert acc[0] == 0.5 and acc[12] >= 0.8, acc
    assert set(eval_by_step(store, rid, "accuracy")) >= {0, 12}
    model = store.get_model("tiny-dpo")
    assert model["kind"] == "assistant" and model["parent_model"] == "tiny-base"


def test_dpo_pair_with_chosen_equal_to_rejected_exits_2(wb, tmp_path, home, base):
    assert wb("models", "import", str(base), "--name", "tiny-base").returncode == 0
    data = tmp_path / "same.jsonl"
    data.write_text(json.dumps({"prompt": "p", "chosen": "4", "rejected": "4"}) + "\n")
    p = wb("run", str(write(tmp_path, data)))
    assert p.returncode == 2 and f"{data}:1" in p.stderr and "chosen must differ" in p.stderr
    assert Store(home).list_runs(pipeline="dpo") == []


@pytest.mark.realmodel
@pytest.mark.slow
@pytest.mark.heavy
def test_dpo_smollm2_lora_preset_raises_heldout_reward_accuracy(real_home):
    """The shipped preset, shortened: held-out implicit reward accuracy rises above ½."""
    run_smollm2_preset(
        real_home,
        "dpo-smollm2-lora",
        "train.max_steps=24",
        "train.sample_every=0",
        "data.n_prompts=32",
        "eval.eval_n=16",
        "output.model_name=dpo-test",
    )
    store = Store(real_home)
    rid = store.list_runs(pipeline="dpo")[0]["run_id"]
    acc = eval_by_step(store, rid, "reward_accuracy")
    print(f"dpo-smollm2-lora: held-out implicit reward accuracy {acc[0]:.2f} -> {acc[24]:.2f}")
    assert acc[24] > acc[0] + 0.2
