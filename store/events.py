"""Events a job emits: plain, JSON-serialisable dataclasses.

A pipeline's `run(spec, ctx)` yields these; the runner appends each one as a JSON line to
`runs/<run_id>/events.jsonl`, and `Store.ingest` copies new lines into DuckDB. Front ends
print or render the same events: `event_from_dict(line)` turns a line back into its class, so
readers match on classes (`match event: case Metrics(): ...`) rather than on a kind string.

Every line in events.jsonl is `{"seq": n, "t": unix_seconds, "kind": ..., **fields}`.
`from_dict` checks every field's type and range (store/checks.py) and raises `EventError`
naming the field, so one bad line can never reach a DuckDB column.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Self

from store import checks as c
from store.checks import EventError

RUN_STATUSES = ("queued", "running", "done", "failed", "cancelled", "diverged", "crashed")
FINAL_STATUSES = ("done", "failed", "cancelled", "diverged", "crashed")

Check = Callable[[str, Any], Any]


@dataclass
class Event:
    """Base of every event. `seq` and `t` are set on events read back from a log."""

    kind: ClassVar[str] = "event"
    CHECKS: ClassVar[dict[str, Check]] = {}
    seq: int | None = field(default=None, kw_only=True, compare=False)
    t: float | None = field(default=None, kw_only=True, compare=False)

    def to_dict(self) -> dict[str, Any]:
        body = {"kind": self.kind, **asdict(self)}
        for key in ("seq", "t"):
            if body[key] is None:
                del body[key]
        return body

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """The event a JSON object describes; EventError names the first bad field."""
        values: dict[str, Any] = {}
        for name, check in _field_checks(cls):
            value = data.get(name)
            if value is not None:
                values[name] = value if check is None else check(name, value)
        seq, t = data.get("seq"), data.get("t")
        if seq is not None:
            values["seq"] = c.count("seq", seq)
        if t is not None:
            values["t"] = c.unix_time("t", t)
        return cls(**values)


@functools.cache
def _field_checks(cls: type[Event]) -> tuple[tuple[str, Check | None], ...]:
    """(field name, its check) for the fields of an event class other than seq and t."""
    names = [f.name for f in dataclasses.fields(cls) if f.name not in ("seq", "t")]
    return tuple((name, cls.CHECKS.get(name)) for name in names)


def _opt_int32(name: str, v: Any) -> int | None:
    return c.opt_integer(name, v, c.INT32)


def _int32(name: str, v: Any) -> int:
    return c.integer(name, v, c.INT32)


@dataclass
class RunStarted(Event):
    """A job process started (or resumed) the run: each one begins a new attempt."""

    kind: ClassVar[str] = "run_started"
    CHECKS: ClassVar[dict[str, Check]] = {
        "pid": _int32, "device": c.text, "world_size": _int32, "host": c.text,
    }  # fmt: skip
    pid: int = 0
    device: str = "cpu"
    world_size: int = 1
    host: str = field(default_factory=socket.gethostname)  # with pid: tells a dead job apart

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """As Event.from_dict, but a line without a host has host "" (unknown), not ours."""
        event = super().from_dict(data)
        if data.get("host") is None:
            event.host = ""
        return event


@dataclass
class RunFinished(Event):
    """The job ended. status is one of done, failed, cancelled, diverged."""

    kind: ClassVar[str] = "run_finished"
    CHECKS: ClassVar[dict[str, Check]] = {"status": c.text, "reason": c.opt_text}
    status: str = "done"
    reason: str | None = None


@dataclass
class Metrics(Event):
    """Scalars at one step. Non-finite values are kept (the store turns them into null + flag).

    `split` says what data they were measured on (train, val, eval, …); a validation loss is
    `Metrics(step, {"loss": x}, split="val")`, not a `val_loss` name.
    """

    kind: ClassVar[str] = "metrics"
    CHECKS: ClassVar[dict[str, Check]] = {
        "step": c.integer, "values": c.metric_values, "split": c.text,
    }  # fmt: skip
    step: int = 0
    values: dict[str, float] = field(default_factory=dict)
    split: str = "train"

    def to_dict(self) -> dict[str, Any]:
        clean = {}
        for k, v in self.values.items():
            v = float(v)
            clean[k] = v if math.isfinite(v) else repr(v)  # "nan", "inf" survive JSON
        body = {"kind": self.kind, "step": self.step, "values": clean, "split": self.split}
        return {**super().to_dict(), **body}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """The same checks as Event.from_dict, written out: metrics are most of every log."""
        step, values, split = data.get("step"), data.get("values"), data.get("split")
        seq, t = data.get("seq"), data.get("t")
        return cls(
            step=0 if step is None else c.integer("step", step),
            values={} if values is None else c.metric_values("values", values),
            split="train" if split is None else c.text("split", split),
            seq=None if seq is None else c.count("seq", seq),
            t=None if t is None else c.unix_time("t", t),
        )


@dataclass
class Sample(Event):
    kind: ClassVar[str] = "sample"
    CHECKS: ClassVar[dict[str, Check]] = {
        "step": c.opt_integer, "prompt": c.text, "completion": c.text, "meta": c.mapping,
    }  # fmt: skip
    step: int | None = 0
    prompt: str = ""
    completion: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Artifact(Event):
    """A file or folder the run made: checkpoint, model, tokenizer, index, report, shards.

    A `model` artifact registers the model when it is ingested; its meta carries the registry
    fields: name (default: the run id), kind (default base), params, architecture, tokenizer,
    chat_template, parent_model, and `register: false` to skip registration. Other meta keys
    land in the model's meta column.
    """

    kind: ClassVar[str] = "artifact"
    CHECKS: ClassVar[dict[str, Check]] = {
        "type": c.text, "path": c.text, "step": c.opt_integer, "meta": c.mapping,
    }  # fmt: skip
    type: str = "checkpoint"
    path: str = ""
    step: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Note(Event):
    kind: ClassVar[str] = "note"
    CHECKS: ClassVar[dict[str, Check]] = {"text": c.text, "level": c.text}
    text: str = ""
    level: str = "info"  # info | warning | error


@dataclass
class Progress(Event):
    """Where the job is: for progress bars. Stored only as the run's latest progress."""

    kind: ClassVar[str] = "progress"
    CHECKS: ClassVar[dict[str, Check]] = {
        "step": c.integer, "total": c.integer, "phase": c.text, "message": c.text,
    }  # fmt: skip
    step: int = 0
    total: int = 0
    phase: str = "train"
    message: str = ""


