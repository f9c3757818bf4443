"""Copy new lines of each run's events.jsonl into the store, idempotently, in bounded chunks.

Every run keeps a byte offset (and line number, attempt and last seq) in `ingest_offsets`.
A chunk is at most about `eventlog.CHUNK_BYTES` of complete lines, read and checked outside
the lock. Chunks are stored under short lock holds: a hold opens the store, stores chunk
after chunk in one transaction, moves the run's offset past the last, and commits and
closes once. Its first chunk always; a next one only while the hold, with that chunk's
insert and the commit, is expected to end within HOLD_S (0.2 s), the expectation measured
in the hold itself. So the longest wait a hold imposes on another process is about HOLD_S,
or one chunk's open, insert and commit where that alone takes longer (a busy machine: then
every hold is one chunk, as when each chunk was its own transaction). Between two holds
the next chunks are read and checked, the lock free for GAP_S (50 ms) at least, and a
process waiting for it (it tries every 10 ms) gets it then. A crash part-way rolls back the hold it was in:
each chunk is stored with its offset or not at all, so nothing is stored twice or lost.
Memory stays flat in the file's size: about AHEAD_MEMORY at most is read ahead. Inside
`Store.read()` an ingest stores at most one chunk per run, in that block's one transaction.

A chunk whose offset another process already moved is read again from the new offset. A
line the store cannot hold becomes an `error` note naming the file and line; a chunk the
database refuses rolls back its hold, whose chunks are then stored one transaction each, a
refused chunk split in halves until the bad line is found, so one bad line never blocks
the rest.

The metrics lines of a chunk (most of any training log) are parsed and checked as columns
(store/ingest_fast.py) and inserted as one Arrow table; the other lines one by one. A chunk
whose metrics lines the columns cannot vouch for, or whose insert fails, is parsed line by
line instead, so both paths store the same rows and the same error notes.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import duckdb

from store import attempts, db, eventlog
from store import models as registry
from store.checks import EventError
from store.errors import StoreError
from store.eventlog import read_block, split_lines
from store.events import Artifact, Event, RunStarted, event_from_dict
from store.ingest_cursors import Cursor, candidates, save_offset, stored_cursor
from store.ingest_discover import discover_runs
from store.ingest_fast import MetricRows, marks, metric_lines, parse_metrics, unmarked_lines
from store.ingest_rows import EventRows, insert_rows, micros
from store.ingest_runs import model_fields, run_changes

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
DATA_ERRORS = (
    duckdb.ConversionException, duckdb.ConstraintException, duckdb.InvalidInputException,
    duckdb.OutOfRangeException, duckdb.TypeMismatchException, ValueError, TypeError,
    OverflowError,
)  # fmt: skip
HOLD_S = 0.2  # a hold takes a next chunk only if expected to end within this (docstring)
# At most about this much memory of chunks read and checked ahead of a hold: a chunk counts
# its bytes, and 5 more for each byte of lines checked one by one (their events are Python
# objects: a 4 MB chunk of them keeps 23 MB), so ahead of a hold are at most six chunks of
# metrics, and one chunk of other events.
AHEAD_MEMORY = 24 * 1024 * 1024
LINE_WEIGHT = 5
GAP_S = 0.05  # the lock free at least this long between two holds of one log: a waiting
# process tries it every db.LOCK_POLL_S (10 ms), five times in a gap
COLUMNS = True  # False: every line parsed on its own (benchmarks and tests compare the two)
# A lock hold's open (s), inserts (s per byte of log) and commit (times the inserts), as
# the last full hold of this process took them; to start with, about what a quiet 2-core
# machine takes.
_rates = {"open": 0.015, "insert": 4e-9, "commit_ratio": 1.0}


class Moved(Exception):
    """Another process ingested this run since the chunk was read: read again."""


class Gone(Exception):
    """The run's row was deleted since the chunk was read: stop."""


@dataclass
class Line:
    """One line of a chunk: its checked event (None: blank or unknown kind) or its problem."""

    number: int
    end: int
    event: Event | None = None
    error: str | None = None
    seq: int | None = None  # for the error note of an event the database refused
    t: float | None = None


