"""Per-run event logs: `runs/<run_id>/events.jsonl`, one JSON object a line, append-only.

A job appends with `EventLog(path).append(event)`; each line is written by one `os.write`
on an `O_APPEND` descriptor, so a reader never sees two events interleaved and sees at most
one half-written last line (left for the next call by `read_events`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Self

from store.checks import json_finite
from store.events import Event

_TAIL_CHUNK = 64 * 1024
CHUNK_BYTES = 4 * 1024 * 1024  # ingest reads and checks a log at most about this much at once


class EventLog:
    """Append-only writer for one events.jsonl. Thread-safe; `seq` continues across reopens."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.seq = last_seq(self.path)
        if not _ends_with_newline(self.path):
            _write_all(self._fd, b"\n")  # end a line torn by a killed writer; readers flag it

    def append(self, event: Event | dict[str, Any]) -> dict[str, Any]:
        """Write one event as a line (adding `seq` and `t`) and return the dict written."""
        body = event.to_dict() if isinstance(event, Event) else dict(event)
        assert "kind" in body, f"an event needs a 'kind': {body!r}"
        body.pop("seq", None)
        with self._lock:
            if self._fd is None:
                raise ValueError(f"event log {self.path} is closed")
            self.seq += 1
            record = {"seq": self.seq, "t": body.pop("t", None) or time.time(), **body}
            _write_all(self._fd, (dumps(record) + "\n").encode())
        return record

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            self.close()


def read_events(path: Path | str, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Parse the complete lines of `path` from byte `offset`; return (events, new offset).

    A last line without its newline is not consumed. A corrupt complete line is skipped and
    reported in its place as a note event with level "error" (and no seq).
    """
    events: list[dict[str, Any]] = []
    while True:
        lines, end = read_lines(path, offset)
        if end == offset:
            return events, offset
        events += [_parse_line(line, path, pos) for line, pos in lines if line.strip()]
        offset = end


def read_lines(
    path: Path | str, offset: int, max_bytes: int | None = None
) -> tuple[list[tuple[bytes, int]], int]:
    """Up to about `max_bytes` of complete lines from byte `offset`: ([(line, start)], end).

    Memory stays bounded by max_bytes (or by one line, when a line is longer); a last line
    without its newline is left for the next call.
    """
    data, end = read_block(path, offset, max_bytes)
    return split_lines(data, offset), end


def read_block(path: Path | str, offset: int, max_bytes: int | None = None) -> tuple[bytes, int]:
    """The bytes of `read_lines` in one piece, unsplit: (complete lines, end)."""
    max_bytes = max_bytes or CHUNK_BYTES
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(max_bytes)
            while data and b"\n" not in data:
                more = f.read(max_bytes)
                if not more:
                    break
                data += more
    except FileNotFoundError:
        return b"", offset
    cut = data.rfind(b"\n") + 1
    return (data if cut == len(data) else data[:cut]), offset + cut


def split_lines(data: bytes, offset: int) -> list[tuple[bytes, int]]:
    """[(line, start)] of a block of complete lines that begins at byte `offset`."""
    lines, pos = [], offset
    for line in data.splitlines(keepends=True):
        lines.append((line, pos))
        pos += len(line)
    return lines


def last_seq(path: Path | str) -> int:
    """The `seq` of the last complete, valid line of an events file (0 if none)."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return 0
    chunk = _TAIL_CHUNK
    with open(path, "rb") as f:
        while True:
            start = max(0, size - chunk)
            f.seek(start)
            lines = f.read().split(b"\n")[:-1]  # drop the part after the last newline
            for line in reversed(lines if start == 0 else lines[1:]):
                seq = _seq_of(line)
                if seq is not None:
                    return seq
            if start == 0:
                return 0
            chunk *= 2


def dumps(record: dict[str, Any]) -> str:
    """One-line JSON; non-finite floats become "nan"/"inf" strings so any JSON reader copes."""
    try:
        return json.dumps(record, allow_nan=False, default=str, ensure_ascii=False)
    except ValueError:
        return json.dumps(json_finite(record), allow_nan=False, default=str, ensure_ascii=False)


def _parse_line(line: bytes, path: Path | str, pos: int) -> dict[str, Any]:
    try:
        event = json.loads(line)
        if isinstance(event, dict) and "kind" in event:
            return event
        problem = "is not an event object with a 'kind'"
    except ValueError as err:
        problem = f"is not valid JSON ({err})"
    text = f"{path}: line at byte {pos} {problem}; skipped it"
    return {"kind": "note", "level": "error", "text": text, "t": time.time()}


def _seq_of(line: bytes) -> int | None:
    try:
        seq = json.loads(line).get("seq")
    except (ValueError, AttributeError):
        return None
    return seq if isinstance(seq, int) else None


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
