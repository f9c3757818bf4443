"""Ingest: idempotent, all-or-nothing, half lines, non-finite metrics, discovered runs."""

from __future__ import annotations

import json

import pytest

from store import Store
from store import ingest as ingest_mod
from store.events import Metrics, Note, Progress, RunFinished, RunStarted, Sample

from .conftest import new_run

RUN = "pretrain-20250101-000000-abcd"


def _counts(store: Store) -> dict[str, int]:
    return store.health()["counts"]


def test_ingest_twice_inserts_nothing_the_second_time(store: Store) -> None:
    with new_run(store, RUN) as log:
        log.append(RunStarted(pid=1))
        for step in range(50):
            log.append(Metrics(step=step, values={"loss": 1.0, "acc": 0.5}))
        log.append(Sample(step=1, prompt="a", completion="b"))
        log.append(Progress(step=50, total=100, phase="train", message="half"))
    assert store.ingest() == 53
    before = _counts(store)
    assert store.ingest() == 0 and store.ingest(RUN) == 0
    assert _counts(store) == before and before["metrics"] == 100
    run = store.get_run(RUN)
    assert (run["status"], run["progress_step"], run["progress_total"]) == ("running", 50, 100)
    assert store.sql("SELECT last_seq FROM ingest_offsets")[1] == [(53,)]


def test_a_failure_mid_ingest_leaves_nothing_behind(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    with new_run(store, RUN) as log:
        log.append(Metrics(step=1, values={"loss": 1.0}))

    def boom(*args: object) -> None:
        raise RuntimeError("crash between the inserts and the offsets")

    monkeypatch.setattr(ingest_mod, "save_offset", boom)
    with pytest.raises(RuntimeError):
        store.ingest()
    monkeypatch.undo()
    assert _counts(store)["metrics"] == 0
    assert store.ingest() == 1 and store.ingest() == 0
    assert _counts(store)["metrics"] == 1


def test_half_written_line_waits_for_its_end(store: Store) -> None:
    with new_run(store, RUN) as log:
        log.append(Metrics(step=1, values={"loss": 1.0}))
    path = store.run_dir(RUN) / "events.jsonl"
    line = json.dumps({"seq": 2, "t": 1.0, "kind": "metrics", "step": 2, "values": {"loss": 2}})
    with open(path, "a") as f:
        f.write(line[:20])
    assert store.ingest() == 1
    with open(path, "a") as f:
        f.write(line[20:] + "\n")
    assert store.ingest() == 1
    assert [m["step"] for m in store.metrics(RUN)] == [1, 2]


def test_nonfinite_metrics_are_null_with_a_flag(store: Store) -> None:
    with new_run(store, RUN) as log:
        log.append(Metrics(step=1, values={"loss": float("nan"), "gn": float("inf")}))
        log.append({"kind": "metrics", "step": 2, "values": {"loss": "nan", "gn": "-inf"}})
        log.append({"kind": "metrics", "step": 3, "values": {"loss": float("-inf"), "gn": 2}})
    store.ingest()
    rows = [(m["step"], m["name"], m["value"], m["nonfinite"]) for m in store.metrics(RUN)]
    assert rows == [
        (1, "gn", None, True), (1, "loss", None, True),
        (2, "gn", None, True), (2, "loss", None, True),
        (3, "gn", 2.0, False), (3, "loss", None, True),
    ]  # fmt: skip
    latest = store.latest_metrics(RUN)
    assert latest["gn"] == 2.0 and latest["loss"] != latest["loss"]  # NaN


def test_bad_lines_and_events_become_error_notes(store: Store) -> None:
    with new_run(store, RUN) as log:
        log.append({"kind": "metrics", "step": 1, "values": "not a dict"})
        log.append({"kind": "something_new", "x": 1})
    with open(store.run_dir(RUN) / "events.jsonl", "a") as f:
        f.write("{oops\n")
    store.ingest()
    notes = store.notes(RUN)
    assert [n["level"] for n in notes] == ["error", "error"]
    assert "could not be stored" in notes[0]["text"] and "not valid JSON" in notes[1]["text"]


def test_finished_runs_are_reread_only_when_their_log_grows(store: Store) -> None:
    with new_run(store, RUN) as log:
        log.append(RunFinished(status="diverged", reason="loss is nan"))
    store.ingest()
    run = store.get_run(RUN)
    assert (run["status"], run["reason"]) == ("diverged", "loss is nan")
    with open(store.run_dir(RUN) / "events.jsonl", "a") as f:
        f.write(json.dumps({"seq": 2, "t": 2.0, "kind": "note", "text": "late"}) + "\n")
    assert store.ingest() == 1 and store.notes(RUN)[0]["text"] == "late"


def test_runs_without_a_folder_are_skipped(store: Store) -> None:
    store.create_run(RUN, "pretrain", {})
    assert store.ingest() == 0 and store.get_run(RUN)["status"] == "queued"


def test_a_run_folder_without_a_row_is_discovered(store: Store) -> None:
    folder = store.run_dir("sft-20250101-000000-0000")
    folder.mkdir(parents=True)
    spec = {"run_id": folder.name, "pipeline": "sft", "spec": {"lr": 1}, "parents": ["p-1"]}
    (folder / "run.json").write_text(json.dumps(spec))
    from store import EventLog

    with EventLog(folder / "events.jsonl") as log:
        log.append(Note(text="hi"))
    assert store.ingest() == 1
    run = store.get_run(folder.name)
    assert (run["pipeline"], run["spec"], run["parents"]) == ("sft", {"lr": 1}, ["p-1"])
