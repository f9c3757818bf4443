"""Decide which running jobs are gone: the run folder's lock, the heartbeat, the pid.

A job holds an exclusive `fcntl.flock` on `runs/<run_id>/lock` for its whole life and touches
`runs/<run_id>/heartbeat` every few seconds. A run whose lock is held is alive, whatever its
heartbeat says (a stopped or very busy job). Otherwise a run still marked running whose
heartbeat is older than the limit, or whose process no longer exists on this machine,
crashed without writing its run_finished event. The lock is read from /proc/locks (or probed
with a shared, non-blocking flock released at once); the probe never creates the file.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Any

import duckdb

from store.ingest_rows import ts

HEARTBEAT_FILE = "heartbeat"
LOCK_FILE = "lock"
DEFAULT_STALE_S = 30.0


def stale_limit(stale_after_s: float | None) -> float:
    """The heartbeat age (s) after which a run counts as crashed."""
    if stale_after_s is not None:
        return stale_after_s
    return float(os.environ.get("WORKBENCH_HEARTBEAT_STALE_S", DEFAULT_STALE_S))


def mark_crashed(
    conn: duckdb.DuckDBPyConnection, runs_dir: Path, stale_after_s: float | None = None
) -> list[str]:
    """Set status crashed (with a reason) on runs that stopped living; return their ids."""
    limit, host, now = stale_limit(stale_after_s), socket.gethostname(), time.time()
    crashed = []
    for run in _live_runs(conn):
        folder = Path(run["run_dir"] or runs_dir / run["run_id"])
        beat = _mtime(folder / HEARTBEAT_FILE)
        reason = (
            None if lock_held(folder / LOCK_FILE) else crash_reason(run, beat, limit, host, now)
        )
        if reason:
            conn.execute(
                "UPDATE runs SET status = 'crashed', reason = ?, finished_at = ?, "
                "heartbeat_at = ? WHERE run_id = ?",
                [reason, ts(now), ts(beat) if beat else None, run["run_id"]],
            )
            crashed.append(run["run_id"])
        elif beat:
            conn.execute(
                "UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", [ts(beat), run["run_id"]]
            )
    return crashed


def crash_reason(
    run: dict[str, Any], beat: float | None, limit: float, host: str, now: float
) -> str | None:
    """Why a running run is dead, or None while it looks alive."""
    pid = run["pid"]
    if pid and run["host"] == host and not pid_alive(pid):
        return f"process {pid} on {host} exited without finishing the run"
    if run["status"] != "running":
        return None  # a queued run with a pid has no heartbeat yet; only its pid can tell
    since = beat or run["started_epoch"] or run["created_epoch"]
    if since is not None and now - since > limit:
        what = "heartbeat" if beat else "heartbeat since start"
        return f"no {what} for {now - since:.0f} s (limit {limit:g} s)"
    return None


def lock_held(path: Path) -> bool:
    """Whether some process holds a flock on `path` (False if there is no such file).

    Reads /proc/locks where there is one, which takes no lock and so can never make a job
    starting at that moment think its run is taken; elsewhere, probes with a shared,
    non-blocking flock released at once.
    """
    try:
        inode = os.stat(path).st_ino
    except OSError:
        return False
    held = _listed_in_proc_locks(inode)
    return _probe(path) if held is None else held


def _listed_in_proc_locks(inode: int) -> bool | None:
    """Whether /proc/locks lists a granted FLOCK on this inode; None without /proc/locks."""
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    suffix = f":{inode}"
    for line in text.splitlines():
        fields = line.split()
        if "FLOCK" in fields and "->" not in fields and any(f.endswith(suffix) for f in fields):
            return True
    return False


def _probe(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing releases the probe's own shared lock at once
    return False


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists here and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _live_runs(conn: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT run_id, status, pid, host, run_dir, epoch(started_at) AS started_epoch, "
        "epoch(created_at) AS created_epoch FROM runs "
        "WHERE status = 'running' OR (status = 'queued' AND pid IS NOT NULL)"
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