def ingest(
    connect: Connect,
    runs_dir: Path,
    run_id: str | None = None,
    *,
    max_chunks: int | None = None,
    split_on_error: bool = True,
) -> int:
    """Ingest new events of one run (or of every run that may have some); return the number
    of lines stored. `max_chunks` bounds the chunks per run (for a shared transaction)."""
    with connect() as conn:
        cursors = pending(conn, runs_dir, run_id)
    return ingest_pending(connect, runs_dir, cursors, max_chunks=max_chunks,
                          split_on_error=split_on_error)  # fmt: skip


def pending(conn: duckdb.DuckDBPyConnection, runs_dir: Path, run_id: str | None) -> list[Cursor]:
    """Discover new run folders, then the cursors of runs whose logs have unread lines."""
    discover_runs(conn, runs_dir, run_id)
    return candidates(conn, runs_dir, run_id)


def ingest_pending(
    connect: Connect,
    runs_dir: Path,
    cursors: list[Cursor],
    *,
    max_chunks: int | None = None,
    split_on_error: bool = True,
) -> int:
    """Ingest the runs `pending()` found, each in chunks; return the number of lines stored.
    With `max_chunks` (inside a shared transaction), one transaction per chunk; otherwise
    as many chunks per lock hold as fit in HOLD_S."""
    total = 0
    for cursor in cursors:
        if max_chunks is None and split_on_error:
            total += _ingest_held(connect, runs_dir, cursor)
        else:
            total += _ingest_chunks(connect, runs_dir, cursor, max_chunks, split_on_error)
    return total


@dataclass
class Chunk:
    """Complete lines of a log, read and checked outside the lock, ready to store: the
    metrics lines as columns (when the columns vouch for them) and the others one by one."""

    lines: list[Line]
    end: int
    last_number: int
    size: int
    metric_rows: MetricRows | None = None
    line_bytes: int = 0  # of lines checked one by one

    @property
    def weight(self) -> int:
        """About the memory it keeps, as AHEAD_MEMORY counts it."""
        return self.size + LINE_WEIGHT * self.line_bytes

    @property
    def count(self) -> int:
        """The lines it stores (blank lines and unknown kinds are read but not counted)."""
        stored = sum(1 for line in self.lines if line.event is not None or line.error is not None)
        return stored + (self.metric_rows.lines if self.metric_rows is not None else 0)


def _ingest_held(connect: Connect, runs_dir: Path, cur: Cursor) -> int:
    """Read and check chunks outside the lock (as many as a hold should take), then store
    them in one transaction under one lock hold; repeat to the end of the log. Chunks the
    hold had no time for wait for the next one. A chunk the database refuses sends the
    chunks of that hold, rolled back, through `_ingest_chunks`: one transaction each, a
    refused chunk split until the bad line is found."""
    count, ahead, pos, gap = 0, [], replace(cur), False
    while True:
        ahead += _read_ahead(pos, ahead)
        if not ahead:
            return count
        start = replace(cur)
        try:
            stored = _store_held(connect, runs_dir, cur, ahead, gap)
            gap = True
        except Moved:
            with connect() as conn:
                fresh = stored_cursor(conn, runs_dir, cur.run_id)
            if fresh is None:
                return count
            cur, ahead, pos = fresh, [], replace(fresh)
            continue
        except Gone:
            return count
        except DATA_ERRORS:
            cur = start
            count += _ingest_chunks(connect, runs_dir, cur, len(ahead), True)
            ahead, pos = [], replace(cur)
            continue
        except BaseException:
            _advance_to(cur, start)  # nothing of this hold was stored
            raise
        count += sum(chunk.count for chunk in ahead[:stored])
        del ahead[:stored]


def _read_ahead(pos: Cursor, ahead: list[Chunk]) -> list[Chunk]:
    """Chunks from `pos` (moving it) to add to those `ahead` until the next hold is full:
    about HOLD_S of storing at the rate the last holds took, and about AHEAD_MEMORY."""
    chunks: list[Chunk] = []
    size, weight, budget = sum(c.size for c in ahead), sum(c.weight for c in ahead), _hold_bytes()
    while not (ahead or chunks) or (size < budget and weight < AHEAD_MEMORY):
        chunk = _read_chunk(pos)
        if chunk is None:
            break
        chunks.append(chunk)
        size, weight = size + chunk.size, weight + chunk.weight
    return chunks


