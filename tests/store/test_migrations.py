"""Schema migrations: recorded once, applied in order, and a newer file is refused."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from store import Store, StoreError, migrations
from store.db import forget_migrated

EXPECTED_TABLES = [
    "runs",
    "metrics",
    "samples",
    "artifacts",
    "notes",
    "run_tables",
    "ingest_offsets",
    "models",
    "comparisons",
    "votes",
    "prompt_experiments",
    "rag_indexes",
    "rag_chunks",
    "schema_version",
]


def _versions(db: Path) -> list[int]:
    with duckdb.connect(str(db)) as conn:
        return [
            v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        ]


def test_new_store_gets_every_table_and_one_version_row(store: Store) -> None:
    store.list_runs()
    forget_migrated()
    Store(store.home).list_runs()  # a second open in a "new process" adds nothing
    assert _versions(store.db_path) == list(range(1, migrations.SCHEMA_VERSION + 1))
    names = {n for (n,) in store.sql("SELECT table_name FROM duckdb_tables()")[1]}
    assert set(EXPECTED_TABLES) <= names
    views = {n for (n,) in store.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal")[1]}
    assert {"latest_metrics", "run_summary"} <= views


def test_a_later_migration_is_applied_to_an_existing_store(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create_run("a-1", "a", {})
    new = [*migrations.MIGRATIONS, "ALTER TABLE runs ADD COLUMN colour VARCHAR"]
    monkeypatch.setattr(migrations, "MIGRATIONS", new)
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", len(new))
    forget_migrated()
    assert store.get_run("a-1")["colour"] is None
    assert _versions(store.db_path)[-1] == len(new)


def test_newer_schema_is_refused_naming_both_versions(store: Store) -> None:
    store.list_runs()
    newer = migrations.SCHEMA_VERSION + 1
    with duckdb.connect(str(store.db_path)) as conn:
        conn.execute(f"INSERT INTO schema_version VALUES ({newer}, now()::TIMESTAMP)")
    forget_migrated()
    with pytest.raises(StoreError) as err:
        store.list_runs()
    text = str(err.value)
    assert str(store.db_path) in text and f"version {newer}" in text
    assert f"knows up to {migrations.SCHEMA_VERSION}" in text and "upgrade gpt-workbench" in text
