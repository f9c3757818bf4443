"""Turn events into rows of the event tables and insert them in bulk as Arrow tables.

`executemany` manages about a thousand rows a second here; an Arrow table registered with
DuckDB and copied with one INSERT … SELECT manages about a million.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import duckdb

from store.events import metric_value

# Column names and Arrow type names of the event tables, in insert order. pyarrow is
# imported only when rows are inserted, which keeps `import store` quick for front ends.
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "metrics": [("run_id", "string"), ("step", "int64"), ("name", "string"),
                ("value", "float64"), ("nonfinite", "bool_"), ("split", "string"),
                ("t", "timestamp"), ("seq", "int64")],
    "samples": [("run_id", "string"), ("step", "int64"), ("prompt", "string"),
                ("completion", "string"), ("meta", "string"), ("t", "timestamp"),
                ("seq", "int64")],
    "artifacts": [("run_id", "string"), ("type", "string"), ("path", "string"),
                  ("step", "int64"), ("meta", "string"), ("t", "timestamp"), ("seq", "int64")],
    "notes": [("run_id", "string"), ("level", "string"), ("text", "string"),
              ("t", "timestamp"), ("seq", "int64")],
    "run_tables": [("run_id", "string"), ("name", "string"), ("rows", "string"),
                   ("t", "timestamp"), ("seq", "int64")],
    "ingest_offsets": [("run_id", "string"), ("byte_offset", "int64"), ("last_seq", "int64")],
}  # fmt: skip
EVENT_TABLES = ("metrics", "samples", "artifacts", "notes", "run_tables")


def ts(t: Any) -> datetime:
    """A naive UTC datetime from unix seconds (now when missing or unreadable)."""
    try:
        seconds = float(t)
    except (TypeError, ValueError):
        seconds = time.time()
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


class EventRows:
    """Rows for the event tables, gathered across runs, then inserted once per table."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in EVENT_TABLES}

    def add_events(self, run_id: str, events: list[dict[str, Any]]) -> None:
        for e in events:
            try:
                self._add(run_id, e)
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                text = f"event seq {e.get('seq')} ({e.get('kind')}) could not be stored: {err!r}"
                self.rows["notes"].append((run_id, "error", text, ts(e.get("t")), e.get("seq")))

    def _add(self, run_id: str, e: dict[str, Any]) -> None:
        kind, t, seq = e.get("kind"), ts(e.get("t")), e.get("seq")
        seq = seq if isinstance(seq, int) else None
        if kind == "metrics":
            self._add_metrics(run_id, e, t, seq)
        elif kind == "sample":
            row = (run_id, _int(e.get("step")), str(e.get("prompt", "")),
                   str(e.get("completion", "")), _json(e.get("meta", {})), t, seq)  # fmt: skip
            self.rows["samples"].append(row)
        elif kind == "artifact":
            row = (run_id, e.get("type"), str(e.get("path", "")), _int(e.get("step")),
                   _json(e.get("meta", {})), t, seq)  # fmt: skip
            self.rows["artifacts"].append(row)
        elif kind == "note":
            self.rows["notes"].append((run_id, e.get("level", "info"), str(e.get("text")), t, seq))
        elif kind == "table":
            self.rows["run_tables"].append((run_id, str(e["name"]), _json(e["rows"]), t, seq))

    def _add_metrics(self, run_id: str, e: dict[str, Any], t: datetime, seq: int | None) -> None:
        step, split = _int(e.get("step")), e.get("split", "train")
        rows = []
        for name, raw in dict(e["values"]).items():
            value, nonfinite = metric_value(raw)
            rows.append((run_id, step, str(name), value, nonfinite, split, t, seq))
        self.rows["metrics"].extend(rows)

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
    conn.register("_batch", batch)
    try:
        cols = ", ".join(names)
        conn.execute(f"{verb} INTO {table} ({cols}) SELECT {cols} FROM _batch")
    finally:
        conn.unregister("_batch")


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _json(v: Any) -> str:
    return json.dumps(v, default=str, ensure_ascii=False)
