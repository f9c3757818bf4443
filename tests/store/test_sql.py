"""Issue 9 #4: `Store.sql` is read-only unless asked; a write that breaks the schema is rolled
back naming the problem; empty text and several statements get clear messages."""

from __future__ import annotations

import pytest

from store import Store, StoreError


@pytest.mark.parametrize(
    "query",
    [
        "DROP TABLE runs",
        "DELETE FROM runs",
        "UPDATE runs SET status = 'done'",
        "INSERT INTO runs (run_id) VALUES ('x')",
        "ATTACH ':memory:' AS other",
        "COPY runs TO '/tmp/runs.csv'",
        "CREATE TABLE mine (x INTEGER)",
        "ALTER TABLE runs ADD COLUMN colour VARCHAR",
        "SET threads = 1",
        "CHECKPOINT",
        "EXPLAIN ANALYZE DELETE FROM runs",
        "INSTALL httpfs",
    ],
)
def test_writes_are_refused_by_default(store: Store, query: str) -> None:
    store.create_run("a-1", "a", {})
    with pytest.raises(StoreError, match="read-only by default.*--write"):
        store.sql(query)
    assert store.get_run("a-1")["status"] == "queued"


def test_reads_run(store: Store) -> None:
    store.create_run("a-1", "a", {})
    assert store.sql("SELECT run_id FROM runs")[1] == [("a-1",)]
    assert store.sql("DESCRIBE runs")[1][0][0] == "run_id"
    assert store.sql("EXPLAIN SELECT * FROM runs")[0]
    assert store.sql("WITH x AS (SELECT 1 AS a) SELECT a FROM x")[1] == [(1,)]


@pytest.mark.parametrize(
    ("query", "message"),
    [("", "no SQL given"), ("   ", "no SQL given"), ("SELECT 1; SELECT 2", "one SQL statement"),
     ("SELEC 1", "SQL error"), ("SELECT * FROM nowhere", "SQL error")],
)  # fmt: skip
def test_clear_messages(store: Store, query: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        store.sql(query)


def test_a_write_that_breaks_the_schema_is_rolled_back(store: Store) -> None:
    store.create_run("a-1", "a", {})
    with pytest.raises(StoreError, match="metrics lacks column superseded"):
        store.sql("ALTER TABLE metrics DROP COLUMN superseded", write=True)
    with pytest.raises(StoreError, match="table runs is missing"):
        store.sql("DROP TABLE runs CASCADE", write=True)
    assert store.check_schema() == []
    assert store.sql("DELETE FROM runs", write=True)[1] == [(1,)]
    assert store.list_runs() == []


def test_check_schema_names_what_is_wrong(store: Store) -> None:
    import duckdb

    store.list_runs()
    with duckdb.connect(str(store.db_path)) as conn:
        conn.execute("DROP VIEW curves")
        conn.execute("ALTER TABLE runs DROP COLUMN reason")
    problems = store.check_schema()
    assert "view curves is missing" in problems
    assert any("runs lacks column reason" in p for p in problems)
    assert store.health()["ok"] is False
