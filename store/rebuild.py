"""Recreate a damaged catalog: move the file aside, restore the model registry from its
record files, re-ingest every run folder, and check liveness.

Runs come back from `runs/<id>/run.json` and `events.jsonl`; models from the
`workbench-model.json` record written beside each at registration (store/models.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from store import liveness
from store.db import LOCK_TIMEOUT_S, forget_migrated
from store.errors import StoreError
from store.models import RECORD_FILE, RECORDS_DIR

if TYPE_CHECKING:
    from store.catalog import Store

MODEL_COLUMNS = ("name", "version", "kind", "source", "path", "params", "architecture",
                 "tokenizer", "chat_template", "run_id", "parent_model", "meta",
                 "created_at")  # fmt: skip


def rebuild_catalog(store: Store) -> dict[str, Any]:
    moved = _move_aside(store)
    records = find_records(store.models_dir, store.runs_dir)
    models = sum(_restore_model(store, path) for path in records)
    events = store.ingest()
    with store.connect() as conn:
        liveness.mark_crashed(conn, store.runs_dir)
        (runs,) = conn.execute("SELECT count(*) FROM runs").fetchone()
    return {"moved_to": moved, "runs": runs, "events": events, "models": models}


def _move_aside(store: Store) -> str | None:
    """Rename workbench.duckdb (and its .wal) to `<name>.damaged-<UTC time>` under the lock."""
    from filelock import Timeout

    try:
        store._lock.acquire(timeout=LOCK_TIMEOUT_S)
    except Timeout:
        raise StoreError(f"waited {LOCK_TIMEOUT_S:.0f} s for {store._lock.lock_file}: "
                         "another workbench process holds the store") from None  # fmt: skip
    try:
        forget_migrated()
        if not store.db_path.exists():
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        aside = store.db_path.with_name(f"{store.db_path.name}.damaged-{stamp}")
        store.db_path.rename(aside)
        wal = store.db_path.with_name(store.db_path.name + ".wal")
        if wal.exists():
            wal.rename(aside.with_name(aside.name + ".wal"))
        return str(aside)
    finally:
        store._lock.release()


def find_records(models_dir: Path, runs_dir: Path) -> list[Path]:
    """Registry records: in model folders under models/ and run folders, and models/records/."""
    found = [*models_dir.glob(f"*/{RECORD_FILE}"), *models_dir.glob(f"*/*/{RECORD_FILE}"),
             *(models_dir / RECORDS_DIR).glob("*.json"), *runs_dir.glob(f"*/{RECORD_FILE}"),
             *runs_dir.glob(f"*/*/{RECORD_FILE}")]  # fmt: skip
    return sorted(set(found))


def _restore_model(store: Store, path: Path) -> int:
    """Insert one record's row (its own transaction, so a bad record skips only itself)."""
    try:
        record = json.loads(path.read_text())
        values = [record.get(c) for c in MODEL_COLUMNS]
    except (OSError, ValueError, AttributeError):
        return 0
    if not all(record.get(c) is not None for c in ("name", "version", "kind", "source", "path")):
        return 0
    values[MODEL_COLUMNS.index("meta")] = json.dumps(record.get("meta") or {})
    values[-1] = record.get("created_at") or time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    cols = ", ".join(MODEL_COLUMNS)
    try:
        with store.connect() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO models ({cols}) VALUES ({', '.join('?' * len(values))})",
                values,
            )
    except (duckdb.Error, StoreError):
        return 0
    return 1
