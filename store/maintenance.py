"""Store methods for people and doctor: SQL (read-only unless asked), schema and integrity
checks, and rebuilding a damaged catalog from the run and model folders.

Mixed into `store.catalog.Store`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import duckdb
from filelock import FileLock

from store import db
from store.errors import StoreError
from store.migrations import SCHEMA_VERSION, schema_version
from store.rebuild import rebuild_catalog
from store.schema import schema_problems

READ_TYPES = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
_ANALYZE = re.compile(r"^\s*explain\s+analy[sz]e\b", re.IGNORECASE)


class MaintenanceMixin:
    """sql, check_schema, health and rebuild."""

    db_path: Path
    runs_dir: Path
    models_dir: Path
    _lock: FileLock

    def connect(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        raise NotImplementedError

    def in_read(self) -> bool:
        raise NotImplementedError

    def missing_runs(self) -> list[str]:
        raise NotImplementedError

    def sql(
        self, query: str, params: list[Any] | None = None, *, write: bool = False
    ) -> tuple[list[str], list[tuple]]:
        """Run one SQL statement; return (column names, rows).

        Read-only by default: only SELECT-like statements run (and their transaction is
        rolled back). With write=True anything runs, then the schema is checked in the same
        transaction and a statement that broke it is rolled back with a StoreError naming
        what is wrong.
        """
        with self.connect() as conn:
            statement = _one_statement(conn, query)
            if not write:
                _check_read_only(statement)
            try:
                cur = conn.execute(query, params or [])
                result = ([], []) if cur.description is None else (
                    [d[0] for d in cur.description], cur.fetchall())  # fmt: skip
            except duckdb.Error as err:
                if db.is_corruption(err):
                    raise db.corrupt_error(self.db_path, err) from err
                raise StoreError(f"SQL error: {err}") from err
            if write:
                _require_schema(conn)
            elif not self.in_read():
                conn.rollback()  # a read changes nothing, whatever slipped through
                conn.begin()
            return result

    def check_schema(self) -> list[str]:
        """What differs from the tables, views and columns the migrations make ([] if none)."""
        with self.connect() as conn:
            return schema_problems(conn)

    def health(self) -> dict[str, Any]:
        """Path, size, schema versions, row counts, integrity (every table read in full),
        schema problems and runs whose folder is gone, for `workbench doctor`.

        `ok` is False when the file cannot be read (then `error` says why and how to fix it),
        a table does not read back, or the schema is not what this code expects.
        """
        out: dict[str, Any] = {
            "path": str(self.db_path),
            "size_bytes": self.db_path.stat().st_size if self.db_path.exists() else 0,
            "code_schema_version": SCHEMA_VERSION,
        }
        try:
            with self.connect() as conn:
                out.update(_stats(conn))
        except StoreError as err:
            return {**out, "ok": False, "error": str(err)}
        except duckdb.Error as err:
            return {**out, "ok": False, "error": str(db.corrupt_error(self.db_path, err))}
        out["missing_runs"] = self.missing_runs()
        out["ok"] = not out["schema_problems"]
        return out

    def rebuild(self) -> dict[str, Any]:
        """Move the store file aside (kept, never deleted) and recreate the catalog from the
        run folders (run.json + events.jsonl) and the models' registry records.

        Returns {"moved_to": path or None, "runs": n, "events": n, "models": n}. Votes,
        comparisons and prompt experiments live only in the store: they stay in the moved file.
        """
        if self.in_read():
            raise StoreError("rebuild() cannot run inside store.read()")
        return rebuild_catalog(self)  # type: ignore[arg-type]


def _one_statement(conn: duckdb.DuckDBPyConnection, query: str) -> duckdb.Statement:
    if not query or not query.strip():
        raise StoreError('no SQL given: pass one statement, e.g. "SELECT * FROM run_summary"')
    try:
        statements = conn.extract_statements(query)
    except duckdb.Error as err:
        raise StoreError(f"SQL error: {err}") from err
    if len(statements) != 1:
        raise StoreError(
            f"give one SQL statement at a time; this text holds {len(statements)} "
            "(separated by ';')"
        )
    return statements[0]


def _check_read_only(statement: duckdb.Statement) -> None:
    kind = statement.type
    if kind in READ_TYPES and not (kind == duckdb.StatementType.EXPLAIN
                                   and _ANALYZE.match(statement.query)):  # fmt: skip
        return
    raise StoreError(
        f"SQL is read-only by default and this is a {kind.name} statement; add --write "
        "(Store.sql(..., write=True)) to change the store (its schema is checked after)"
    )


def _require_schema(conn: duckdb.DuckDBPyConnection) -> None:
    problems = schema_problems(conn)
    if problems:
        raise StoreError(
            "that statement would break the store's schema, so it was rolled back: "
            + "; ".join(problems)
        )


def _stats(conn: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    tables = [t for (t,) in conn.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "ORDER BY table_name"
    ).fetchall()]  # fmt: skip
    counts = {t: sum(_read_all(conn, t)) for t in tables}
    statuses = dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY 1").fetchall())
    return {
        "schema_version": schema_version(conn),
        "counts": counts,
        "runs_by_status": statuses,
        "integrity": "ok",
        "schema_problems": schema_problems(conn),
    }


def _read_all(conn: duckdb.DuckDBPyConnection, table: str) -> Iterator[int]:
    """Read every row and column of a table (checksums verify each block); yield batch sizes."""
    cur = conn.execute(f'SELECT * FROM "{table}"')
    fetch = getattr(cur, "to_arrow_reader", None) or cur.fetch_record_batch  # older duckdb
    reader = fetch(65536)
    for batch in reader:
        yield batch.num_rows
