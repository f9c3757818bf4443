"""The store: one DuckDB file (`$WORKBENCH_HOME/workbench.duckdb`) that front ends query.

    store = Store()                 # $WORKBENCH_HOME or ~/.workbench
    store.refresh()                 # ingest new events, mark dead jobs crashed
    store.list_runs(status="running")

No Store method keeps the database open between calls: each one is a single transaction
under a file lock (see store/db.py), so jobs, the TUI, the CLI and the duckdb CLI can share it.
A command or a screen that reads several things does so in one transaction:

    with store.read():              # one connection for everything inside, in this thread
        store.refresh(); runs = store.list_runs(); run = store.get_run(run_id)
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
from filelock import FileLock

from store import db, liveness
from store import ingest as ingest_mod
from store import models as registry
from store.db import from_json, rows_as_dicts, to_json, transaction
from store.errors import StoreError
from store.events import FINAL_STATUSES, RUN_STATUSES
from store.maintenance import MaintenanceMixin
from store.migrations import utc_now
from store.records import RecordsMixin

RUN_JSON_COLUMNS = ("spec", "meta")
PER_RUN_TABLES = ("metrics", "samples", "artifacts", "notes", "run_tables", "ingest_offsets")


def _from_epoch_us(us: int) -> dt.datetime:
    """A naive UTC datetime, as DuckDB hands back a TIMESTAMP."""
    return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=us)


def default_home() -> Path:
    """$WORKBENCH_HOME, else ~/.workbench."""
    return Path(os.environ.get("WORKBENCH_HOME") or Path.home() / ".workbench")


class Store(RecordsMixin, MaintenanceMixin):
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
        """One locked transaction on the database; commits on success, rolls back on error.
        Inside `read()` in this thread, the connection of that one transaction."""
        with transaction(self.db_path, self._lock) as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Store]:
        """Open the store once: every Store call in this thread inside the block shares one
        connection and one transaction (committed at the end, rolled back on an error).

        Keep the block short: other processes wait for it. `refresh()` inside it ingests at
        most one chunk per run, so a large backlog is caught up over several refreshes.
        """
        with db.shared(self.db_path, self._lock):
            yield self

    def in_read(self) -> bool:
        """Whether this thread is inside `read()`."""
        return db.current(self.db_path) is not None

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
        """The run as a run_summary row (loss, val_loss, n_samples, attempts, duration_s) plus
        `missing` (its folder is gone), or None."""
        with self.connect() as conn:
            return self._get_run(conn, run_id)

    def _get_run(self, conn: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
        cur = conn.execute("SELECT * FROM run_summary WHERE run_id = ?", [run_id])
        rows = self._with_missing(rows_as_dicts(cur, RUN_JSON_COLUMNS))
        return rows[0] if rows else None

    def _with_missing(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for row in rows:
            row["missing"] = not Path(row["run_dir"] or self.run_dir(row["run_id"])).is_dir()
        return rows

    def list_runs(
        self, status: str | None = None, pipeline: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Runs newest first, as run_summary rows (with the latest train `loss` and `val_loss`,
        so a listing needs no query per run) plus `missing`, optionally filtered."""
        query, params = "SELECT * FROM run_summary WHERE 1=1", []
        if status is not None:
            query, params = query + " AND status = ?", [*params, status]
        if pipeline is not None:
            query, params = query + " AND pipeline = ?", [*params, pipeline]
        query += " ORDER BY created_at DESC, run_id DESC"
        if limit is not None:
            query += f" LIMIT {_limit(limit)}"
        with self.connect() as conn:
            return self._with_missing(rows_as_dicts(conn.execute(query, params), RUN_JSON_COLUMNS))

    def missing_runs(self) -> list[str]:
        """Ids of runs whose folder is gone (for doctor)."""
        return [r["run_id"] for r in self.list_runs() if r["missing"]]

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

    def delete_run(self, run_id: str, *, remove_folder: bool = False) -> list[str]:
        """Delete a run's rows everywhere and the registry entries of models inside its folder;
        return those models' refs (`name@version`).

        With remove_folder, the folder is renamed aside inside the same locked transaction
        (so a concurrent ingest cannot rediscover it as a phantom run) and deleted after.
        """
        with self.connect() as conn:
            row = conn.execute("SELECT run_dir FROM runs WHERE run_id = ?", [run_id]).fetchone()
            folder = Path(row[0]) if row and row[0] else self.run_dir(run_id)
            removed = registry.inside(conn, folder)
            for ref in removed:
                registry.remove(conn, ref)
            for table in (*PER_RUN_TABLES, "runs"):
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            trash = _set_aside(folder) if remove_folder else None
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        return removed

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
        """Copy new events of one run (or every run) into the store, in bounded chunks each
        its own transaction; return how many lines were stored."""
        shared = self.in_read()
        return ingest_mod.ingest(
            self.connect, self.runs_dir, run_id,
            max_chunks=1 if shared else None, split_on_error=not shared,
        )  # fmt: skip

    def mark_crashed(self, stale_after_s: float | None = None) -> list[str]:
        """Mark running runs with a stale heartbeat or a dead local pid crashed; return ids."""
        with self.connect() as conn:
            return liveness.mark_crashed(conn, self.runs_dir, stale_after_s)

    def refresh(self) -> dict[str, Any]:
        """ingest() then mark_crashed(): what front ends call before reading.

        Returns {"ingested": number of lines, "crashed": run ids just marked crashed}.
        """
        with self.connect() as conn:
            cursors = ingest_mod.pending(conn, self.runs_dir, None)
            if not cursors:  # the common, idle case: one transaction in all
                return {"ingested": 0, "crashed": liveness.mark_crashed(conn, self.runs_dir)}
        shared = self.in_read()
        count = ingest_mod.ingest_pending(
            self.connect, self.runs_dir, cursors,
            max_chunks=1 if shared else None, split_on_error=not shared,
        )  # fmt: skip
        with self.connect() as conn:
            return {"ingested": count, "crashed": liveness.mark_crashed(conn, self.runs_dir)}

    # Event readers

    def metrics(
        self,
        run_id: str,
        names: Iterable[str] | None = None,
        *,
        split: str | None = None,
        include_superseded: bool = False,
        after_seq: int | None = None,
    ) -> list[dict[str, Any]]:
        """Metric rows (run_id, step, name, value, nonfinite, split, t, seq, attempt,
        superseded) in logging order: one curve, without rows a resume superseded.

        A name `val_x` in `names` also matches the row named `x` with split val. With
        `after_seq`, only rows logged after it (seq > after_seq): a live chart's new points.
        """
        query, params = "SELECT * FROM metrics WHERE run_id = ?", [run_id]
        if not include_superseded:
            query += " AND NOT superseded"
        if after_seq is not None:
            query, params = query + " AND seq > ?", [*params, after_seq]
        if split is not None:
            query, params = query + " AND split = ?", [*params, split]
        if names is not None:
            names = list(names)
            val = [n[4:] for n in names if n.startswith("val_")]
            query += " AND (list_contains(?, name) OR (split = 'val' AND list_contains(?, name)))"
            params = [*params, names, val]
        with self.connect() as conn:
            return rows_as_dicts(conn.execute(query + " ORDER BY seq, t, name", params))

    def metric_series(
        self,
        run_id: str,
        *,
        after_seq: int | None = None,
        points: int | None = None,
        include_superseded: bool = False,
    ) -> list[dict[str, Any]]:
        """A run's metric curves as columns, for charts: one dict per (name, split) in name
        order, with `step`, `value` (None where non-finite) and `seq` lists in logging order,
        and `t0`, the time its first row was logged (a naive UTC datetime).

        Read as columns (a million-row store answers in tens of ms, where `metrics()` builds
        a dict per row). With `points`, a curve longer than that keeps every k-th row and its
        last one, k the smallest stride that fits: what a chart a few hundred cells wide can
        draw. With `after_seq`, only rows logged after it (a live chart's new points).
        """
        import numpy as np

        if points is not None and points < 1:
            raise StoreError(f"points must be at least 1, got {points}")
        where, params = "run_id = ?", [run_id]
        if not include_superseded:
            where += " AND NOT superseded"
        if after_seq is not None:
            where, params = where + " AND seq > ?", [*params, after_seq]
        # Rows carry a 64-bit hash of their curve, not its name and split: strings are what a
        # fetch of 100k rows spends its time on (and a window sort in DuckDB is slower than
        # numpy's on the fetched columns). The names come from one row per curve.
        with self.connect() as conn:
            keys = conn.execute(
                f"SELECT hash(name, split) AS h, name, split FROM metrics WHERE {where} "
                "GROUP BY ALL ORDER BY name, split",
                params,
            ).fetchall()
            cols = conn.execute(
                f"SELECT hash(name, split) AS h, step, value, seq, epoch_us(t) AS t "
                f"FROM metrics WHERE {where}",
                params,
            ).fetchnumpy()
        hashes = np.asarray(cols["h"])
        if len({h for h, _, _ in keys}) != len(keys):  # two curves, one hash: 2^-64, but exact
            raise StoreError(f"metric curves of run {run_id} share a hash; read metrics()")
        order = np.lexsort((np.asarray(cols["seq"]), hashes))  # by curve, then logging order
        sorted_h = hashes[order]
        series: list[dict[str, Any]] = []
        for h, name, split in keys:
            rows = order[np.searchsorted(sorted_h, h) : np.searchsorted(sorted_h, h, "right")]
            n = len(rows)
            if points is not None and n > points:
                k = -(-n // points)  # every k-th row, and the last
                keep = np.arange(n)
                rows = rows[(keep % k == 0) | (keep == n - 1)]
            t0 = cols["t"][rows[0]]
            series.append({
                "name": name, "split": split, "step": cols["step"][rows].tolist(),
                "value": cols["value"][rows].tolist(), "seq": cols["seq"][rows].tolist(),
                "t0": None if np.ma.is_masked(t0) else _from_epoch_us(int(t0)),
            })  # fmt: skip
        return series

    def latest_metrics(self, run_id: str) -> dict[str, float]:
        """The last value logged per metric (NaN where it was non-finite), as a flat dict.

        Keys: the metric's name for split train (and any split without a train metric of the
        same name), `val_<name>` for split val (so `loss` and `val_loss`), and
        `<split>_<name>` for another split whose name a train metric already uses.
        """
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT name, split, value FROM latest_metrics WHERE run_id = ? "
                "ORDER BY coalesce(split, 'train') != 'train', split, name",
                [run_id],
            ).fetchall()
        out: dict[str, float] = {}
        for name, split, value in rows:
            key = f"val_{name}" if split == "val" else name
            if key in out:
                key = f"{split}_{name}"
            out[key] = float("nan") if value is None else value
        return dict(sorted(out.items()))

    def samples(self, run_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Samples in logging order; with limit, only the latest `limit` of them."""
        query = "SELECT * FROM samples WHERE run_id = ? ORDER BY seq DESC, t DESC"
        if limit is not None:
            query += f" LIMIT {_limit(limit)}"
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


def _check_status(status: str) -> None:
    if status not in RUN_STATUSES:
        raise StoreError(f"unknown run status {status!r}: use one of {', '.join(RUN_STATUSES)}")


def _set_aside(folder: Path) -> Path | None:
    """Rename a run folder to a dot-name its parent's discovery skips; None if it is gone."""
    trash = folder.with_name(f".deleting-{folder.name}-{os.getpid()}")
    try:
        folder.rename(trash)
    except FileNotFoundError:
        return None
    return trash


def _limit(limit: int) -> int:
    if int(limit) < 0:
        raise StoreError(f"limit must be 0 or more, got {limit}")
    return int(limit)
