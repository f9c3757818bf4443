"""Turn checked events into rows of the event tables and insert them in bulk as Arrow tables.

`executemany` manages about a thousand rows a second here; an Arrow table registered with
DuckDB and copied with one INSERT … SELECT manages about a million. Timestamps travel as
integer microseconds (no datetime object per row).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

import duckdb

from store.checks import json_text
from store.events import Artifact, Metrics, Note, Sample, Table

# Column names and Arrow type names of the event tables, in insert order. pyarrow is
# imported only when rows are inserted, which keeps `import store` quick for front ends.
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "metrics": [("run_id", "string"), ("step", "int64"), ("name", "string"),
                ("value", "float64"), ("nonfinite", "bool_"), ("split", "string"),
                ("t", "timestamp"), ("seq", "int64"), ("attempt", "int32"),
                ("superseded", "bool_")],
    "samples": [("run_id", "string"), ("step", "int64"), ("prompt", "string"),
                ("completion", "string"), ("meta", "string"), ("t", "timestamp"),
                ("seq", "int64")],
    "artifacts": [("run_id", "string"), ("type", "string"), ("path", "string"),
                  ("step", "int64"), ("meta", "string"), ("t", "timestamp"), ("seq", "int64")],
    "notes": [("run_id", "string"), ("level", "string"), ("text", "string"),
              ("t", "timestamp"), ("seq", "int64")],
    "run_tables": [("run_id", "string"), ("name", "string"), ("rows", "string"),
                   ("t", "timestamp"), ("seq", "int64")],
}  # fmt: skip
EVENT_TABLES = tuple(COLUMNS)


def ts(t: Any) -> datetime:
    """A naive UTC datetime from unix seconds (now when missing or unreadable)."""
    try:
        seconds = float(t)
        return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC).replace(tzinfo=None)


def micros(t: float | None) -> int:
    """Integer microseconds since 1970 (now when None)."""
    return int((time.time() if t is None else t) * 1_000_000)


def metric_name(name: str, split: str) -> str:
    """The stored name: validation metrics keep their emitted name (`loss`, split val); an
    older job's `val_loss` with split val is stored as `loss` too."""
    return name[4:] if split == "val" and name.startswith("val_") and len(name) > 4 else name


class EventRows:
    """Rows for the event tables of one run, then inserted once per table."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in EVENT_TABLES}

    def __len__(self) -> int:
        return sum(len(r) for r in self.rows.values())

    def add(self, event: Any, attempt: int) -> None:
        """Rows for one checked event (kinds without rows of their own add nothing)."""
        t, seq = micros(event.t), event.seq
        match event:
            case Metrics(step=step, values=values, split=split):
                self._metrics(step, values, split, t, seq, attempt)
            case Sample(step=step, prompt=prompt, completion=completion, meta=meta):
                row = (self.run_id, step, prompt, completion, json_text(meta), t, seq)
                self.rows["samples"].append(row)
            case Artifact(type=kind, path=path, step=step, meta=meta):
                row = (self.run_id, kind, path, step, json_text(meta), t, seq)
                self.rows["artifacts"].append(row)
            case Note(level=level, text=text):
                self.note(level, text, t, seq)
            case Table(name=name, rows=rows):
                self.rows["run_tables"].append((self.run_id, name, json_text(rows), t, seq))

    def note(self, level: str, text: str, t: int | None = None, seq: int | None = None) -> None:
        self.rows["notes"].append((self.run_id, level, text, micros(None) if t is None else t, seq))

    def _metrics(
        self, step: int, values: dict[str, float], split: str, t: int, seq: int | None, attempt: int
    ) -> None:
        out = self.rows["metrics"]
        for name, v in values.items():
            finite = math.isfinite(v)
            row = (self.run_id, step, metric_name(name, split), v if finite else None,
                   not finite, split, t, seq, attempt, False)  # fmt: skip
            out.append(row)

    def insert(self, conn: duckdb.DuckDBPyConnection) -> None:
        for name, rows in self.rows.items():
            if rows:
                insert_rows(conn, name, rows)


def insert_rows(
    conn: duckdb.DuckDBPyConnection, table: str, rows: list[tuple[Any, ...]], verb: str = "INSERT"
) -> None:
    """Insert row tuples (in COLUMNS[table] order) with one `verb INTO … SELECT` from Arrow."""
    import pyarrow as pa

    spec = COLUMNS[table]
    arrays = [
        pa.array(col, type=pa.timestamp("us") if kind == "timestamp" else getattr(pa, kind)())
        for col, (_, kind) in zip(zip(*rows, strict=True), spec, strict=True)
    ]
    names = [name for name, _ in spec]
    batch = pa.table(arrays, names=names)
    cols = ", ".join(names)
    insert_arrow(conn, batch, f"{verb} INTO {table} ({cols}) SELECT {cols} FROM _batch", "_batch")


def insert_arrow(conn: duckdb.DuckDBPyConnection, table: Any, query: str, name: str) -> None:
    """Run `query` (an insert) with the Arrow table as `name`, a temporary view of this
    connection that the next insert replaces.

    Through the Arrow C stream rather than `conn.register`: registering a pyarrow object
    makes DuckDB import pyarrow.dataset and its kin, 60 ms of a short ingest."""
    conn.from_arrow(table.__arrow_c_stream__()).query(name, query)


def sql_text(value: str) -> str:
    """A string as an SQL literal (for a query that takes no parameters)."""
    return "'" + value.replace("'", "''") + "'"
