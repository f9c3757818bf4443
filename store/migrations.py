"""Numbered schema migrations for workbench.duckdb, recorded in `schema_version`.

MIGRATIONS[0] is version 1, MIGRATIONS[1] version 2, and so on. Append new ones; never edit
one that has shipped. docs/store.md describes the resulting tables and views.
All timestamps are UTC (TIMESTAMP without time zone).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from store.errors import StoreError

_V1_TABLES = """
CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY,
    name VARCHAR,
    pipeline VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    reason VARCHAR,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    spec JSON,
    meta JSON,
    parents VARCHAR[],
    run_dir VARCHAR,
    pid INTEGER,
    host VARCHAR,
    device VARCHAR,
    world_size INTEGER,
    progress_step BIGINT,
    progress_total BIGINT,
    progress_phase VARCHAR,
    progress_message VARCHAR,
    heartbeat_at TIMESTAMP
);
CREATE TABLE metrics (
    run_id VARCHAR NOT NULL, step BIGINT, name VARCHAR NOT NULL, value DOUBLE,
    nonfinite BOOLEAN NOT NULL, split VARCHAR, t TIMESTAMP, seq BIGINT
);
CREATE TABLE samples (
    run_id VARCHAR NOT NULL, step BIGINT, prompt VARCHAR, completion VARCHAR, meta JSON,
    t TIMESTAMP, seq BIGINT
);
CREATE TABLE artifacts (
    run_id VARCHAR NOT NULL, type VARCHAR, path VARCHAR, step BIGINT, meta JSON,
    t TIMESTAMP, seq BIGINT
);
CREATE TABLE notes (
    run_id VARCHAR NOT NULL, level VARCHAR, text VARCHAR, t TIMESTAMP, seq BIGINT
);
CREATE TABLE run_tables (
    run_id VARCHAR NOT NULL, name VARCHAR NOT NULL, rows JSON, t TIMESTAMP, seq BIGINT
);
CREATE TABLE ingest_offsets (
    run_id VARCHAR PRIMARY KEY, byte_offset BIGINT NOT NULL, last_seq BIGINT NOT NULL
);
CREATE TABLE models (
    name VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    params BIGINT,
    architecture VARCHAR,
    tokenizer VARCHAR,
    chat_template BOOLEAN,
    run_id VARCHAR,
    parent_model VARCHAR,
    meta JSON,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE comparisons (
    id VARCHAR PRIMARY KEY, prompt VARCHAR NOT NULL, completions JSON NOT NULL,
    source VARCHAR, run_id VARCHAR, created_at TIMESTAMP NOT NULL
);
CREATE TABLE votes (
    id VARCHAR PRIMARY KEY, prompt VARCHAR NOT NULL, model_a VARCHAR NOT NULL,
    model_b VARCHAR NOT NULL, completion_a VARCHAR, completion_b VARCHAR,
    winner VARCHAR NOT NULL, voter VARCHAR, created_at TIMESTAMP NOT NULL
);
CREATE TABLE prompt_experiments (
    id VARCHAR PRIMARY KEY, run_id VARCHAR, model VARCHAR NOT NULL, strategy VARCHAR NOT NULL,
    task VARCHAR NOT NULL, n INTEGER, accuracy DOUBLE, tokens BIGINT, latency_s DOUBLE,
    transcripts JSON, created_at TIMESTAMP NOT NULL
);
"""

_V1_VIEWS = """
CREATE VIEW latest_metrics AS
SELECT run_id, name, step, value, nonfinite, split, t
FROM metrics
QUALIFY row_number() OVER (PARTITION BY run_id, name ORDER BY seq DESC, t DESC) = 1;

CREATE VIEW run_summary AS
WITH last AS (
    SELECT run_id, name, value FROM metrics WHERE name IN ('loss', 'val_loss')
    QUALIFY row_number() OVER (PARTITION BY run_id, name ORDER BY seq DESC, t DESC) = 1
), sample_counts AS (
    SELECT run_id, count(*) AS n_samples FROM samples GROUP BY run_id
)
SELECT r.*,
    (SELECT value FROM last WHERE last.run_id = r.run_id AND last.name = 'loss') AS loss,
    (SELECT value FROM last WHERE last.run_id = r.run_id AND last.name = 'val_loss') AS val_loss,
    coalesce(s.n_samples, 0) AS n_samples,
    coalesce(epoch(r.finished_at), epoch(now())) - epoch(r.started_at) AS duration_s
FROM runs r LEFT JOIN sample_counts s USING (run_id);
"""

_V2_SQL = r"""
ALTER TABLE metrics ADD COLUMN attempt INTEGER DEFAULT 1;
ALTER TABLE metrics ADD COLUMN superseded BOOLEAN DEFAULT false;
UPDATE metrics SET name = substr(name, 5) WHERE split = 'val' AND name LIKE 'val\_%' ESCAPE '\';
ALTER TABLE ingest_offsets ADD COLUMN attempt INTEGER DEFAULT 0;
ALTER TABLE ingest_offsets ADD COLUMN line_no BIGINT;
CREATE TABLE models_v2 (
    name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    kind VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    params BIGINT,
    architecture VARCHAR,
    tokenizer VARCHAR,
    chat_template BOOLEAN,
    run_id VARCHAR,
    parent_model VARCHAR,
    meta JSON,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (name, version)
);
INSERT INTO models_v2 SELECT name, 1, kind, source, path, params, architecture, tokenizer,
    chat_template, run_id, parent_model, meta, created_at FROM models;
DROP TABLE models;
ALTER TABLE models_v2 RENAME TO models;
DROP VIEW latest_metrics;
DROP VIEW run_summary;
CREATE VIEW curves AS SELECT * FROM metrics WHERE NOT superseded;
CREATE VIEW latest_metrics AS
SELECT run_id, name, step, value, nonfinite, split, t FROM metrics WHERE NOT superseded
QUALIFY row_number() OVER (PARTITION BY run_id, split, name ORDER BY seq DESC, t DESC) = 1;
CREATE VIEW run_summary AS
WITH losses AS (
    SELECT run_id,
        arg_max_null(value, seq) FILTER (WHERE coalesce(split, 'train') = 'train') AS loss,
        arg_max_null(value, seq) FILTER (WHERE split = 'val') AS val_loss
    FROM metrics WHERE name = 'loss' AND NOT superseded AND seq IS NOT NULL GROUP BY run_id
), sample_counts AS (
    SELECT run_id, count(*) AS n_samples FROM samples GROUP BY run_id
)
SELECT r.*, l.loss, l.val_loss, coalesce(s.n_samples, 0) AS n_samples,
    coalesce(o.attempt, 0) AS attempts,
    coalesce(epoch(r.finished_at), epoch(now())) - epoch(r.started_at) AS duration_s
FROM runs r LEFT JOIN losses l USING (run_id) LEFT JOIN sample_counts s USING (run_id)
    LEFT JOIN ingest_offsets o USING (run_id);
"""


def _v2(conn: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Model versions, metric attempts (resumes) and validation metrics by split."""
    conn.execute(_V2_SQL)
    from store.attempts import number_existing_attempts

    number_existing_attempts(conn, path.parent / "runs")


# Arena: Elo replayed over the votes in time order (recursive CTE, K = 32, start 1000; a tie
# and "both bad" count half a win each), vote counts per model, and pair counts (from which
# ops.arena fits Bradley–Terry scores, an iteration SQL does not do well).
_V3_SQL = """
CREATE VIEW vote_pairs AS
SELECT least(model_a, model_b) AS model_1, greatest(model_a, model_b) AS model_2,
    count(*) FILTER (WHERE (winner = 'a') = (model_a < model_b) AND winner IN ('a', 'b'))
        AS wins_1,
    count(*) FILTER (WHERE (winner = 'b') = (model_a < model_b) AND winner IN ('a', 'b'))
        AS wins_2,
    count(*) FILTER (WHERE winner NOT IN ('a', 'b')) AS ties,
    count(*) AS votes
FROM votes WHERE model_a <> model_b GROUP BY ALL;

CREATE VIEW leaderboard AS
WITH RECURSIVE ordered AS (
    SELECT row_number() OVER (ORDER BY created_at, id) AS n, model_a AS a, model_b AS b,
        CASE winner WHEN 'a' THEN 1.0 WHEN 'b' THEN 0.0 ELSE 0.5 END AS sa
    FROM votes WHERE model_a <> model_b
), elo(n, ratings) AS (
    SELECT 0::BIGINT, MAP {}::MAP(VARCHAR, DOUBLE)
    UNION ALL
    SELECT o.n, map_concat(e.ratings,
        MAP([o.a, o.b], [x.ra + 32 * (o.sa - x.ea), x.rb - 32 * (o.sa - x.ea)]))
    FROM elo e JOIN ordered o ON o.n = e.n + 1,
    LATERAL (
        SELECT ra, rb, 1 / (1 + pow(10, (rb - ra) / 400)) AS ea
        FROM (SELECT coalesce(e.ratings[o.a], 1000.0) AS ra,
                     coalesce(e.ratings[o.b], 1000.0) AS rb)
    ) x
), final AS (
    SELECT unnest(map_keys(ratings)) AS model, unnest(map_values(ratings)) AS elo
    FROM elo QUALIFY n = max(n) OVER ()
), sides AS (
    SELECT model_a AS model, created_at,
        CASE winner WHEN 'a' THEN 'win' WHEN 'b' THEN 'loss' ELSE winner END AS outcome
    FROM votes WHERE model_a <> model_b
    UNION ALL
    SELECT model_b, created_at,
        CASE winner WHEN 'b' THEN 'win' WHEN 'a' THEN 'loss' ELSE winner END
    FROM votes WHERE model_a <> model_b
)
SELECT s.model, f.elo, count(*) AS votes,
    count(*) FILTER (WHERE outcome = 'win') AS wins,
    count(*) FILTER (WHERE outcome = 'loss') AS losses,
    count(*) FILTER (WHERE outcome = 'tie') AS ties,
    count(*) FILTER (WHERE outcome = 'both_bad') AS both_bad,
    max(s.created_at) AS last_vote_at
FROM sides s LEFT JOIN final f USING (model)
GROUP BY s.model, f.elo;
"""

# v4: the retrieval index (workbench/ops/rag.py): one row per index, one per chunk with its
# embedding. IF NOT EXISTS: stores from before v4 made these tables on first use.
_V4_SQL = """
CREATE TABLE IF NOT EXISTS rag_indexes (
    name VARCHAR PRIMARY KEY, embed_model VARCHAR NOT NULL, dim INTEGER NOT NULL,
    folder VARCHAR, n_documents INTEGER, n_chunks INTEGER, chunk_size INTEGER,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS rag_chunks (
    index_name VARCHAR NOT NULL, node_id VARCHAR NOT NULL, doc_id VARCHAR, source VARCHAR,
    text VARCHAR NOT NULL, metadata JSON, embedding FLOAT[] NOT NULL
);
"""

# v5: a ranking records the model that sampled its completions, as results label it (`sft`,
# or `sft [int8]` when it decoded with quantized weights); NULL where unknown (a file, older rows).
_V5_SQL = """
ALTER TABLE comparisons ADD COLUMN model VARCHAR;
"""

Migration = str | Callable[[duckdb.DuckDBPyConnection, Path], None]
MIGRATIONS: list[Migration] = [_V1_TABLES + _V1_VIEWS, _v2, _V3_SQL, _V4_SQL, _V5_SQL]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: duckdb.DuckDBPyConnection) -> int:
    """The version recorded in the database (0 for a new, empty one)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, applied_at TIMESTAMP)"
    )
    (version,) = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(version)


def migrate(conn: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Bring the database to SCHEMA_VERSION inside the caller's transaction; return it."""
    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"store at {path} has schema version {found}; this workbench knows up to "
            f"{SCHEMA_VERSION}: upgrade gpt-workbench"
        )
    for version in range(found + 1, SCHEMA_VERSION + 1):
        step = MIGRATIONS[version - 1]
        if callable(step):
            step(conn, path)
        else:
            conn.execute(step)
        conn.execute("INSERT INTO schema_version VALUES (?, ?)", [version, utc_now()])
    return SCHEMA_VERSION


def utc_now() -> datetime:
    """Now as a naive UTC datetime: the form every TIMESTAMP column in the store holds."""
    return datetime.now(UTC).replace(tzinfo=None)
