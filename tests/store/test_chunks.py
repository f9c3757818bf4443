"""Issue 10 #7: ingest streams the log in bounded chunks, each its own short transaction with
the offset moved, so a long tail never holds the lock for long nor the whole file in memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store import Store, db, eventlog
from store import ingest as ingest_mod

from .conftest import REPO

RUN = "pretrain-20250101-000000-abcd"

POLLER = """
import sys, time
from pathlib import Path
from store import Store, StoreError
home, stop = sys.argv[1], Path(sys.argv[2])
calls, worst, failures = 0, 0.0, []
while not stop.exists():
    start = time.time()
    try:
        Store(home).sql("SELECT count(*) FROM metrics")
        calls += 1
    except StoreError as err:
        failures.append(str(err))
    worst = max(worst, time.time() - start)
    time.sleep(0.05)
print(calls, round(worst, 2), len(failures), failures[:1])
"""


def write_tail(path: Path, n: int) -> None:
    """A run_started line and n metrics lines, written fast (no EventLog per line)."""
    t = time.time()
    head = {"seq": 1, "t": t, "kind": "run_started", "pid": 1, "host": "elsewhere"}
    tpl = '{"seq": %d, "t": %.6f, "kind": "metrics", "step": %d, "values": {"loss": %.6f}}\n'
    with open(path, "w") as f:
        f.write(json.dumps(head) + "\n")
        f.writelines(tpl % (i + 1, t + i * 1e-4, i, 1.0 / i) for i in range(1, n + 1))


def _new_tail(store: Store, n: int) -> Path:
    store.create_run(RUN, "pretrain", {})
    store.run_dir(RUN).mkdir()
    path = store.run_dir(RUN) / "events.jsonl"
    write_tail(path, n)
    return path


def _crash_on_save(monkeypatch: pytest.MonkeyPatch, n: int) -> list[int]:
    """Make the n-th offset save of this test raise (a process killed mid-ingest); the
    saves after it go through."""
    saves: list[int] = []
    real = ingest_mod.save_offset

    def crash(conn, run_id, state) -> None:
        saves.append(state["byte_offset"])
        if len(saves) == n:
            raise RuntimeError("killed mid-ingest")
        real(conn, run_id, state)

    monkeypatch.setattr(ingest_mod, "save_offset", crash)
    return saves


def test_with_short_holds_each_chunk_is_its_own_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hold too short for a second chunk stores one: a crash at the third chunk keeps
    the first two, rows and offset together, and the next ingest stores the rest once."""
    path = _new_tail(store, 3000)
    monkeypatch.setattr(eventlog, "CHUNK_BYTES", 32 * 1024)
    monkeypatch.setattr(ingest_mod, "HOLD_S", 0.0)
    saves = _crash_on_save(monkeypatch, 3)
    with pytest.raises(RuntimeError):
        store.ingest()
    stored = store.sql("SELECT byte_offset, line_no FROM ingest_offsets")[1]
    assert stored == [(saves[1], stored[0][1])] and 0 < saves[1] <= 64 * 1024
    (count,) = store.sql("SELECT count(*) FROM metrics")[1][0]
    assert count == stored[0][1] - 1  # every line up to the offset, minus run_started
    before = db.connections_opened()
    assert store.ingest() == 3001 - stored[0][1]
    assert db.connections_opened() - before > 5  # many short transactions
    steps = store.sql("SELECT count(*), count(DISTINCT step) FROM metrics")[1][0]
    assert steps == (3000, 3000)
    assert store.sql("SELECT byte_offset FROM ingest_offsets")[1] == [(path.stat().st_size,)]


