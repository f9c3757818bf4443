"""Issue 8: events are declared once (store.events.KINDS), read back into their classes with
`event_from_dict`, and validation metrics are told apart by split, not by a `val_` name."""

from __future__ import annotations

import pytest

from store import EventLog, Store, read_events
from store.events import (
    KINDS,
    Artifact,
    Metrics,
    Note,
    Progress,
    RunFinished,
    RunStarted,
    Sample,
    Table,
    event_from_dict,
)  # fmt: skip

from .conftest import new_run

EXAMPLES = [
    RunStarted(pid=12, device="cuda:0", world_size=2, host="gpu-box"),
    RunFinished(status="failed", reason="boom"),
    Metrics(step=3, values={"loss": 1.5, "lr": 3e-4}, split="val"),
    Sample(step=2, prompt="p", completion="c", meta={"T": 0.8}),
    Artifact(type="model", path="/m", step=9, meta={"name": "tiny"}),
    Note(text="hi", level="warning"),
    Progress(step=5, total=10, phase="eval", message="half"),
    Table(name="mixture", rows=[{"source": "a", "tokens": 1}]),
]


def test_every_kind_has_an_example() -> None:
    assert sorted(KINDS) == sorted(e.kind for e in EXAMPLES)


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.kind)
def test_a_logged_event_reads_back_as_its_class(tmp_path, event) -> None:
    with EventLog(tmp_path / "events.jsonl") as log:
        log.append(event)
    (line,) = read_events(tmp_path / "events.jsonl")[0]
    back = event_from_dict(line)
    assert type(back) is type(event) and back == event
    assert back.seq == 1 and back.t is not None


def test_validation_metrics_keep_their_name_with_split_val(store: Store) -> None:
    with new_run(store, "pretrain-1") as log:
        log.append(Metrics(step=1, values={"loss": 2.0}))
        log.append(Metrics(step=1, values={"loss": 2.5}, split="val"))
        log.append(Metrics(step=2, values={"val_loss": 2.4, "val_ppl": 11.0}, split="val"))
        log.append(Metrics(step=2, values={"accuracy": 0.5}, split="eval"))
    store.ingest()
    rows = {(m["step"], m["name"], m["split"]) for m in store.metrics("pretrain-1")}
    assert rows == {(1, "loss", "train"), (1, "loss", "val"), (2, "loss", "val"),
                    (2, "ppl", "val"), (2, "accuracy", "eval")}  # fmt: skip
    assert store.latest_metrics("pretrain-1") == {
        "loss": 2.0, "val_loss": 2.4, "val_ppl": 11.0, "accuracy": 0.5}  # fmt: skip
    run = store.get_run("pretrain-1")
    assert (run["loss"], run["val_loss"]) == (2.0, 2.4)


def test_a_run_started_line_without_a_host_is_not_this_machine() -> None:
    event = event_from_dict({"kind": "run_started", "pid": 5})
    assert isinstance(event, RunStarted) and event.host == ""
