"""Crash detection: dead pids on this host, stale heartbeats, zombies, and a run that revives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from store import Store
from store.events import Metrics, RunStarted
from store.liveness import lock_held, pid_alive

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


LOCKER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
time.sleep(60)
"""


def _hold_lock(store: Store, run_id: str) -> subprocess.Popen[str]:
    path = store.run_dir(run_id) / "lock"
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(path)], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_held_run_lock_means_alive_whatever_the_heartbeat(store: Store) -> None:
    """A stopped (SIGSTOP) job keeps its lock: not crashed, even with a stale heartbeat and
    a pid this host cannot see; once its lock is free, it is."""
    with new_run(store, RUN) as log:
        log.append(RunStarted(pid=os.getpid(), host="another-machine"))
    store.ingest()
    _beat(store, RUN, 100)
    holder = _hold_lock(store, RUN)
    try:
        os.kill(holder.pid, signal.SIGSTOP)
        assert store.mark_crashed() == []
        assert store.get_run(RUN)["status"] == "running"
    finally:
        os.kill(holder.pid, signal.SIGCONT)
        holder.kill()
        holder.wait()
    assert store.mark_crashed() == [RUN]


def test_a_free_lock_with_a_fresh_heartbeat_is_still_alive(store: Store) -> None:
    with new_run(store, RUN) as log:
        log.append(RunStarted(pid=os.getpid(), host="another-machine"))
    (store.run_dir(RUN) / "lock").touch()
    _beat(store, RUN, 1)
    store.ingest()
    assert store.mark_crashed() == []
    _beat(store, RUN, 100)
    assert store.mark_crashed() == [RUN]


def test_the_probe_neither_creates_nor_keeps_the_lock(store: Store, tmp_path) -> None:
    import fcntl

    path = tmp_path / "lock"
    assert not lock_held(path) and not path.exists()
    path.touch()
    assert not lock_held(path)
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free right after a probe
        assert lock_held(path)  # another open file of this process holds it
    finally:
        os.close(fd)


def test_without_proc_locks_a_flock_probe_decides(
    store: Store, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    from store import liveness

    monkeypatch.setattr(liveness, "_listed_in_proc_locks", lambda inode: None)
    path = tmp_path / "lock"
    path.touch()
    assert not lock_held(path)
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert lock_held(path)
    finally:
        os.close(fd)
    assert not lock_held(path)