def test_a_hold_stores_many_chunks_in_one_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks read ahead are stored under one lock hold, in one transaction: a crash at
    its third chunk stores none of them, and the next ingest stores every line once."""
    path = _new_tail(store, 3000)
    monkeypatch.setattr(eventlog, "CHUNK_BYTES", 32 * 1024)
    monkeypatch.setattr(ingest_mod, "HOLD_S", 30.0)  # however slow the machine, one hold
    stores, real = [], ingest_mod._store_chunk

    def crash_on_third(conn, runs_dir, cur, chunk, *args, **kwargs):
        stores.append(chunk.end)
        if len(stores) == 3:
            raise RuntimeError("killed mid-ingest")
        return real(conn, runs_dir, cur, chunk, *args, **kwargs)

    monkeypatch.setattr(ingest_mod, "_store_chunk", crash_on_third)
    with pytest.raises(RuntimeError):
        store.ingest()
    assert len(stores) == 3
    assert store.sql("SELECT count(*) FROM ingest_offsets")[1] == [(0,)]
    assert store.sql("SELECT count(*) FROM metrics")[1] == [(0,)]
    before = db.connections_opened()
    assert store.ingest() == 3001
    assert db.connections_opened() - before == 2  # a look, then one hold
    steps = store.sql("SELECT count(*), count(DISTINCT step) FROM metrics")[1][0]
    assert steps == (3000, 3000)
    assert store.sql("SELECT byte_offset FROM ingest_offsets")[1] == [(path.stat().st_size,)]


def test_chunks_a_hold_has_no_time_for_wait_for_the_next(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every chunk read ahead but the first waits when the hold is over its time: each is
    stored by a later hold, once, in order."""
    _new_tail(store, 3000)
    monkeypatch.setattr(eventlog, "CHUNK_BYTES", 32 * 1024)
    rates = {"open": 0.0, "insert": 0.0, "commit_ratio": 0.0}  # read ahead all memory allows
    monkeypatch.setattr(ingest_mod, "_rates", rates)
    monkeypatch.setattr(ingest_mod, "HOLD_S", 1e-9)
    reads = []
    real = ingest_mod._read_ahead
    monkeypatch.setattr(ingest_mod, "_read_ahead", lambda *a: reads.append(real(*a)) or reads[-1])
    before = db.connections_opened()
    assert store.ingest() == 3001
    chunks = len(reads[0])
    assert chunks > 5 and all(r == [] for r in reads[1:])  # read once, stored hold by hold
    assert db.connections_opened() - before == chunks + 1
    rows = store.sql("SELECT count(*), count(DISTINCT step), max(step) FROM metrics")[1][0]
    assert rows == (3000, 3000, 3000)


def test_a_line_longer_than_a_chunk_is_read_whole(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventlog, "CHUNK_BYTES", 1024)
    store.create_run(RUN, "pretrain", {})
    path = store.run_dir(RUN) / "events.jsonl"
    path.parent.mkdir()
    big = {"seq": 1, "t": 1.0, "kind": "sample", "step": 1, "prompt": "x" * 10_000}
    path.write_text(json.dumps(big) + "\n" + json.dumps({**big, "seq": 2}) + "\n")
    assert store.ingest() == 2
    assert [len(s["prompt"]) for s in store.samples(RUN)] == [10_000, 10_000]


@pytest.mark.slow
def test_a_long_tail_beside_a_polling_reader(store: Store) -> None:
    """400k lines ingest while another process polls `sql` every 50 ms: it never gives up
    and never waits long, and memory stays bounded by the chunk, not the file."""
    n = int(os.environ.get("WORKBENCH_TAIL_LINES", "400000"))
    _new_tail(store, n)
    store.list_runs()
    stop = store.home / "stop"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    poller = subprocess.Popen(
        [sys.executable, "-c", POLLER, str(store.home), str(stop)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        assert store.ingest() == n + 1
    finally:
        stop.touch()
        out, err = poller.communicate(timeout=60)
    calls, worst, failures, _ = out.split(maxsplit=3)
    assert poller.returncode == 0, err
    assert int(failures) == 0 and int(calls) >= 3, out
    assert float(worst) < 10, out
    assert store.sql("SELECT count(*) FROM metrics")[1] == [(n,)]
