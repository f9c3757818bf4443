"""Open workbench.duckdb for one transaction, under a cross-process file lock.

DuckDB lets one process hold a database file and blocks all others, readers included, so no
process keeps the file open: `transaction(path)` takes `<path>.lock`, connects, runs one
transaction, closes and releases. A lock held by something outside the workbench (the duckdb
CLI, say) is retried with backoff for a bounded time. Inside `shared(path)` every
`transaction(path)` in the same thread reuses that one connection and transaction (what
`Store.read()` gives a front end: one open per command or screen refresh).
A file DuckDB cannot read is reported as a StoreError naming the file and the fix.
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
LOCK_POLL_S = 0.01  # how often a waiting process tries the lock (store/ingest.py GAP_S)
CONNECT_ATTEMPTS = 12  # backoff 0.05 s doubling, capped at 2 s: about 13 s in all
CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}

REBUILD_HINT = (
    "move it aside and rebuild the catalog from the run and model folders with "
    "`workbench store rebuild` (the damaged file is kept)"
)
CORRUPT_WORDS = ("corrupt", "checksum", "not a valid duckdb", "invalidated", "serializ",
                 "internal error", "failed to read", "could not read", "unexpected end")  # fmt: skip

_migrated: set[str] = set()
_migrated_lock = threading.Lock()
_local = threading.local()
_opened = [0]
_holds = {"last": 0.0, "longest": 0.0, "released": 0.0}  # seconds; when (time.monotonic)


def connections_opened() -> int:
    """How many DuckDB connections this process has opened (tests count them)."""
    return _opened[0]


def last_hold_s() -> float:
    """How long this process's last `transaction` held the file lock (open to close)."""
    return _holds["last"]


def released_at() -> float:
    """When (time.monotonic) this process's last `transaction` let go of the file lock."""
    return _holds["released"]


def longest_hold_s(reset: bool = False) -> float:
    """The longest lock hold of this process so far (benchmarks and tests report it)."""
    longest = _holds["longest"]
    if reset:
        _holds["longest"] = 0.0
    return longest


def current(path: Path) -> duckdb.DuckDBPyConnection | None:
    """The connection `shared(path)` holds in this thread, if any."""
    return getattr(_local, "conns", {}).get(str(path))


@contextmanager
def shared(path: Path, lock: FileLock) -> Iterator[duckdb.DuckDBPyConnection]:
    """One transaction that every `transaction(path)` in this thread joins until it ends."""
    if current(path) is not None:
        yield current(path)
        return
    with transaction(path, lock) as conn:
        conns = _local.__dict__.setdefault("conns", {})
        conns[str(path)] = conn
        try:
            yield conn
        finally:
            del conns[str(path)]


@contextmanager
def transaction(path: Path, lock: FileLock) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield a connection inside BEGIN … COMMIT (ROLLBACK on error); close it after.

    Inside `shared(path)` in this thread, yield the shared connection (no new transaction).
    """
    joined = current(path)
    if joined is not None:
        yield joined
        return
    try:
        lock.acquire(timeout=LOCK_TIMEOUT_S, poll_interval=LOCK_POLL_S)
    except Timeout:
        raise StoreError(
            f"waited {LOCK_TIMEOUT_S:.0f} s for {lock.lock_file}: another workbench process "
            "holds the store; try again when it is done"
        ) from None
    held = time.monotonic()
    try:
        conn = _connect(path)
        try:
            with _diagnosed(path):
                _ensure_migrated(conn, path)
                conn.begin()
            try:
                yield conn
            except BaseException as err:
                _rollback(conn)
                if is_corruption(err):
                    raise corrupt_error(path, err) from err
                raise
            with _diagnosed(path):
                conn.commit()
        finally:
            conn.close()
    finally:
        lock.release()
        _holds["released"] = time.monotonic()
        held = _holds["last"] = _holds["released"] - held
        _holds["longest"] = max(_holds["longest"], held)


@contextmanager
def _diagnosed(path: Path) -> Iterator[None]:
    """Turn DuckDB's errors about a damaged file into a StoreError with the fix."""
    try:
        yield
    except duckdb.Error as err:
        if is_corruption(err):
            raise corrupt_error(path, err) from err
        raise


def is_corruption(err: BaseException) -> bool:
    """A DuckDB error (or one DuckDB raised through an Arrow reader) about the file itself."""
    text = str(err).lower()
    from_duckdb = isinstance(err, duckdb.Error) or (
        isinstance(err, OSError) and text.startswith("io error")
    )
    return from_duckdb and any(w in text for w in CORRUPT_WORDS)


def corrupt_error(path: Path, err: BaseException) -> StoreError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return StoreError(f"the store {path} is damaged ({first[:200]}): {REBUILD_HINT}")


def _rollback(conn: duckdb.DuckDBPyConnection) -> None:
    try:
        conn.rollback()
    except duckdb.Error:
        pass  # the transaction is gone already; the original error is the one to report


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    delay = 0.05
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            conn = duckdb.connect(str(path), config=CONFIG)
            _opened[0] += 1
            return conn
        except duckdb.Error as err:
            if not isinstance(err, duckdb.IOException) or "lock" not in str(err).lower():
                raise _open_error(path, err) from err
            if attempt == CONNECT_ATTEMPTS - 1:
                raise StoreError(
                    f"{path} is held open by another program; close it (a duckdb shell?) "
                    f"and try again. DuckDB said: {err}"
                ) from err
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


def _open_error(path: Path, err: duckdb.Error) -> StoreError:
    if is_corruption(err) or (path.exists() and "permission" not in str(err).lower()):
        return corrupt_error(path, err)
    return StoreError(f"could not open {path}: {err}")


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