def _store_held(
    connect: Connect, runs_dir: Path, cur: Cursor, chunks: list[Chunk], gap: bool = False
) -> int:
    """Store chunks in order in one transaction: the first always, each next one only if
    the hold, with it and the commit, is expected to end within HOLD_S. Return how many;
    `cur` moves past them. With `gap` (a hold of this log came before), not before the lock
    has been free GAP_S.

    The expectation is measured in the hold itself: the next chunk's insert at the rate of
    the inserts so far, and the commit (which checkpoints what the hold stored) as many
    times the inserts as it took in the last hold. A slow machine slows both alike."""
    stored = size = 0
    storing = 0.0  # seconds spent storing the chunks so far
    ratio = _rates["commit_ratio"]
    wait = db.released_at() + GAP_S - time.monotonic()
    if gap and wait > 0:  # the lock free long enough for a process polling for it to get it
        time.sleep(wait)
    with connect() as conn:
        began = time.monotonic()
        prepare_hold(conn)
        state: dict[str, Any] = {"status": None}
        for chunk in chunks:
            if stored:
                insert = storing / size * chunk.size
                commit = ratio * (storing + insert)
                if _rates["open"] + time.monotonic() - began + insert + commit > HOLD_S:
                    break
            start = time.monotonic()
            with _gc_paused():
                state = _store_chunk(conn, runs_dir, cur, chunk, state["status"], held=True)
            storing += time.monotonic() - start
            _advance(cur, state)
            stored, size = stored + 1, size + chunk.size
        save_offset(conn, cur.run_id, state)
        body = time.monotonic()
    done = time.monotonic()
    if size >= eventlog.CHUNK_BYTES // 2 and storing > 0:  # a tail's hold: mostly fixed costs
        _rates.update(open=max(db.last_hold_s() - (done - began), 0.0), insert=storing / size,
                      commit_ratio=(done - body) / storing)  # fmt: skip
    return stored


def prepare_hold(conn: duckdb.DuckDBPyConnection) -> None:
    """Settings of a lock hold's connection (benchmarks/ingest.py uses them too). One
    thread, as in MetricRows.insert, for the commit too. A commit past the threshold
    checkpoints at once and skips the WAL: rows are written once, not to the WAL at commit
    and again by the checkpoint at close (3 chunks: 9.8 MB of WAL, 400 ms in all against
    240). Both last as long as the connection."""
    conn.execute("SET threads = 1")
    conn.execute("SET checkpoint_threshold = '1MB'")


def _hold_bytes() -> float:
    """How much log a hold should take: about HOLD_S at the rates the last hold took."""
    per_byte = _rates["insert"] * (1 + _rates["commit_ratio"])
    return max(HOLD_S - _rates["open"], 0.0) / per_byte if per_byte > 0 else float("inf")


def _ingest_chunks(
    connect: Connect, runs_dir: Path, cur: Cursor, max_chunks: int | None, split: bool
) -> int:
    """Store chunks one transaction each (inside a shared transaction, or after a refusal)."""
    count = chunks = 0
    while max_chunks is None or chunks < max_chunks:
        chunk = _read_chunk(replace(cur))
        if chunk is None:
            break
        try:
            with _gc_paused():  # a chunk is many small acyclic objects: collections only cost
                count += _commit_chunk(connect, runs_dir, cur, chunk, split)
        except Moved:
            with connect() as conn:
                fresh = stored_cursor(conn, runs_dir, cur.run_id)
            if fresh is None:
                break
            _advance_to(cur, fresh)
            continue
        except Gone:
            break
        chunks += 1
    return count


