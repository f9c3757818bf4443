"""The README's main job and the SFT preset on top of it, exactly as shipped (minutes on CPU)."""

from __future__ import annotations

import pytest

from store import Store

pytestmark = pytest.mark.slow


def test_pretrain_tiny_then_sft_tiny(wb, home):
    p = wb("run", "--preset", "pretrain-tiny", timeout=1200)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    store = Store(home)
    pre = store.list_runs(pipeline="pretrain")[0]
    val = [m["value"] for m in store.metrics(pre["run_id"], ["val_loss"])]
    assert val[-1] <= 0.6 * val[0], val
    assert len({s["step"] for s in store.samples(pre["run_id"])}) >= 3
    assert store.get_model("pretrain-tiny")["run_id"] == pre["run_id"]

    p = wb("run", "--preset", "sft-tiny", timeout=1200)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    sft = store.list_runs(pipeline="sft")[0]
    assert sft["parents"] == [pre["run_id"]]
    acc = {m["step"]: m["value"] for m in store.metrics(sft["run_id"], ["accuracy"])}
    ended = {m["step"]: m["value"] for m in store.metrics(sft["run_id"], ["ended_turn"])}
    base, final = acc[0], acc[max(acc)]
    print(
        f"sft-tiny held-out accuracy: base {base:.1%} -> fine-tuned {final:.1%}; "
        f"ended turn {ended[0]:.0%} -> {ended[max(ended)]:.0%}"
    )
    assert final >= base + 0.15
    assert store.get_model("sft-tiny")["kind"] == "assistant"
