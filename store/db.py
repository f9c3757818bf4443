"""Open workbench.duckdb for one transaction, under a cross-process file lock.

DuckDB lets one process hold a database file and blocks all others, readers included, so no
process keeps the file open: `transaction(path)` takes `<path>.lock`, connects, runs one
transaction, closes and releases. A lock held by something outside the workbench (the duckdb
CLI, say) is retried with backoff for a bounded time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
from filelock import FileLock, Timeout

from store.errors import StoreError
from store.migrations import migrate

LOCK_TIMEOUT_S = 30.0
CONNECT_ATTEMPTS = 12  # backoff 0.05 s doubling, capped at 2 s: about 13 s in all
CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}

_migrated: set[str] = set()
_migrated_lock = threading.Lock()


@contextmanager
def transaction(path: Path, lock: FileLock) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield a connection inside BEGIN … COMMIT (ROLLBACK on error); close it after."""
    try:
        lock.acquire(timeout=LOCK_TIMEOUT_S)
    except Timeout:
        raise StoreError(
            f"waited {LOCK_TIMEOUT_S:.0f} s for {lock.lock_file}: another workbench process "
            "holds the store; try again when it is done"
        ) from None
    try:
        conn = _connect(path)
        try:
            _ensure_migrated(conn, path)
            conn.begin()
            try:
                yield conn
            except BaseException:
                _rollback(conn)
                raise
            conn.commit()
        finally:
            conn.close()
    finally:
        lock.release()


def _rollback(conn: duckdb.DuckDBPyConnection) -> None:
    try:
        conn.rollback()
    except duckdb.Error:
        pass  # the transaction is gone already; the original error is the one to report


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    delay = 0.05
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            return duckdb.connect(str(path), config=CONFIG)
        except duckdb.IOException as err:
            if "lock" not in str(err).lower():
                raise StoreError(f"could not open {path}: {err}") from err
            if attempt == CONNECT_ATTEMPTS - 1:
                raise StoreError(
                    f"{path} is held open by another program; close it (a duckdb shell?) "
                    f"and try again. DuckDB said: {err}"
                ) from err
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


def _ensure_migrated(conn: duckdb.DuckDBPyConnection, path: Path) -> None:
    key = str(path.resolve())
    with _migrated_lock:
        if key in _migrated:
            return
    conn.begin()
    try:
        migrate(conn, path)
    except BaseException:
        _rollback(conn)
        raise
    conn.commit()
    with _migrated_lock:
        _migrated.add(key)


def forget_migrated() -> None:
    """Make the next connect check the schema again (tests swap files under one path)."""
    with _migrated_lock:
        _migrated.clear()


def to_json(value: Any) -> str | None:
    """JSON text for a JSON column (None stays NULL)."""
    return None if value is None else json.dumps(value, default=str, ensure_ascii=False)


def from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def rows_as_dicts(
    cursor: duckdb.DuckDBPyConnection, json_columns: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Fetch all rows of the last query as dicts, decoding the named JSON columns."""
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        for col in json_columns:
            if col in row:
                row[col] = from_json(row[col])
    return rows