@contextmanager
def _gc_paused() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _read_chunk(pos: Cursor) -> Chunk | None:
    """The next chunk of complete lines from `pos`, checked (moving `pos` past it); None at
    the end of the log."""
    data, end = read_block(pos.path, pos.read_from)
    if end == pos.read_from and not pos.shrank:
        return None
    with _gc_paused():
        chunk, lines = None, None
        if COLUMNS and not pos.shrank:
            chunk, lines = _columns_chunk(pos, data, end)
        if chunk is None:
            lines = split_lines(data, pos.read_from) if lines is None else lines
            last = pos.line_no + len(lines)
            chunk = Chunk(_parse(pos, lines), end, last, len(data), line_bytes=len(data))
    pos.read_from, pos.line_no, pos.shrank = end, chunk.last_number, False
    return chunk


def _columns_chunk(
    pos: Cursor, data: bytes, end: int
) -> tuple[Chunk | None, list[tuple[bytes, int]] | None]:
    """The chunk with its metrics lines as columns, or None when it must go line by line
    (with the lines, when split already)."""
    import numpy as np

    first = pos.line_no + 1
    n = data.count(b"\n")
    n_marks = marks(data, lines=n)
    whole = n_marks == n  # a tail of metrics alone, by count: parsed without a split
    if whole and n >= 2:
        rows = parse_metrics(data, np.arange(first, first + n, dtype=np.int64))
        if rows is not None:
            return Chunk([], end, pos.line_no + n, len(data), rows), None
    unmarked = None if whole or b"\r" in data else unmarked_lines(data, n, n_marks)
    lines: list[tuple[bytes, int]] | None = None
    if unmarked is not None:  # a few other lines among metrics: cut them out
        every = np.arange(first, first + n, dtype=np.int64)
        numbers = np.delete(every, [i for i, _, _ in unmarked])
        rest = [(first + i, (data[a:b], pos.read_from + a)) for i, a, b in unmarked]
        cuts = [0, *(x for _, a, b in unmarked for x in (a, b)), len(data)]
        raws = b"".join(data[cuts[k] : cuts[k + 1]] for k in range(0, len(cuts), 2))
    else:
        lines = split_lines(data, pos.read_from)
        picked = metric_lines(lines)
        if whole and len(picked) == len(lines):  # (that one failed above)
            return None, lines
        chosen = set(picked)
        numbers = np.asarray(picked, dtype=np.int64) + first
        raws = b"".join(lines[i][0] for i in picked)
        rest = [(first + i, line) for i, line in enumerate(lines) if i not in chosen]
    if len(numbers) < 2:
        return None, lines
    rows = parse_metrics(raws, numbers)
    if rows is None:
        return None, lines
    parsed = _parse_numbered(rest, False, pos.last_seq)
    last = pos.line_no + (n if lines is None else len(lines))
    line_bytes = sum(len(raw) for _, (raw, _) in rest)
    return Chunk(parsed, end, last, len(data), rows, line_bytes), None


def _commit_chunk(connect: Connect, runs_dir: Path, cur: Cursor, chunk: Chunk, split: bool) -> int:
    """Store one chunk in its own transaction. Metric rows the database refuses send the
    chunk line by line; without `split` (inside a shared transaction, which an error
    aborts) a data error is raised, as the per-line path raises it."""
    if chunk.metric_rows is not None:
        try:
            with connect() as conn:
                state = _store_chunk(conn, runs_dir, cur, chunk)
        except DATA_ERRORS:
            if not split:
                raise
            data, end = read_block(cur.path, cur.read_from, chunk.end - cur.read_from)
            return _commit(connect, runs_dir, cur, _parse(cur, split_lines(data, cur.read_from)),
                           end, split)  # fmt: skip
        _advance(cur, state)
        return chunk.count
    return _commit(connect, runs_dir, cur, chunk.lines, chunk.end, split)


def _store_chunk(
    conn: duckdb.DuckDBPyConnection,
    runs_dir: Path,
    cur: Cursor,
    chunk: Chunk,
    status: str | None = None,
    held: bool = False,
) -> dict[str, Any]:
    return _store(conn, runs_dir, cur, chunk.lines, chunk.end, metric_rows=chunk.metric_rows,
                  last_number=chunk.last_number, status=status, held=held)  # fmt: skip


