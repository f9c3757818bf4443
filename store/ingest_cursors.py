"""Where ingest stands in each run's log: the `Cursor` this process holds, read from the
`runs` and `ingest_offsets` rows (store/ingest.py moves it on as it stores lines)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from store.ingest_discover import EVENTS_FILE


@dataclass
class Cursor:
    """How far one run's log is stored, as this process last saw it."""

    run_id: str
    path: Path
    offset: int
    last_seq: int
    attempt: int
    line_no: int
    read_from: int
    shrank: bool = False


_CURSORS = (
    "SELECT r.run_id, r.run_dir, coalesce(o.byte_offset, 0), coalesce(o.last_seq, 0), "
    "coalesce(o.attempt, 0), o.line_no FROM runs r LEFT JOIN ingest_offsets o USING (run_id)"
)


def candidates(conn: duckdb.DuckDBPyConnection, runs_dir: Path, run_id: str | None) -> list[Cursor]:
    """Cursors of runs whose events file has bytes the store has not read (or shrank)."""
    if run_id is None:
        rows = conn.execute(_CURSORS).fetchall()
    else:
        rows = conn.execute(_CURSORS + " WHERE r.run_id = ?", [run_id]).fetchall()
    found = []
    for row in rows:
        path = Path(row[1] or runs_dir / row[0]) / EVENTS_FILE
        size = _size(path)
        if size is None or size == row[2]:  # no log, or nothing new whatever the status
            continue
        cur = _new_cursor(row, path)
        if size < cur.offset:
            cur.read_from, cur.line_no, cur.shrank = 0, 0, True
        found.append(cur)
    return found


def stored_cursor(conn: duckdb.DuckDBPyConnection, runs_dir: Path, run_id: str) -> Cursor | None:
    row = conn.execute(_CURSORS + " WHERE r.run_id = ?", [run_id]).fetchone()
    if row is None:
        return None
    return _new_cursor(row, Path(row[1] or runs_dir / run_id) / EVENTS_FILE)


def _new_cursor(row: tuple, path: Path) -> Cursor:
    run_id, _, offset, last_seq, attempt, line_no = row
    if line_no is None:
        line_no = _count_lines(path, offset)
    return Cursor(run_id, path, offset, last_seq, attempt, line_no, offset)


def _count_lines(path: Path, limit: int) -> int:
    """Newlines in the first `limit` bytes (for offsets stored before line numbers were)."""
    done = lines = 0
    try:
        with open(path, "rb") as f:
            while done < limit:
                block = f.read(min(1 << 20, limit - done))
                if not block:
                    break
                done += len(block)
                lines += block.count(b"\n")
    except OSError:
        return 0
    return lines


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except (FileNotFoundError, NotADirectoryError):
        return None


def save_offset(conn: duckdb.DuckDBPyConnection, run_id: str, state: dict[str, Any]) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO ingest_offsets (run_id, byte_offset, last_seq, attempt, line_no) "
        "VALUES (?, ?, ?, ?, ?)",
        [run_id, state["byte_offset"], state["last_seq"], state["attempt"], state["line_no"]],
    )
