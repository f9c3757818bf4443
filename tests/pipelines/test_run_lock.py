"""One run, one process: the job holds an exclusive lock on its run folder for its lifetime,
so a second execute or resume of the same run fails at once instead of training twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipelines.registry import load_spec
from pipelines.runner import prepare_run
from store import Store
from tests.conftest import ROOT

RESUME = """
import sys
from pipelines.runner import RunLocked, execute, load_run_spec
from store import Store
store, run_id = Store(sys.argv[1]), sys.argv[2]
spec = load_run_spec(store, run_id)
try:
    out = execute(store, run_id, spec, resume=sys.argv[3] == "resume")
except RunLocked as e:
    print("LOCKED", e, flush=True)
    sys.exit(3)
print("RAN", out.status, flush=True)
"""


def start(home: Path, run_id: str, mode: str = "resume") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RESUME, str(home), run_id, mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def echo_run(home: Path, steps: int, interval: float) -> tuple[Store, str]:
    store = Store(home)
    spec = load_spec(
        preset="echo", overrides=[f"steps={steps}", f"interval_s={interval}", "checkpoint_every=2"]
    )
    return store, prepare_run(store, spec)


def events(store: Store, run_id: str, kind: str) -> list[dict]:
    lines = (store.runs_dir / run_id / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["kind"] == kind]


def test_two_resumes_at_once_run_the_job_once(home):
    store, run_id = echo_run(home, steps=40, interval=0.1)
    procs = [start(home, run_id), start(home, run_id)]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3], outs
    locked = next(out for out, _ in outs if out.startswith("LOCKED"))
    assert f"run {run_id} is already running (pid " in locked
    assert len(events(store, run_id, "run_started")) == 1
    finished = events(store, run_id, "run_finished")
    assert [e["status"] for e in finished] == ["done"]


def test_a_stopped_job_with_a_stale_heartbeat_is_not_resumed(home):
    store, run_id = echo_run(home, steps=400, interval=0.05)
    job = start(home, run_id, mode="fresh")
    run_dir = store.runs_dir / run_id
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not events_exist(run_dir, "metrics"):
        time.sleep(0.1)
    os.kill(job.pid, signal.SIGSTOP)
    try:
        old = time.time() - 3600
        os.utime(run_dir / "heartbeat", (old, old))  # looks crashed by its heartbeat
        second = start(home, run_id)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 3, out + err
        assert f"already running (pid {job.pid})" in out
        store.refresh()
        assert store.get_run(run_id)["status"] == "running"  # the lock says alive
    finally:
        os.kill(job.pid, signal.SIGKILL)
        os.kill(job.pid, signal.SIGCONT)
        job.communicate(timeout=60)
    assert len(events(store, run_id, "run_started")) == 1


def events_exist(run_dir: Path, kind: str) -> bool:
    path = run_dir / "events.jsonl"
    return path.exists() and f'"kind": "{kind}"' in path.read_text()
