"""Opening the store, refreshing it, and reading several things in one transaction.

    store = open_store(home)          # one Store object per home, shared by threads
    changed = refresh(store)          # ingest, mark dead jobs crashed: anything new?
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

_stores: dict[Path, Any] = {}
_lock = threading.Lock()


def open_store(home: Path | str | None = None) -> Any:
    """The Store for `home` (None: $WORKBENCH_HOME or ~/.workbench), made once per process."""
    from store import Store
    from store.catalog import default_home

    key = Path(home if home is not None else default_home()).expanduser()
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
    """Ingest and mark crashed runs; True when the store shows anything new since last time.

    "New" counts other processes' writes too (a CLI `models import`, a run deleted over SSH,
    a job's own final ingest): a fingerprint of the runs and models, read in the same
    transaction, is compared with the previous one. An idle store reports no change, so
    screens need not re-read it.
    """
    with reading(store):
        result = store.refresh()
        now = fingerprint(store)
    seen, store._workbench_seen = getattr(store, "_workbench_seen", None), now
    return bool(result.get("ingested") or result.get("crashed")) or now != seen


def fingerprint(store: Any) -> tuple:
    """What a change anywhere would alter: each run's status and progress, each model."""
    runs = tuple(
        (r["run_id"], r["status"], r.get("progress_step"), r.get("reason"))
        for r in store.list_runs()
    )
    return runs, tuple((m.get("ref") or m["name"], m["path"]) for m in store.list_models())


def run_sql(store: Any, query: str, *, write: bool = False) -> tuple[list[str], list[tuple]]:
    """Any SQL (read-only unless `write`); duckdb's message names what is wrong."""
    import duckdb

    with user_errors():
        try:
            return store.sql(query, write=write)
        except duckdb.Error as e:
            raise OpError(f"query failed: {e}") from e
