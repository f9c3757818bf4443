"""Copy new lines of each run's events.jsonl into the store, idempotently.

Every run keeps a byte offset in `ingest_offsets`; one call reads from there, inserts the new
rows in bulk (Arrow tables) and moves the offsets, all in the caller's single transaction, so a
crash part-way leaves the store as it was and the next call does the same work again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import duckdb

from store.eventlog import read_events
from store.events import FINAL_STATUSES
from store.ingest_rows import EventRows, insert_rows, ts

EVENTS_FILE = "events.jsonl"
RUN_FILE = "run.json"


def ingest(conn: duckdb.DuckDBPyConnection, runs_dir: Path, run_id: str | None = None) -> int:
    """Ingest new events of one run (or of every run that may have some); return their count."""
    discover_runs(conn, runs_dir, run_id)
    rows = EventRows()
    updates: dict[str, dict[str, Any]] = {}
    offsets: list[tuple[str, int, int]] = []
    count = 0
    for run in _candidates(conn, runs_dir, run_id):
        try:
            events, offset, last = _new_events(run)
        except OSError:
            continue  # unreadable just now (permissions, a network filesystem): next time
        if not events and offset == run["byte_offset"]:
            continue
        updates[run["run_id"]] = run_updates(run, events)
        rows.add_events(run["run_id"], events)
        offsets.append((run["run_id"], offset, last))
        count += len(events)
    rows.insert(conn)
    _update_runs(conn, updates)
    _save_offsets(conn, offsets)
    return count


def discover_runs(conn: duckdb.DuckDBPyConnection, runs_dir: Path, run_id: str | None) -> None:
    """Add a `runs` row for each run folder that has events or run.json but no row yet."""
    known = {r for (r,) in conn.execute("SELECT run_id FROM runs").fetchall()}
    names = [run_id] if run_id else _folder_names(runs_dir)
    for name in names:
        folder = runs_dir / name
        if name in known or not folder.is_dir():
            continue
        if (folder / EVENTS_FILE).exists() or (folder / RUN_FILE).exists():
            _insert_discovered(conn, name, folder)


def _folder_names(runs_dir: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(runs_dir) if e.is_dir()]
    except FileNotFoundError:
        return []


def _insert_discovered(conn: duckdb.DuckDBPyConnection, run_id: str, folder: Path) -> None:
    info = _read_run_json(folder / RUN_FILE)
    created = info.get("created_at")
    if not isinstance(created, int | float):
        created = folder.stat().st_mtime
    parents = info.get("parents")
    conn.execute(
        "INSERT INTO runs (run_id, name, pipeline, status, created_at, spec, meta, parents, "
        "run_dir) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
        [
            run_id,
            _str_or_none(info.get("name")),
            _str_or_none(info.get("pipeline")) or run_id.split("-")[0],
            ts(created),
            json.dumps(info.get("spec", {}), default=str),
            json.dumps(info.get("meta", {}), default=str),
            [str(p) for p in parents] if isinstance(parents, list) else [],
            str(folder),
        ],
    )


def _str_or_none(v: Any) -> str | None:
    return None if v is None else str(v)


def _read_run_json(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _candidates(
    conn: duckdb.DuckDBPyConnection, runs_dir: Path, run_id: str | None
) -> list[dict[str, Any]]:
    """Runs whose events file exists and is not final-and-fully-read."""
    query = (
        "SELECT r.run_id, r.status, r.run_dir, coalesce(o.byte_offset, 0) AS byte_offset, "
        "coalesce(o.last_seq, 0) AS last_seq FROM runs r LEFT JOIN ingest_offsets o USING (run_id)"
    )
    params: list[Any] = []
    if run_id is not None:
        query += " WHERE r.run_id = ?"
        params.append(run_id)
    cur = conn.execute(query, params)
    names = [d[0] for d in cur.description]
    found = []
    for run in (dict(zip(names, row, strict=True)) for row in cur.fetchall()):
        run["path"] = Path(run["run_dir"] or runs_dir / run["run_id"]) / EVENTS_FILE
        size = _size(run["path"])
        if size is None or (run["status"] in FINAL_STATUSES and size == run["byte_offset"]):
            continue
        run["size"] = size
        found.append(run)
    return found


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except (FileNotFoundError, NotADirectoryError):
        return None


def _new_events(run: dict[str, Any]) -> tuple[list[dict[str, Any]], int, int]:
    """(events after the stored offset, new offset, new last seq) for one run."""
    offset, last = run["byte_offset"], run["last_seq"]
    shrank = run["size"] < offset
    events, new_offset = read_events(run["path"], 0 if shrank else offset)
    if shrank:
        events = [e for e in events if not isinstance(e.get("seq"), int) or e["seq"] > last]
        text = f"{run['path']} shrank below the {offset} bytes already read; read it again"
        events.insert(0, {"kind": "note", "level": "warning", "text": text, "t": time.time()})
    seqs = [e["seq"] for e in events if isinstance(e.get("seq"), int)]
    return events, new_offset, max(seqs, default=last)


def run_updates(run: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """The `runs` columns that a run's new events change, applied in order."""
    changes: dict[str, Any] = {}
    finished = False
    for e in events:
        kind = e.get("kind")
        if kind == "run_started":
            changes.update(_started(e))
        elif kind == "run_finished":
            changes.update(_finished(e))
            finished = True
        elif kind == "progress":
            changes.update(_progress(e))
    seen_job = any(isinstance(e.get("seq"), int) for e in events)
    if run["status"] == "crashed" and seen_job and not finished and "status" not in changes:
        changes.update(status="running", reason=None)  # it was alive after all
    return changes


def _started(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": "running",
        "reason": None,
        "finished_at": None,
        "started_at": ts(e.get("t")),
        "pid": _int(e.get("pid")),
        "host": e.get("host") or None,
        "device": e.get("device"),
        "world_size": _int(e.get("world_size")),
    }


def _finished(e: dict[str, Any]) -> dict[str, Any]:
    status, reason = e.get("status", "done"), e.get("reason")
    if status not in FINAL_STATUSES:
        status, reason = "failed", f"run_finished with unknown status {status!r}: {reason}"
    return {"status": status, "reason": reason, "finished_at": ts(e.get("t"))}


def _progress(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "progress_step": _int(e.get("step")),
        "progress_total": _int(e.get("total")),
        "progress_phase": e.get("phase"),
        "progress_message": e.get("message"),
    }


def _int(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def _update_runs(conn: duckdb.DuckDBPyConnection, updates: dict[str, dict[str, Any]]) -> None:
    for run_id, changes in updates.items():
        if changes:
            sets = ", ".join(f"{col} = ?" for col in changes)
            conn.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", [*changes.values(), run_id])


def _save_offsets(conn: duckdb.DuckDBPyConnection, offsets: list[tuple[str, int, int]]) -> None:
    if offsets:
        insert_rows(conn, "ingest_offsets", offsets, verb="INSERT OR REPLACE")
