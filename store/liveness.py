"""Decide which running jobs are gone: a stale heartbeat file, or a dead pid on this host.

A job touches `runs/<run_id>/heartbeat` every few seconds. A run still marked running whose
heartbeat is older than the limit, or whose process no longer exists on this machine, crashed
without writing its run_finished event.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import duckdb

from store.ingest_rows import ts

HEARTBEAT_FILE = "heartbeat"
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
        reason = crash_reason(run, beat, limit, host, now)
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
