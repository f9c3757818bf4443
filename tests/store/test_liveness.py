"""Crash detection: dead pids on this host, stale heartbeats, zombies, and a run that revives."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from store import Store
from store.events import Metrics, RunStarted
from store.liveness import pid_alive

from .conftest import new_run

RUN = "pretrain-20250101-000000-abcd"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _beat(store: Store, run_id: str, age_s: float) -> None:
    path = store.run_dir(run_id) / "heartbeat"
    path.touch()
    then = time.time() - age_s
    os.utime(path, (then, then))


def test_dead_pid_on_this_host_marks_the_run_crashed(store: Store) -> None:
    with new_run(store, RUN) as log:
        log.append(RunStarted(pid=_dead_pid()))
    _beat(store, RUN, 0)
    assert store.refresh() == {"ingested": 1, "crashed": [RUN]}
    run = store.get_run(RUN)
    assert run["status"] == "crashed" and "exited without finishing" in run["reason"]
    assert run["finished_at"] is not None
    assert store.mark_crashed() == []


def test_live_pid_with_fresh_heartbeat_stays_running(store: Store) -> None:
    with new_run(store, RUN) as log:
        log.append(RunStarted(pid=os.getpid()))
    _beat(store, RUN, 1)
    assert store.refresh()["crashed"] == []
    run = store.get_run(RUN)
    assert run["status"] == "running" and run["heartbeat_at"] is not None


def test_stale_heartbeat_marks_the_run_crashed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    with new_run(store, RUN) as log:
        log.append(RunStarted(pid=os.getpid(), host="another-machine"))
    store.ingest()
    _beat(store, RUN, 100)
    monkeypatch.setenv("WORKBENCH_HEARTBEAT_STALE_S", "1000")
    assert store.mark_crashed() == []
    monkeypatch.delenv("WORKBENCH_HEARTBEAT_STALE_S")
    assert store.mark_crashed() == [RUN]  # default limit: 30 s
    assert "no heartbeat for 100 s" in store.get_run(RUN)["reason"]


def test_a_queued_run_with_a_dead_launcher_pid_crashes(store: Store) -> None:
    store.create_run(RUN, "pretrain", {})
    store.set_process(RUN, _dead_pid())
    assert store.mark_crashed(stale_after_s=0) == [RUN]


def test_a_crashed_run_that_logs_again_is_running(store: Store) -> None:
    with new_run(store, RUN) as log:
        log.append(RunStarted(pid=os.getpid(), host="elsewhere"))
        store.ingest()
        assert store.mark_crashed(stale_after_s=0) == [RUN]
        log.append(Metrics(step=1, values={"loss": 1.0}))
    store.ingest()
    assert store.get_run(RUN)["status"] == "running"


def test_zombie_counts_as_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 10
    while pid_alive(proc.pid) and time.time() < deadline:
        time.sleep(0.02)
    assert not pid_alive(proc.pid)  # exited but not yet reaped
    proc.wait()
    assert pid_alive(os.getpid())
