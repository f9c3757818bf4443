"""Events a job emits: plain, JSON-serialisable dataclasses.

A pipeline's `run(spec, ctx)` yields these; the runner appends each one as a JSON line to
`runs/<run_id>/events.jsonl`, and `Store.ingest` copies new lines into DuckDB. Front ends
print or render the same dicts (`workbench run --json` prints them as they come).

Every line in events.jsonl is `{"seq": n, "t": unix_seconds, "kind": ..., **fields}`.
"""

from __future__ import annotations

import math
import socket
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

RUN_STATUSES = ("queued", "running", "done", "failed", "cancelled", "diverged", "crashed")
FINAL_STATUSES = ("done", "failed", "cancelled", "diverged", "crashed")


@dataclass
class Event:
    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    pid: int = 0
    device: str = "cpu"
    world_size: int = 1
    host: str = field(default_factory=socket.gethostname)  # with pid: tells a dead job apart


@dataclass
class RunFinished(Event):
    """The job ended. status is one of done, failed, cancelled, diverged."""

    kind: ClassVar[str] = "run_finished"
    status: str = "done"
    reason: str | None = None


@dataclass
class Metrics(Event):
    """Scalars at one step. Non-finite values are kept (the store turns them into null + flag)."""

    kind: ClassVar[str] = "metrics"
    step: int = 0
    values: dict[str, float] = field(default_factory=dict)
    split: str = "train"

    def to_dict(self) -> dict[str, Any]:
        clean = {}
        for k, v in self.values.items():
            v = float(v)
            clean[k] = v if math.isfinite(v) else repr(v)  # "nan", "inf" survive JSON
        return {"kind": self.kind, "step": self.step, "values": clean, "split": self.split}


@dataclass
class Sample(Event):
    kind: ClassVar[str] = "sample"
    step: int = 0
    prompt: str = ""
    completion: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Artifact(Event):
    """A file or folder the run made: checkpoint, model, tokenizer, index, report, shards."""

    kind: ClassVar[str] = "artifact"
    type: str = "checkpoint"
    path: str = ""
    step: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Note(Event):
    kind: ClassVar[str] = "note"
    text: str = ""
    level: str = "info"  # info | warning | error


@dataclass
class Progress(Event):
    """Where the job is: for progress bars. Stored only as the run's latest progress."""

    kind: ClassVar[str] = "progress"
    step: int = 0
    total: int = 0
    phase: str = "train"
    message: str = ""


@dataclass
class Table(Event):
    """A small named table of rows (data accounting, eval results). Stored by name."""

    kind: ClassVar[str] = "table"
    name: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)


KINDS = {
    cls.kind: cls
    for cls in (RunStarted, RunFinished, Metrics, Sample, Artifact, Note, Progress, Table)
}


def metric_value(v: Any) -> tuple[float | None, bool]:
    """(value, nonfinite) for one metric value as it was read back from JSON."""
    if isinstance(v, str):
        return None, True
    v = float(v)
    return (v, False) if math.isfinite(v) else (None, True)
