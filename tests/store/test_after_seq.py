"""Store.metrics(after_seq=…): only the rows logged after a seq, so a live chart reads what is
new (Run detail asks for it on every store change)."""

from __future__ import annotations

from store import Store
from store.events import Metrics

from .conftest import new_run


def test_metrics_after_seq_returns_only_newer_rows(store: Store) -> None:
    run_id = "pretrain-1"
    with new_run(store, run_id) as log:
        for step in (1, 2, 3):
            log.append(Metrics(step=step, values={"loss": 4.0 - step}))
    store.ingest()
    rows = store.metrics(run_id)
    seqs = [m["seq"] for m in rows]
    assert seqs == sorted(seqs) and len(seqs) == 3
    assert store.metrics(run_id, after_seq=None) == rows
    assert [m["step"] for m in store.metrics(run_id, after_seq=seqs[0])] == [2, 3]
    assert store.metrics(run_id, after_seq=seqs[-1]) == []
    with new_run(store, "pretrain-2") as other:
        other.append(Metrics(step=9, values={"loss": 0.5}))
    store.ingest()
    assert [m["step"] for m in store.metrics(run_id, ["loss"], after_seq=-1)] == [1, 2, 3]
