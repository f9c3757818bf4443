"""The metrics lines of an ingest chunk, parsed and checked as columns instead of one by one.

Most of a training run's log is `metrics` lines. `parse_metrics` hands those lines of a chunk
to Arrow's JSON reader in one call and checks each column at once, with the same rules as
`Metrics.from_dict` (store/checks.py): seq a non-negative integer, t unix seconds between 1970
and 9999, step an integer (missing: 0), every value a number, split text (missing: train).
Anything the columns cannot prove exactly as the per-line checks would — a value given as
"nan", a null, a fractional seq, a control character, a key given twice, bytes that are not
UTF-8, a line Arrow reads otherwise than Python's json — returns None, and the caller parses
every line of the chunk on its own as before, so what is stored, and every error note, is
the same either way. Arrow reads numbers bit for bit as Python's json does.

`MetricRows.insert` copies the rows into `metrics` with one INSERT … SELECT from Arrow.
numpy and pyarrow are imported when a chunk is parsed, not with `store`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from store.checks import MAX_UNIX_S, clean_text
from store.ingest_rows import insert_arrow, sql_text

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pyarrow as pa

MARKS = (b'"kind": "metrics"', b'"kind":"metrics"')  # how writers put it; checked again below
BLOCK_BYTES = 1 << 20  # Arrow parses blocks of this size on its threads
MAX_UNMARKED = 64  # a block with more lines that are not metrics is split into lines
_CONTROL = bytes(b for b in range(32) if b != ord("\n"))


def metric_lines(lines: list[tuple[bytes, int]]) -> list[int]:
    """Indexes of the lines that look like metrics events (the columns decide if they are)."""
    a, b = MARKS
    return [i for i, (raw, _) in enumerate(lines) if a in raw or b in raw]


def marks(data: bytes, start: int = 0, end: int | None = None, lines: int = -1) -> int:
    """How many metrics marks the bytes hold (one a metrics line, as writers put it); the
    second spelling is not counted when the first makes `lines`."""
    a, b = MARKS
    end = len(data) if end is None else end
    found = data.count(a, start, end)
    return found if found == lines else found + data.count(b, start, end)


def unmarked_lines(data: bytes, n_lines: int, n_marks: int) -> list[tuple[int, int, int]] | None:
    """(index, start, end) of the lines of a block without a metrics mark, when the marks
    fall short of the lines by at most MAX_UNMARKED (a run_started among metrics, say):
    ranges with fewer marks than lines are halved until those lines are found, a few byte
    counts instead of a split of every line. None when more lines are unmarked (or none)."""
    if not 0 < n_lines - n_marks <= MAX_UNMARKED:
        return None
    found: list[tuple[int, int, int]] = []
    ranges = [(0, len(data), 0, n_lines, n_marks)]  # start, end, first line, lines, marks
    while ranges:
        start, end, first, lines, marked = ranges.pop()
        if marked >= lines:
            continue  # one mark a line, by count (the columns check every line's kind)
        if lines == 1:
            found.append((first, start, end))
            if len(found) > MAX_UNMARKED:
                return None
            continue
        half = (start + end) // 2
        cut = data.rfind(b"\n", start, half) + 1 or data.find(b"\n", half, end - 1) + 1
        left, left_marks = data.count(b"\n", start, cut), marks(data, start, cut)
        ranges.append((cut, end, first + left, lines - left, marked - left_marks))
        ranges.append((start, cut, first, left, left_marks))
    return sorted(found)


@dataclass
class MetricRows:
    """The metric rows of a chunk's metrics lines, one per value, in line order."""

    line_numbers: np.ndarray  # the file's line number of each metrics line, ascending
    row_lines: np.ndarray  # index into line_numbers of each row
    columns: dict[str, Any]  # step, name, value, nonfinite, split, t (µs), seq: Arrow arrays
    max_seq: int

    @property
    def lines(self) -> int:
        return len(self.line_numbers)

    def attempts(self, start_numbers: list[int], before: int) -> np.ndarray:
        """Each row's attempt: `before` plus the run_started lines above it (at least 1)."""
        import numpy as np

        starts = np.asarray(start_numbers, dtype=np.int64)
        per_line = before + np.searchsorted(starts, self.line_numbers, side="left")
        return np.maximum(per_line[self.row_lines], 1).astype(np.int32)

    @staticmethod
    def unique(attempts: np.ndarray) -> list[int]:
        import numpy as np

        return np.unique(attempts).tolist()

    def insert(
        self,
        conn: duckdb.DuckDBPyConnection,
        run_id: str,
        attempts: np.ndarray,
        one_thread: bool = False,
    ) -> None:
        """Insert the rows (`one_thread`: the connection is on one thread already)."""
        import pyarrow as pa

        table = pa.table({**self.columns, "attempt": pa.array(attempts, pa.int32())})
        # One thread: an append of one chunk gains nothing from DuckDB's pool, and on a busy
        # machine waking it cost 3x the insert (55 ms against 160 ms for 41k rows).
        threads = 1
        if not one_thread:
            (threads,) = conn.execute("SELECT current_setting('threads')").fetchone()
            conn.execute("SET threads = 1")
        try:
            insert_arrow(
                conn, table,
                "INSERT INTO metrics (run_id, step, name, value, nonfinite, split, t, seq, "
                f"attempt, superseded) SELECT {sql_text(run_id)}, step, name, value, nonfinite, "
                "split, t, seq, attempt, false FROM _metric_rows",
                "_metric_rows",
            )  # fmt: skip
        finally:
            if not one_thread:
                conn.execute(f"SET threads = {int(threads)}")


