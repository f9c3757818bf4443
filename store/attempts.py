"""Attempts: each `run_started` in a run's log begins one; a resume is a later attempt.

After a kill and resume, the steps between the checkpoint and the kill are logged twice, and a
graceful stop logs a row off the `log_every` grid. Rows that a later attempt makes obsolete
are kept but marked `superseded`, so `curves`, `latest_metrics`, `run_summary` and
`Store.metrics()` show one curve, the one an uninterrupted run would have logged:

- a row of an earlier attempt at a step >= the first step a later attempt logged in the same
  split is superseded (the later attempt measured it again);
- a `train` row of an earlier attempt off the run's `spec.train.log_every` grid is superseded
  (only a stop logs there).
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

EVENTS_FILE = "events.jsonl"

_LATER_ATTEMPT = """
UPDATE metrics SET superseded = true
FROM (SELECT split, min(step) AS first_step FROM metrics
      WHERE run_id = $run AND attempt = $attempt GROUP BY split) AS later
WHERE metrics.run_id = $run AND metrics.attempt < $attempt AND NOT metrics.superseded
  AND metrics.split IS NOT DISTINCT FROM later.split AND metrics.step >= later.first_step
"""

_OFF_GRID = """
UPDATE metrics SET superseded = true
WHERE run_id = $run AND attempt < $attempt AND NOT superseded AND split = 'train'
  AND step % (SELECT nullif(try_cast(json_extract_string(spec, '$.train.log_every') AS BIGINT), 0)
              FROM runs WHERE run_id = $run) != 0
"""


def mark_superseded(conn: duckdb.DuckDBPyConnection, run_id: str, attempt: int) -> None:
    """Mark the rows of attempts before `attempt` that this attempt replaces."""
    if attempt > 1:
        params = {"run": run_id, "attempt": attempt}
        conn.execute(_OFF_GRID, params)
        conn.execute(_LATER_ATTEMPT, params)


def number_existing_attempts(conn: duckdb.DuckDBPyConnection, runs_dir: Path) -> None:
    """Migration helper: number the attempts of rows ingested before attempts existed."""
    rows = conn.execute(
        "SELECT r.run_id, r.run_dir, o.byte_offset FROM runs r JOIN ingest_offsets o USING (run_id)"
    ).fetchall()
    for run_id, run_dir, offset in rows:
        path = Path(run_dir or runs_dir / run_id) / EVENTS_FILE
        starts = _start_seqs(path, offset)
        for attempt, seq in enumerate(starts[1:], start=2):
            conn.execute(
                "UPDATE metrics SET attempt = ? WHERE run_id = ? AND seq > ?",
                [attempt, run_id, seq],
            )
        conn.execute(
            "UPDATE ingest_offsets SET attempt = ? WHERE run_id = ?", [len(starts), run_id]
        )
        for attempt in range(2, len(starts) + 1):
            mark_superseded(conn, run_id, attempt)


def _start_seqs(path: Path, limit: int) -> list[int]:
    """The seq of every run_started line in the first `limit` bytes of an events file."""
    seqs, done = [], 0
    try:
        with open(path, "rb") as f:
            for line in f:
                done += len(line)
                if done > limit:
                    break
                if b'"run_started"' in line:
                    seq = _seq(line)
                    if seq is not None:
                        seqs.append(seq)
    except OSError:
        return []
    return seqs


def _seq(line: bytes) -> int | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if isinstance(event, dict) and event.get("kind") == "run_started":
        seq = event.get("seq")
        return seq if isinstance(seq, int) else None
    return None
