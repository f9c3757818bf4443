"""Issue 10 #12 / issue 8: `Store.read()` is one connection and one transaction for every
Store call inside it; `list_runs` carries what `runs ls` shows, so a listing is one query."""

from __future__ import annotations

import pytest

from store import Store, db
from store.events import Metrics, RunStarted

from .conftest import new_run


def _runs(store: Store, n: int) -> None:
    for i in range(n):
        with new_run(store, f"pretrain-{i}") as log:
            log.append(RunStarted(pid=1, host="elsewhere"))
            log.append(Metrics(step=1, values={"loss": 2.0 + i}))
            log.append(Metrics(step=1, values={"loss": 3.0 + i}, split="val"))


def test_a_command_opens_the_store_once(store: Store) -> None:
    _runs(store, 17)
    store.refresh()
    before = db.connections_opened()
    with store.read():
        store.refresh()
        runs = store.list_runs()
        detail = [store.get_run(r["run_id"]) for r in runs[:3]]
        store.metrics("pretrain-0")
        store.samples("pretrain-0", limit=5)
        store.artifacts("pretrain-0")
        store.list_models()
    assert db.connections_opened() - before == 1
    assert {r["run_id"]: (r["loss"], r["val_loss"]) for r in runs}["pretrain-3"] == (5.0, 6.0)
    assert all(d is not None for d in detail)


def test_read_commits_at_the_end_and_rolls_back_on_error(store: Store) -> None:
    with store.read():
        store.create_run("a-1", "a", {})
        assert store.get_run("a-1") is not None
    assert store.get_run("a-1") is not None
    with pytest.raises(RuntimeError), store.read():
        store.create_run("a-2", "a", {})
        raise RuntimeError("boom")
    assert store.get_run("a-2") is None


def test_refresh_inside_read_ingests_a_bounded_chunk(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from store import eventlog

    monkeypatch.setattr(eventlog, "CHUNK_BYTES", 16384)
    with new_run(store, "pretrain-1") as log:
        for step in range(1000):
            log.append(Metrics(step=step, values={"loss": 1.0}))
    with store.read():
        first = store.refresh()["ingested"]
    assert 0 < first < 1000
    assert first + store.refresh()["ingested"] == 1000


def test_an_idle_refresh_opens_the_store_once(store: Store) -> None:
    _runs(store, 3)
    store.refresh()
    before = db.connections_opened()
    assert store.refresh() == {"ingested": 0, "crashed": []}
    assert db.connections_opened() - before == 1