def parse_metrics(data: bytes, line_numbers: np.ndarray) -> MetricRows | None:
    """The rows of these metrics lines (`data`, one line each of `line_numbers`), checked;
    None when any line needs the per-line path."""
    import pyarrow as pa
    import pyarrow.json as pj

    if _unusual_bytes(data, len(line_numbers)):
        return None
    options = pj.ReadOptions(use_threads=True, block_size=BLOCK_BYTES)
    try:
        table = pj.read_json(pa.BufferReader(data), read_options=options)  # no copy
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if table.num_rows != len(line_numbers):  # a line holding two objects, say
        return None
    table = table.combine_chunks()
    line = _line_columns(table)
    if line is None:
        return None
    return _rows(table, line, line_numbers)


def _unusual_bytes(data: bytes, n_lines: int) -> bool:
    """Bytes that Arrow's reader and Python's json may read differently, or that need a
    per-line check (a null is a missing field to Arrow but an error to a metric value)."""
    if b"null" in data or data.count(b"\n") != n_lines or not data.endswith(b"\n"):
        return True
    if len(data.translate(None, _CONTROL)) != len(data):  # json refuses these in strings
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _is_int(t: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_int64(t)


def _is_number(t: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_int64(t) or pa.types.is_float64(t)


def _line_columns(table: pa.Table) -> dict[str, np.ndarray] | None:
    """seq, t (µs), step of each line, checked as Metrics.from_dict checks them."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    names = set(table.column_names)
    if not {"kind", "seq", "t"} <= names:
        return None
    kind, seq, t = table["kind"], table["seq"], table["t"]
    if kind.null_count or not pa.types.is_string(kind.type):
        return None
    if not pc.all(pc.equal(kind, "metrics")).as_py():
        return None
    if seq.null_count or not _is_int(seq.type) or t.null_count or not _is_number(t.type):
        return None
    seqs = seq.to_numpy()
    seconds = t.to_numpy().astype(np.float64)
    if seqs.min() < 0 or not np.all((seconds >= 0) & (seconds <= MAX_UNIX_S)):
        return None
    step = np.zeros(len(seqs), dtype=np.int64)
    if "step" in names:
        if not _is_int(table["step"].type):
            return None
        step = pc.fill_null(table["step"], 0).to_numpy()
    # as micros(): int(t * 1_000_000), truncating toward zero (t >= 0 here)
    micros = (seconds * 1_000_000).astype(np.int64)
    return {"seq": seqs, "t": micros, "step": step}


def _split(table: pa.Table) -> pa.Array | None:
    """Each line's split: its text, or train when missing."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if "split" not in table.column_names:
        return pa.array(["train"] * table.num_rows, pa.string())
    split = table["split"]
    if not pa.types.is_string(split.type):
        return None
    split = pc.fill_null(split, "train").combine_chunks()
    if any(clean_text(s) != s for s in pc.unique(split).to_pylist()):
        return None
    return split


def _rows(table: pa.Table, line: dict[str, np.ndarray], numbers: np.ndarray) -> MetricRows | None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    split = _split(table)
    if split is None:
        return None
    per_field: list[tuple[np.ndarray, np.ndarray]] = []  # (line index, value) per field
    names: list[str] = []
    if "values" in table.column_names:
        values = table["values"].combine_chunks()
        if not pa.types.is_struct(values.type):
            return None
        present = values.is_valid().to_numpy(zero_copy_only=False)
        for i in range(values.type.num_fields):
            field = values.type.field(i)
            child = values.field(i)
            if not _is_number(field.type) or clean_text(field.name) != field.name:
                return None
            keep = present & child.is_valid().to_numpy(zero_copy_only=False)
            where = np.flatnonzero(keep)
            numbers_f = child.to_numpy(zero_copy_only=False)[where].astype(np.float64)
            per_field.append((where, numbers_f))
            names.append(field.name)
    if per_field:
        row_lines = np.concatenate([w for w, _ in per_field])
        value = np.concatenate([v for _, v in per_field])
        field_id = np.concatenate(
            [np.full(len(w), i, np.int32) for i, (w, _) in enumerate(per_field)]
        )
        order = np.argsort(row_lines, kind="stable")  # line order; a line's values in field order
        row_lines, value, field_id = row_lines[order], value[order], field_id[order]
    else:
        row_lines, value = np.zeros(0, np.int64), np.zeros(0, np.float64)
        field_id = np.zeros(0, np.int32)
    row_split = pc.take(split, pa.array(row_lines, pa.int64()))
    name = _names(names, field_id, pc.equal(row_split, "val").to_numpy(zero_copy_only=False))
    finite = np.isfinite(value)
    columns = {
        "step": pa.array(line["step"][row_lines], pa.int64()),
        "name": name,
        "value": pa.array(value, pa.float64(), mask=~finite),
        "nonfinite": pa.array(~finite, pa.bool_()),
        "split": row_split,
        "t": pa.array(line["t"][row_lines], pa.timestamp("us")),
        "seq": pa.array(line["seq"][row_lines], pa.int64()),
    }
    return MetricRows(numbers, row_lines, columns, int(line["seq"].max()))


def _names(names: list[str], field_id: np.ndarray, is_val: np.ndarray) -> pa.Array:
    """Each row's stored name (`metric_name`: a val row's `val_x` is stored as `x`)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    stored = [n[4:] if n.startswith("val_") and len(n) > 4 else n for n in names]
    index = np.where(is_val, field_id + len(names), field_id).astype(np.int32)
    return pc.take(pa.array(names + stored, pa.string()), pa.array(index, pa.int32()))
