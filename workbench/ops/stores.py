"""Opening the store, refreshing it, and reading several things in one transaction.

    store = open_store(home)          # one Store object per home, shared by threads
    changed = refresh(store)          # ingest new events, mark dead jobs crashed
    with reading(store):              # every Store call inside shares one connection
        run, models = store.get_run(rid), store.list_models()

`store` (and so duckdb) is imported on first use, never when a front end starts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench.ops.errors import OpError, user_errors

_stores: dict[Path | None, Any] = {}
_lock = threading.Lock()


def open_store(home: Path | str | None = None) -> Any:
    """The Store for `home` (None: $WORKBENCH_HOME or ~/.workbench), made once per process."""
    from store import Store

    key = Path(home).expanduser() if home is not None else None
    with _lock, user_errors():
        if key not in _stores:
            _stores[key] = Store(key)
        return _stores[key]


def refreshed_store(home: Path | str | None = None) -> Any:
    """The store with new events ingested (what every CLI verb starts from)."""
    store = open_store(home)
    refresh(store)
    return store


@contextmanager
def reading(store: Any) -> Iterator[Any]:
    """Store calls inside share one connection and transaction (`Store.read()`)."""
    with user_errors(), store.read():
        yield store


def refresh(store: Any) -> bool:
    """Ingest and mark crashed runs; True when the store holds anything new since last time.

    "New" counts other processes' writes too (a CLI `models import`, a run deleted over SSH):
    the database file's size and mtime are compared with what they were after our own
    previous refresh, so an idle store reports no change and screens need not re-read.
    """
    before = signature(store)
    with reading(store):
        result = store.refresh()
    after = signature(store)
    seen = getattr(store, "_workbench_seen", None)
    store._workbench_seen = after
    return bool(result.get("ingested") or result.get("crashed")) or before != seen


def signature(store: Any) -> tuple:
    """(size, mtime) of the database file and its write-ahead log: changes on every commit."""
    out = []
    for path in (store.db_path, Path(str(store.db_path) + ".wal")):
        try:
            st = path.stat()
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def run_sql(store: Any, query: str, *, write: bool = False) -> tuple[list[str], list[tuple]]:
    """Any SQL (read-only unless `write`); duckdb's message names what is wrong."""
    import duckdb

    with user_errors():
        try:
            return store.sql(query, write=write)
        except duckdb.Error as e:
            raise OpError(f"query failed: {e}") from e
