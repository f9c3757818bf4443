"""What a run's events change in its `runs` row and in the model registry."""

from __future__ import annotations

from typing import Any

from store import checks
from store.events import FINAL_STATUSES, Artifact, Event, Progress, RunFinished, RunStarted
from store.ingest_rows import ts

MODEL_COLUMNS = ("params", "architecture", "tokenizer", "chat_template", "parent_model")


def run_changes(status: str, events: list[Event], seen_seq: bool = False) -> dict[str, Any]:
    """The `runs` columns that a run's new events change, applied in order. `seen_seq`: the
    job also logged lines not in `events` (metrics stored as columns) with a seq."""
    changes: dict[str, Any] = {}
    finished = False
    for e in events:
        match e:
            case RunStarted():
                changes.update(_started(e))
            case RunFinished():
                changes.update(_finished(e))
                finished = True
            case Progress():
                changes.update(progress_step=e.step, progress_total=e.total,
                               progress_phase=e.phase, progress_message=e.message)  # fmt: skip
    seen_job = seen_seq or any(e.seq is not None for e in events)
    if status == "crashed" and seen_job and not finished and "status" not in changes:
        changes.update(status="running", reason=None)  # it was alive after all
    return changes


def _started(e: RunStarted) -> dict[str, Any]:
    return {
        "status": "running",
        "reason": None,
        "finished_at": None,
        "started_at": ts(e.t),
        "pid": e.pid,
        "host": e.host or None,
        "device": e.device,
        "world_size": e.world_size,
    }


def _finished(e: RunFinished) -> dict[str, Any]:
    status, reason = e.status, e.reason
    if status not in FINAL_STATUSES:
        status, reason = "failed", f"run_finished with unknown status {status!r}: {reason}"
    return {"status": status, "reason": reason, "finished_at": ts(e.t)}


def model_fields(run_id: str, a: Artifact) -> tuple[str, str, dict[str, Any]] | None:
    """(name, kind, registry fields) from a `model` artifact's meta; None: not to register."""
    meta = dict(a.meta)
    if meta.pop("register", True) is False:
        return None
    name = checks.text("meta.name", meta.pop("name", None) or run_id)
    kind = checks.text("meta.kind", meta.pop("kind", None) or "base")
    fields: dict[str, Any] = {"run_id": run_id}
    for key in MODEL_COLUMNS:
        if meta.get(key) is not None:
            fields[key] = _model_field(key, meta.pop(key))
    fields["meta"] = meta
    return name, kind, fields


def _model_field(key: str, value: Any) -> Any:
    if key == "params":
        return checks.integer("meta.params", value)
    if key == "chat_template":
        return checks.flag("meta.chat_template", value)
    return checks.text(f"meta.{key}", value)
