"""Issue 10 #3 and issue 9 #6: models register from their `model` artifact event, whoever
ingests it, idempotently; a name reused by another run keeps the old one as a version."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from store import Store
from store.events import Artifact, RunFinished, RunStarted

from .conftest import new_run


def _model_artifact(folder: Path, name: str = "pretrain-tiny") -> Artifact:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    meta = {"name": name, "kind": "base", "params": 1234, "architecture": "LlamaForCausalLM",
            "chat_template": False, "seed": 7}  # fmt: skip
    return Artifact(type="model", path=str(folder), meta=meta)


def _finish_run(store: Store, run_id: str, name: str = "pretrain-tiny") -> Path:
    folder = store.run_dir(run_id) / "model"
    with new_run(store, run_id) as log:
        log.append(RunStarted(pid=1))
        log.append(_model_artifact(folder, name))
        log.append(RunFinished(status="done"))
    return folder


def test_ingest_registers_the_model_artifact(store: Store) -> None:
    folder = _finish_run(store, "pretrain-1")
    store.refresh()
    model = store.get_model("pretrain-tiny")
    assert (model["path"], model["run_id"], model["kind"], model["source"]) == (
        str(folder), "pretrain-1", "base", "trained")  # fmt: skip
    assert (model["params"], model["architecture"], model["chat_template"]) == (
        1234, "LlamaForCausalLM", False)  # fmt: skip
    assert model["meta"] == {"seed": 7} and model["version"] == 1
    record = json.loads((folder / "workbench-model.json").read_text())
    assert (record["name"], record["version"], record["run_id"]) == (
        "pretrain-tiny",
        1,
        "pretrain-1",
    )


def test_the_job_and_the_ingest_both_registering_is_one_version(store: Store) -> None:
    folder = _finish_run(store, "pretrain-1")
    store.register_model("pretrain-tiny", "base", "trained", folder, run_id="pretrain-1")
    store.ingest()
    store.register_model("pretrain-tiny", "base", "trained", folder, run_id="pretrain-1")
    assert [m["ref"] for m in store.list_models()] == ["pretrain-tiny@1"]


def test_the_model_is_registered_even_when_the_job_could_not_reach_the_store(
    store: Store,
) -> None:
    """The job's own final ingest timed out (a duckdb shell held the file): the next
    command's ingest registers the model from the events."""
    store.list_runs()
    folder = store.run_dir("pretrain-1") / "model"
    code = (
        "import duckdb, time\n"
        f"c = duckdb.connect({str(store.db_path)!r}, read_only=True)\n"
        "print('held', flush=True); time.sleep(1.0); c.close()"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with _log_without_row(store, "pretrain-1") as log:  # the job appends while it is held
        log.append(RunStarted(pid=1))
        log.append(_model_artifact(folder))
        log.append(RunFinished(status="done"))
    assert holder.wait(timeout=10) == 0
    store.refresh()
    assert store.get_model("pretrain-tiny")["run_id"] == "pretrain-1"
    assert store.get_run("pretrain-1")["status"] == "done"


def _log_without_row(store: Store, run_id: str):
    from store import EventLog

    return EventLog(store.run_dir(run_id) / "events.jsonl")


def test_a_second_run_with_the_same_name_adds_a_version(store: Store) -> None:
    first = _finish_run(store, "pretrain-1")
    store.ingest()
    second = _finish_run(store, "pretrain-2")
    store.ingest()
    assert store.get_model("pretrain-tiny")["path"] == str(second)
    assert store.get_model("pretrain-tiny@1")["path"] == str(first)
    assert store.get_model("pretrain-tiny@2")["run_id"] == "pretrain-2"
    rows = [(m["ref"], m["version"], m["latest"]) for m in store.list_models()]
    assert rows == [("pretrain-tiny@1", 1, False), ("pretrain-tiny@2", 2, True)]


def test_an_artifact_with_register_false_or_a_bad_kind_is_not_registered(store: Store) -> None:
    with new_run(store, "pretrain-1") as log:
        log.append(Artifact(type="model", path="/x", meta={"register": False}))
        log.append(Artifact(type="model", path="/y", meta={"kind": "wizard"}))
    store.ingest()
    assert store.list_models() == []
    (note,) = store.notes("pretrain-1")
    assert note["level"] == "error" and "wizard" in note["text"]
