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
import pyarrow as pa

from store.events import metric_value

_STR, _INT, _F64, _BOOL, _TS = pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.timestamp("us")

SCHEMAS: dict[str, pa.Schema] = {
    "metrics": pa.schema(
        [("run_id", _STR), ("step", _INT), ("name", _STR), ("value", _F64),
         ("nonfinite", _BOOL), ("split", _STR), ("t", _TS), ("seq", _INT)]
    ),
    "samples": pa.schema(
        [("run_id", _STR), ("step", _INT), ("prompt", _STR), ("completion", _STR),
         ("meta", _STR), ("t", _TS), ("seq", _INT)]
    ),
    "artifacts": pa.schema(
        [("run_id", _STR), ("type", _STR), ("path", _STR), ("step", _INT), ("meta", _STR),
         ("t", _TS), ("seq", _INT)]
    ),
    "notes": pa.schema(
        [("run_id", _STR), ("level", _STR), ("text", _STR), ("t", _TS), ("seq", _INT)]
    ),
    "run_tables": pa.schema(
        [("run_id", _STR), ("name", _STR), ("rows", _STR), ("t", _TS), ("seq", _INT)]
    ),
}  # fmt: skip


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
        self.rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in SCHEMAS}

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


def insert_rows(conn: duckdb.DuckDBPyConnection, table: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert row tuples (in SCHEMAS[table] column order) with one INSERT … SELECT."""
    schema = SCHEMAS[table]
    columns = list(zip(*rows, strict=True))
    batch = pa.table(
        [pa.array(col, type=field.type) for col, field in zip(columns, schema, strict=True)],
        schema=schema,
    )
    names = ", ".join(schema.names)
    conn.register("_batch", batch)
    try:
        conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _batch")
    finally:
        conn.unregister("_batch")


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _json(v: Any) -> str:
    return json.dumps(v, default=str, ensure_ascii=False)
