"""Find run folders that have events or a run.json but no `runs` row, and add the row."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import duckdb

from store.checks import clean_text, json_text
from store.ingest_rows import ts

EVENTS_FILE = "events.jsonl"
RUN_FILE = "run.json"


def discover_runs(conn: duckdb.DuckDBPyConnection, runs_dir: Path, run_id: str | None) -> None:
    """Add a `runs` row for each run folder that has events or run.json but no row yet.

    Folders whose name starts with a dot (a run being deleted) are not runs.
    """
    known = {r for (r,) in conn.execute("SELECT run_id FROM runs").fetchall()}
    names = [run_id] if run_id else folder_names(runs_dir)
    for name in names:
        folder = runs_dir / name
        if name in known or name.startswith(".") or not folder.is_dir():
            continue
        if (folder / EVENTS_FILE).exists() or (folder / RUN_FILE).exists():
            _insert_discovered(conn, name, folder)


def folder_names(runs_dir: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(runs_dir) if e.is_dir())
    except FileNotFoundError:
        return []


def _insert_discovered(conn: duckdb.DuckDBPyConnection, run_id: str, folder: Path) -> None:
    info = read_run_json(folder / RUN_FILE)
    created = info.get("created_at")
    if not isinstance(created, int | float) or isinstance(created, bool):
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
            json_text(info.get("spec", {})),
            json_text(info.get("meta", {})),
            [clean_text(str(p)) for p in parents] if isinstance(parents, list) else [],
            str(folder),
        ],
    )


def _str_or_none(v: Any) -> str | None:
    return None if v is None else clean_text(str(v))


def read_run_json(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}
