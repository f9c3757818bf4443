"""The store: one DuckDB catalog plus per-run append-only event logs.

    from store import Store, EventLog
    EventLog(run_dir / "events.jsonl").append(Metrics(step=1, values={"loss": 2.3}))
    Store().refresh(); Store().list_runs()
    with Store().read() as store: ...   # several reads, one connection

duckdb, pyarrow, filelock and the standard library only. Schema: docs/store.md.
"""

from __future__ import annotations

from store.catalog import Store
from store.errors import StoreError
from store.eventlog import EventLog, read_events
from store.events import event_from_dict

__all__ = ["EventLog", "Store", "StoreError", "event_from_dict", "read_events"]