def _parse(cur: Cursor, lines: list[tuple[bytes, int]]) -> list[Line]:
    numbered = [(cur.line_no + 1 + i, line) for i, line in enumerate(lines)]
    return _parse_numbered(numbered, cur.shrank, cur.last_seq)


def _parse_numbered(
    lines: list[tuple[int, tuple[bytes, int]]], shrank: bool, last_seq: int
) -> list[Line]:
    out = []
    data = _decode_all([line for _, line in lines])
    for i, (number, (raw, start)) in enumerate(lines):
        line = Line(number, start + len(raw))
        if raw.strip():
            _check_line(line, raw, data[i] if data is not None else _NOT_PARSED)
            if shrank and line.event is not None and (line.event.seq or 0) <= last_seq:
                line.event = None  # already stored before the file was rewritten
        out.append(line)
    return out


_NOT_PARSED = object()


def _decode_all(lines: list[tuple[bytes, int]]) -> list[Any] | None:
    """Every line parsed by one json.loads of a JSON array (fast); None if any line is bad
    or blank, and then each line is parsed on its own."""
    if not lines:
        return []
    try:
        data = json.loads(b"[" + b",".join(raw for raw, _ in lines) + b"]")
    except ValueError:
        return None
    return data if len(data) == len(lines) else None  # a line `1, 2` would shift the rest


def _check_line(line: Line, raw: bytes, data: Any = _NOT_PARSED) -> None:
    if data is _NOT_PARSED:
        try:
            data = json.loads(raw)
        except ValueError as err:
            line.error = f"is not valid JSON ({err})"
            return
    if not isinstance(data, dict) or "kind" not in data:
        line.error = "is not an event object with a 'kind'"
        return
    try:
        line.event = event_from_dict(data)
    except EventError as err:
        line.error = f"{data.get('kind')!r} event could not be stored: {err}"


def _commit(
    connect: Connect, runs_dir: Path, cur: Cursor, lines: list[Line], end: int, split: bool
) -> int:
    """Store lines up to byte `end` in one transaction; on a data error, halve and retry."""
    try:
        with connect() as conn:
            state = _store(conn, runs_dir, cur, lines, end)
    except DATA_ERRORS as err:
        if not split:
            raise
        if len(lines) <= 1:
            return _commit_failed_line(connect, cur, lines, end, err)
        mid = len(lines) // 2
        first = _commit(connect, runs_dir, cur, lines[:mid], lines[mid - 1].end, split)
        return first + _commit(connect, runs_dir, cur, lines[mid:], end, split)
    _advance(cur, state)
    return sum(1 for line in lines if line.event is not None or line.error is not None)


def _commit_failed_line(
    connect: Connect, cur: Cursor, lines: list[Line], end: int, err: Exception
) -> int:
    problem = lines[0].error if lines else None
    line = lines[0] if lines else Line(cur.line_no, end)
    text = f"{cur.path} line {line.number} could not be stored ({problem or err}); skipped it"
    event = line.event
    bad = Line(line.number, end, error=text, seq=event and event.seq, t=event and event.t)
    with connect() as conn:
        state = _store(conn, Path(), cur, [bad], end, raw_errors=True)
    _advance(cur, state)
    return 1


def _advance(cur: Cursor, state: dict[str, Any]) -> None:
    cur.offset = cur.read_from = state["byte_offset"]
    cur.last_seq, cur.attempt, cur.line_no = state["last_seq"], state["attempt"], state["line_no"]
    cur.shrank = False


def _advance_to(cur: Cursor, other: Cursor) -> None:
    """Make `cur` what `other` says (a cursor read again, or one from before a rollback)."""
    for field in fields(Cursor):
        setattr(cur, field.name, getattr(other, field.name))


