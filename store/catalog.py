"""The store: one DuckDB file (`$WORKBENCH_HOME/workbench.duckdb`) that front ends query.

    store = Store()                 # $WORKBENCH_HOME or ~/.workbench
    store.refresh()                 # ingest new events, mark dead jobs crashed
    store.list_runs(status="running")

No Store method keeps the database open between calls: each one is a single transaction
under a file lock (see store/db.py), so jobs, the TUI, the CLI and the duckdb CLI can share it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
from filelock import FileLock

from store import ingest as ingest_mod
from store import liveness
from store.db import from_json, rows_as_dicts, to_json, transaction
from store.errors import StoreError
from store.events import FINAL_STATUSES, RUN_STATUSES
from store.migrations import SCHEMA_VERSION, schema_version, utc_now
from store.records import RecordsMixin

RUN_JSON_COLUMNS = ("spec", "meta")
PER_RUN_TABLES = ("metrics", "samples", "artifacts", "notes", "run_tables", "ingest_offsets")


def default_home() -> Path:
    """$WORKBENCH_HOME, else ~/.workbench."""
    return Path(os.environ.get("WORKBENCH_HOME") or Path.home() / ".workbench")


class Store(RecordsMixin):
    """The catalog of runs, metrics, samples, models, votes and experiments."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.db_path = self.home / "workbench.duckdb"
        self.runs_dir = self.home / "runs"
        self.models_dir = self.home / "models"
        self.cache_dir = self.home / "cache"
        for folder in (self.home, self.runs_dir, self.models_dir, self.cache_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.db_path) + ".lock")

    def __repr__(self) -> str:
        return f"Store({str(self.home)!r})"

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One locked transaction on the database; commits on success, rolls back on error."""
        with transaction(self.db_path, self._lock) as conn:
            yield conn

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    # Runs

    def create_run(
        self,
        run_id: str,
        pipeline: str,
        spec: dict[str, Any],
        *,
        name: str | None = None,
        parents: Iterable[str] = (),
        meta: dict[str, Any] | None = None,
        run_dir: Path | str | None = None,
        status: str = "queued",
    ) -> dict[str, Any]:
        """Add a run row (the caller makes its folder) and return it."""
        _check_status(status)
        folder = str(run_dir) if run_dir is not None else str(self.run_dir(run_id))
        with self.connect() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone():
                raise StoreError(f"run {run_id} already exists in {self.db_path}")
            conn.execute(
                "INSERT INTO runs (run_id, name, pipeline, status, created_at, spec, meta, "
                "parents, run_dir) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, name, pipeline, status, utc_now(), to_json(spec),
                 to_json(meta or {}), list(parents), folder],
            )  # fmt: skip
            return self._get_run(conn, run_id)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run (with loss, val_loss, n_samples, duration_s from run_summary), or None."""
        with self.connect() as conn:
            return self._get_run(conn, run_id)

    def _get_run(self, conn: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
        cur = conn.execute("SELECT * FROM run_summary WHERE run_id = ?", [run_id])
        rows = rows_as_dicts(cur, RUN_JSON_COLUMNS)
        return rows[0] if rows else None

    def list_runs(
        self, status: str | None = None, pipeline: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Runs newest first, as run_summary rows, optionally filtered."""
        query, params = "SELECT * FROM run_summary WHERE 1=1", []
        if status is not None:
            query, params = query + " AND status = ?", [*params, status]
        if pipeline is not None:
            query, params = query + " AND pipeline = ?", [*params, pipeline]
        query += " ORDER BY created_at DESC, run_id DESC"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        with self.connect() as conn:
            return rows_as_dicts(conn.execute(query, params), RUN_JSON_COLUMNS)

    def set_status(self, run_id: str, status: str, reason: str | None = None) -> None:
        """Set a run's status; stamps started_at on running and finished_at on a final one."""
        _check_status(status)
        now = utc_now()
        with self.connect() as conn:
            self._require_run(conn, run_id)
            conn.execute(
                "UPDATE runs SET status = ?, reason = ?, "
                "started_at = CASE WHEN ? = 'running' THEN coalesce(started_at, ?) "
                "ELSE started_at END, finished_at = CASE WHEN ? THEN ? ELSE NULL END "
                "WHERE run_id = ?",
                [status, reason, status, now, status in FINAL_STATUSES, now, run_id],
            )

    def set_process(self, run_id: str, pid: int, host: str | None = None) -> None:
        """Record the process a launcher started for a queued run (for crash detection)."""
        with self.connect() as conn:
            self._require_run(conn, run_id)
            conn.execute(
                "UPDATE runs SET pid = ?, host = ? WHERE run_id = ?",
                [pid, host or socket.gethostname(), run_id],
            )

    def delete_run(self, run_id: str) -> None:
        """Delete a run's rows everywhere (its folder is the caller's to remove)."""
        with self.connect() as conn:
            for table in (*PER_RUN_TABLES, "runs"):
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])

    def children(self, run_id: str) -> list[dict[str, Any]]:
        """Runs that list this run among their parents."""
        with self.connect() as conn:
            cur = conn.execute(
                "SELECT * FROM run_summary WHERE list_contains(parents, ?) ORDER BY created_at",
                [run_id],
            )
            return rows_as_dicts(cur, RUN_JSON_COLUMNS)

    def _require_run(self, conn: duckdb.DuckDBPyConnection, run_id: str) -> None:
        if not conn.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone():
            raise StoreError(f"no run {run_id} in {self.db_path}: see `workbench runs ls`")

    # Ingest and liveness

    def ingest(self, run_id: str | None = None) -> int:
        """Copy new events of one run (or every run) into the store; return how many."""
        with self.connect() as conn:
            return ingest_mod.ingest(conn, self.runs_dir, run_id)

    def mark_crashed(self, stale_after_s: float | None = None) -> list[str]:
        """Mark running runs with a stale heartbeat or a dead local pid crashed; return ids."""
        with self.connect() as conn:
            return liveness.mark_crashed(conn, self.runs_dir, stale_after_s)

    def refresh(self) -> dict[str, Any]:
        """ingest() then mark_crashed() in one transaction: what front ends call before reading.

        Returns {"ingested": number of events, "crashed": run ids just marked crashed}.
        """
        with self.connect() as conn:
            count = ingest_mod.ingest(conn, self.runs_dir)
            return {"ingested": count, "crashed": liveness.mark_crashed(conn, self.runs_dir)}

    # Event readers

    def metrics(self, run_id: str, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Metric rows (step, name, value, nonfinite, split, t, seq) in logging order."""
        query, params = "SELECT * FROM metrics WHERE run_id = ?", [run_id]
        if names is not None:
            query, params = query + " AND list_contains(?, name)", [*params, list(names)]
        with self.connect() as conn:
            return rows_as_dicts(conn.execute(query + " ORDER BY seq, t, name", params))

    def latest_metrics(self, run_id: str) -> dict[str, float]:
        """The last value logged per metric name (NaN where it was non-finite)."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT name, value FROM latest_metrics WHERE run_id = ? ORDER BY name", [run_id]
            ).fetchall()
        return {name: float("nan") if value is None else value for name, value in rows}

    def samples(self, run_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Samples in logging order; with limit, only the latest `limit` of them."""
        query = "SELECT * FROM samples WHERE run_id = ? ORDER BY seq DESC, t DESC"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        with self.connect() as conn:
            rows = rows_as_dicts(conn.execute(query, [run_id]), ("meta",))
        return rows[::-1]

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        return self._event_rows("artifacts", run_id, ("meta",))

    def notes(self, run_id: str) -> list[dict[str, Any]]:
        return self._event_rows("notes", run_id)

    def table(self, run_id: str, name: str) -> list[dict[str, Any]]:
        """The rows of the latest Table event with this name ([] if none)."""
        with self.connect() as conn:
            row = conn.execute(
                "SELECT rows FROM run_tables WHERE run_id = ? AND name = ? "
                "ORDER BY seq DESC, t DESC LIMIT 1",
                [run_id, name],
            ).fetchone()
        return from_json(row[0]) if row else []

    def _event_rows(
        self, table: str, run_id: str, json_columns: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        with self.connect() as conn:
            cur = conn.execute(f"SELECT * FROM {table} WHERE run_id = ? ORDER BY t, seq", [run_id])
            return rows_as_dicts(cur, json_columns)

    # Anything else

    def sql(self, query: str, params: list[Any] | None = None) -> tuple[list[str], list[tuple]]:
        """Run any SQL in one transaction; return (column names, rows)."""
        with self.connect() as conn:
            cur = conn.execute(query, params or [])
            if cur.description is None:
                return [], []
            return [d[0] for d in cur.description], cur.fetchall()

    def health(self) -> dict[str, Any]:
        """Path, size, schema versions and row counts, for `workbench doctor`."""
        with self.connect() as conn:
            tables = [t for (t,) in conn.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                "ORDER BY table_name"
            ).fetchall()]  # fmt: skip
            counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
            statuses = dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY 1").fetchall())
            version = schema_version(conn)
        return {
            "path": str(self.db_path),
            "size_bytes": self.db_path.stat().st_size,
            "schema_version": version,
            "code_schema_version": SCHEMA_VERSION,
            "counts": counts,
            "runs_by_status": statuses,
        }


def _check_status(status: str) -> None:
    if status not in RUN_STATUSES:
        raise StoreError(f"unknown run status {status!r}: use one of {', '.join(RUN_STATUSES)}")
