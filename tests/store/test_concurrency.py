"""Writers append to their own events.jsonl while readers refresh the store, in real processes.

WORKBENCH_STRESS_S (default 5) sets how long the writers run; raise it for a soak test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from store import Store

from .conftest import REPO

WRITER = """
import os, sys, time
from pathlib import Path
from store import EventLog
from store.events import Metrics, Note, RunFinished, RunStarted, Sample
home, run_id, duration = sys.argv[1], sys.argv[2], float(sys.argv[3])
folder = Path(home) / "runs" / run_id
log = EventLog(folder / "events.jsonl")
log.append(RunStarted(pid=os.getpid()))
end, step = time.time() + duration, 0
while time.time() < end:
    step += 1
    log.append(Metrics(step=step, values={"loss": 1.0 / step, "lr": 0.1}))
    if step % 10 == 0:
        log.append(Sample(step=step, prompt="p", completion="c" * (step % 40)))
        (folder / "heartbeat").touch()
    if step % 97 == 0:
        log.append(Note(text=f"step {step}"))
    time.sleep(0.002)
log.append(RunFinished(status="done"))
print(log.seq)
"""

READER = """
import random, sys, time
from store import Store
home, duration = sys.argv[1], float(sys.argv[2])
end, calls = time.time() + duration, 0
while time.time() < end:
    store = Store(home)
    store.refresh()
    store.list_runs()
    calls += 1
    time.sleep(random.uniform(0.1, 0.5))
print(calls)
"""


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
    )  # fmt: skip


def _expected_seqs(path: Path) -> dict[str, list[int]]:
    by_kind: dict[str, list[int]] = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        by_kind.setdefault(event["kind"], []).append(event["seq"])
    return by_kind


def _stored_seqs(store: Store, table: str, run_id: str) -> list[int]:
    rows = store.sql(f"SELECT DISTINCT seq FROM {table} WHERE run_id = ? ORDER BY seq", [run_id])
    return [seq for (seq,) in rows[1]]


def test_writers_and_readers_together_store_every_event_once(store: Store) -> None:
    duration = float(os.environ.get("WORKBENCH_STRESS_S", "5"))
    run_ids = [f"pretrain-20250101-00000{i}-beef" for i in range(3)]
    for run_id in run_ids:
        store.create_run(run_id, "pretrain", {})
        store.run_dir(run_id).mkdir()
    store.list_runs()  # the schema exists before anyone races for it
    writers = [_spawn(WRITER, str(store.home), r, str(duration)) for r in run_ids]
    readers = [_spawn(READER, str(store.home), str(duration + 0.5)) for _ in range(2)]
    outputs = [(p, *p.communicate(timeout=duration + 60)) for p in writers + readers]
    for proc, out, err in outputs:
        assert proc.returncode == 0, err
        assert int(out) > 0
    store.ingest()
    for run_id in run_ids:
        _check_run(store, run_id)


def _check_run(store: Store, run_id: str) -> None:
    expected = _expected_seqs(store.run_dir(run_id) / "events.jsonl")
    assert _stored_seqs(store, "samples", run_id) == expected["sample"]
    assert _stored_seqs(store, "notes", run_id) == expected["note"]
    assert _stored_seqs(store, "metrics", run_id) == expected["metrics"]
    (count,) = store.sql("SELECT count(*) FROM metrics WHERE run_id = ?", [run_id])[1]
    assert count == (2 * len(expected["metrics"]),)
    (samples,) = store.sql("SELECT count(*) FROM samples WHERE run_id = ?", [run_id])[1]
    assert samples == (len(expected["sample"]),)
    run = store.get_run(run_id)
    assert run["status"] == "done", run["reason"]
    last = max(max(seqs) for seqs in expected.values())
    assert store.sql("SELECT last_seq FROM ingest_offsets WHERE run_id = ?", [run_id])[1] == [
        (last,)
    ]
