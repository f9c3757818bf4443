"""The schema the migrations make, and what a store's schema lacks compared with it.

The reference is an in-memory database with every migration applied, so the expectation is
declared once (in store/migrations.py). Extra tables or columns a person added are fine;
missing or retyped ones are problems.
"""

from __future__ import annotations

import functools
from pathlib import Path

import duckdb

from store.migrations import migrate

_COLUMNS = (
    "SELECT c.table_name, c.column_name, c.data_type, t.table_type FROM information_schema.columns c "
    "JOIN information_schema.tables t USING (table_catalog, table_schema, table_name) "
    "WHERE c.table_catalog = current_database() AND c.table_schema = 'main'"
)


def schema_problems(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """One line per missing table, view or column, or column of another type."""
    found: dict[str, dict[str, str]] = {}
    for table, column, dtype, _ in conn.execute(_COLUMNS).fetchall():
        found.setdefault(table, {})[column] = dtype
    problems = []
    for table, (kind, columns) in expected().items():
        have = found.get(table)
        if have is None:
            problems.append(f"{kind} {table} is missing")
            continue
        for column, dtype in columns.items():
            if column not in have:
                problems.append(f"{kind} {table} lacks column {column} ({dtype})")
            elif have[column] != dtype:
                problems.append(f"{table}.{column} is {have[column]}, expected {dtype}")
    return problems


@functools.cache
def expected() -> dict[str, tuple[str, dict[str, str]]]:
    """{table or view: ("table" | "view", {column: type})} of a freshly migrated store."""
    with duckdb.connect(":memory:") as ref:
        ref.begin()
        migrate(ref, Path("/nonexistent/workbench.duckdb"))
        ref.commit()
        out: dict[str, tuple[str, dict[str, str]]] = {}
        for table, column, dtype, ttype in ref.execute(_COLUMNS).fetchall():
            kind = "view" if ttype == "VIEW" else "table"
            out.setdefault(table, (kind, {}))[1][column] = dtype
    return out