@dataclass
class Table(Event):
    """A small named table of rows (data accounting, eval results). Stored by name."""

    kind: ClassVar[str] = "table"
    CHECKS: ClassVar[dict[str, Check]] = {"name": c.text, "rows": c.rows}
    name: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)


KINDS: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (RunStarted, RunFinished, Metrics, Sample, Artifact, Note, Progress, Table)
}


def event_from_dict(data: dict[str, Any]) -> Event | None:
    """The Event class instance for one events.jsonl object; None for a kind this code does
    not know (kept in the file, ignored). Raises EventError for a field out of type or range."""
    if not isinstance(data, dict):
        raise EventError(f"an event must be a JSON object, got {type(data).__name__}")
    cls = KINDS.get(data.get("kind"))  # type: ignore[arg-type]
    return None if cls is None else cls.from_dict(data)


def metric_value(v: Any) -> tuple[float | None, bool]:
    """(value, nonfinite) for one metric value as it was read back from JSON."""
    if isinstance(v, str):
        return None, True
    v = float(v)
    return (v, False) if math.isfinite(v) else (None, True)


__all__ = [
    "FINAL_STATUSES", "KINDS", "RUN_STATUSES", "Artifact", "Event", "EventError", "Metrics",
    "Note", "Progress", "RunFinished", "RunStarted", "Sample", "Table", "event_from_dict",
    "metric_value",
]  # fmt: skip