def _store(
    conn: duckdb.DuckDBPyConnection,
    runs_dir: Path,
    cur: Cursor,
    lines: list[Line],
    end: int,
    raw_errors: bool = False,
    metric_rows: MetricRows | None = None,
    last_number: int | None = None,
    status: str | None = None,
    held: bool = False,
) -> dict[str, Any]:
    """Store checked lines (and a chunk's metrics lines as columns) up to byte `end`; the
    state returned is what `save_offset` saves, with the run's status after. With `status`
    (the run's, as the chunk before in this transaction left it) the offset is not checked
    again. `held`: in a lock hold, whose connection is on one thread already and which
    saves the offset once, after its last chunk."""
    if status is None:
        status = _check_position(conn, cur)
    rows = EventRows(cur.run_id)
    if cur.shrank:
        rows.note("warning", f"{cur.path} shrank below the {cur.offset} bytes already read; "
                  "read it again")  # fmt: skip
    attempt, last_seq, events, starts = cur.attempt, cur.last_seq, [], []
    for line in lines:
        if line.error is not None:
            text = line.error if raw_errors else f"{cur.path} line {line.number} {line.error}"
            when = None if line.t is None else micros(line.t)
            rows.note("error", text if raw_errors else f"{text}; skipped it", when, line.seq)
        elif line.event is not None:
            if isinstance(line.event, RunStarted):
                attempt += 1
                starts.append(line.number)
            rows.add(line.event, max(attempt, 1))
            last_seq = max(last_seq, line.event.seq or 0)
            events.append(line.event)
    rows.insert(conn)
    seen = {row[8] for row in rows.rows["metrics"]}
    if metric_rows is not None:
        row_attempts = metric_rows.attempts(starts, cur.attempt)
        metric_rows.insert(conn, cur.run_id, row_attempts, one_thread=held)
        seen |= set(metric_rows.unique(row_attempts))
        last_seq = max(last_seq, metric_rows.max_seq)
    has_seq = metric_rows is not None and metric_rows.lines > 0
    changes = run_changes(status, events, seen_seq=has_seq)
    _update_run(conn, cur.run_id, changes)
    _supersede(conn, cur.run_id, seen, cur.attempt, attempt)
    _register_models(conn, runs_dir, cur.run_id, events)
    if last_number is None:
        last_number = lines[-1].number if lines else cur.line_no
    state = {"byte_offset": end, "last_seq": last_seq, "attempt": attempt,
             "line_no": last_number, "status": changes.get("status", status)}  # fmt: skip
    if not held:
        save_offset(conn, cur.run_id, state)
    return state


def _check_position(conn: duckdb.DuckDBPyConnection, cur: Cursor) -> str:
    row = conn.execute(
        "SELECT r.status, coalesce(o.byte_offset, 0) FROM runs r "
        "LEFT JOIN ingest_offsets o USING (run_id) WHERE r.run_id = ?",
        [cur.run_id],
    ).fetchone()
    if row is None:
        raise Gone(cur.run_id)
    if row[1] != cur.offset:
        raise Moved(cur.run_id)
    return row[0]


def _supersede(
    conn: duckdb.DuckDBPyConnection, run_id: str, seen: set[int], before: int, after: int
) -> None:
    """Mark what the attempts whose metric rows were just stored (`seen`) supersede."""
    for attempt in sorted(a for a in seen if a > 1):
        attempts.mark_superseded(conn, run_id, attempt)
    for attempt in range(max(before + 1, 2), after + 1):
        if attempt not in seen:
            attempts.mark_superseded(conn, run_id, attempt)


def _register_models(
    conn: duckdb.DuckDBPyConnection, runs_dir: Path, run_id: str, events: list[Event]
) -> None:
    """Register each `model` artifact (idempotent: the same folder updates its version)."""
    for e in events:
        if not (isinstance(e, Artifact) and e.type == "model"):
            continue
        try:
            found = model_fields(run_id, e)
            if found is not None:
                name, kind, fields = found
                registry.register(conn, runs_dir.parent / "models", name, kind, "trained",
                                  e.path, fields)  # fmt: skip
        except (StoreError, EventError) as err:
            text = f"model artifact {e.path} (seq {e.seq}) was not registered: {err}"
            insert_rows(conn, "notes", [(run_id, "error", text, micros(e.t), e.seq)])


def _update_run(conn: duckdb.DuckDBPyConnection, run_id: str, changes: dict[str, Any]) -> None:
    if changes:
        sets = ", ".join(f"{col} = ?" for col in changes)
        conn.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", [*changes.values(), run_id])
