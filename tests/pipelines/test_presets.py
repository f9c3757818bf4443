"""The shipped presets: every one validates; the README's pair (pretrain-tiny, then sft-tiny
on its model) runs as shipped for a few steps; the full-length demo stays as a slow test.

Work is sized to the check: the short test keeps each preset's data, model and schedule
shape and only cuts steps and eval sizes (about a minute on 2 busy cores). Timeouts are
coherent: each subprocess gets less than the test's own pytest timeout.
"""

from __future__ import annotations

import pytest

from pipelines.registry import load_spec
from pipelines.spec import list_presets
from store import Store

SHORT_PRETRAIN = ["train.max_steps=10", "train.eval_every=5", "train.eval_batches=2",
                  "train.sample_every=10", "train.sample_tokens=8", "train.checkpoint_every=10",
                  "train.warmup_steps=3"]  # fmt: skip
SHORT_SFT = ["train.max_steps=6", "train.eval_every=3", "train.eval_batches=2",
             "train.sample_every=0", "train.checkpoint_every=6", "data.n_per_task=40",
             "data.eval_n=3"]  # fmt: skip
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # steadier on a CPU shared with other jobs


def sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_validates_as_shipped(name):
    spec = load_spec(preset=name)
    assert spec.pipeline in ("echo", "pretrain", "sft", "reward", "dpo", "grpo", "ppo", "chain")


@pytest.mark.timeout(400)
def test_pretrain_tiny_then_sft_tiny_run_a_few_steps(wb, home):
    p = wb("run", "--preset", "pretrain-tiny", *sets(SHORT_PRETRAIN), timeout=180, env=ONE_THREAD)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    store = Store(home)
    pre = store.list_runs(pipeline="pretrain")[0]
    val = [m["value"] for m in store.metrics(pre["run_id"], ["val_loss"])]
    assert len(val) == 3 and val[-1] < val[0], val
    model = store.get_model("pretrain-tiny")
    assert model["run_id"] == pre["run_id"] and model["kind"] == "base"

    p = wb("run", "--preset", "sft-tiny", *sets(SHORT_SFT), timeout=180, env=ONE_THREAD)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    sft = store.list_runs(pipeline="sft")[0]
    assert sft["parents"] == [pre["run_id"]]
    assert store.get_model("sft-tiny")["kind"] == "assistant"
    assert {m["step"] for m in store.metrics(sft["run_id"], ["accuracy"])} == {0, 6}
    assert "workbench chat sft-tiny" in p.stdout


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.timeout(2400)
def test_pretrain_tiny_then_sft_tiny_full_length(wb, home):
    """The demo exactly as shipped (900 + 400 steps): the assistant beats its base model."""
    p = wb("run", "--preset", "pretrain-tiny", timeout=1100)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    store = Store(home)
    pre = store.list_runs(pipeline="pretrain")[0]
    val = [m["value"] for m in store.metrics(pre["run_id"], ["val_loss"])]
    assert val[-1] <= 0.6 * val[0], val
    assert len({s["step"] for s in store.samples(pre["run_id"])}) >= 3

    p = wb("run", "--preset", "sft-tiny", timeout=1100)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    sft = store.list_runs(pipeline="sft")[0]
    acc = {m["step"]: m["value"] for m in store.metrics(sft["run_id"], ["accuracy"])}
    base, final = acc[0], acc[max(acc)]
    print(f"sft-tiny held-out accuracy: base {base:.1%} -> fine-tuned {final:.1%}")
    assert final >= base + 0.15
