"""Runs, readers, models, comparisons, votes, experiments, sql and health."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from store import Store, StoreError
from store.events import Artifact, Metrics, Note, RunFinished, RunStarted, Sample, Table

from .conftest import new_run


def test_home_comes_from_the_environment(home: Path) -> None:
    store = Store()
    assert store.home == home and store.db_path == home / "workbench.duckdb"
    assert store.runs_dir.is_dir() and store.models_dir.is_dir() and store.cache_dir.is_dir()


def test_create_get_list_and_status_stamps(store: Store) -> None:
    store.create_run("sft-2", "sft", {"lr": 1e-5}, parents=["pretrain-1"], meta={"git": "abc"})
    store.create_run("pretrain-1", "pretrain", {"steps": 10}, name="tiny")
    run = store.get_run("sft-2")
    assert run["spec"] == {"lr": 1e-5} and run["meta"] == {"git": "abc"}
    assert run["parents"] == ["pretrain-1"] and run["status"] == "queued"
    assert run["run_dir"] == str(store.runs_dir / "sft-2")
    assert [r["run_id"] for r in store.list_runs()] == ["pretrain-1", "sft-2"]
    assert [r["run_id"] for r in store.list_runs(pipeline="sft")] == ["sft-2"]
    assert len(store.list_runs(limit=1)) == 1
    store.set_status("sft-2", "running")
    assert store.get_run("sft-2")["started_at"] is not None
    store.set_status("sft-2", "cancelled", "stopped by user")
    run = store.get_run("sft-2")
    assert (run["status"], run["reason"]) == ("cancelled", "stopped by user")
    assert run["finished_at"] >= run["started_at"]
    assert [r["run_id"] for r in store.list_runs(status="cancelled")] == ["sft-2"]
    assert [r["run_id"] for r in store.children("pretrain-1")] == ["sft-2"]
    assert store.get_run("nope") is None


def test_bad_input_raises_store_error(store: Store) -> None:
    store.create_run("a-1", "a", {})
    with pytest.raises(StoreError, match="already exists"):
        store.create_run("a-1", "a", {})
    with pytest.raises(StoreError, match="unknown run status"):
        store.set_status("a-1", "finished")
    with pytest.raises(StoreError, match="no run b-1"):
        store.set_status("b-1", "done")
    with pytest.raises(StoreError, match="limit must be 0 or more"):
        store.list_runs(limit=-1)


def test_event_readers_and_delete(store: Store) -> None:
    run_id = "pretrain-1"
    with new_run(store, run_id) as log:
        log.append(RunStarted(pid=123, device="cuda:0", world_size=2))
        for step in (1, 2, 3):
            log.append(Metrics(step=step, values={"loss": 4.0 - step, "lr": 0.1}))
            log.append(Sample(step=step, prompt="p", completion=f"c{step}", meta={"T": 0.8}))
        log.append(Metrics(step=3, values={"val_loss": 1.5}, split="val"))
        log.append(Table(name="mixture", rows=[{"source": "a", "tokens": 1}]))
        log.append(Table(name="mixture", rows=[{"source": "b", "tokens": 2}]))
        log.append(Artifact(type="model", path="/m", step=3))
        log.append(Note(text="hi", level="warning"))
        log.append(RunFinished(status="done"))
    store.ingest()
    run = store.get_run(run_id)
    assert (run["status"], run["device"], run["world_size"], run["pid"]) == (
        "done",
        "cuda:0",
        2,
        123,
    )
    assert (run["loss"], run["val_loss"], run["n_samples"]) == (1.0, 1.5, 3)
    assert run["duration_s"] >= 0
    assert [m["value"] for m in store.metrics(run_id, ["loss"], split="train")] == [3.0, 2.0, 1.0]
    assert [(m["name"], m["split"]) for m in store.metrics(run_id, ["val_loss"])] == [
        ("loss", "val")
    ]
    assert store.latest_metrics(run_id) == {"loss": 1.0, "lr": 0.1, "val_loss": 1.5}
    assert [s["completion"] for s in store.samples(run_id, limit=2)] == ["c2", "c3"]
    assert store.samples(run_id)[0]["meta"] == {"T": 0.8}
    assert store.table(run_id, "mixture") == [{"source": "b", "tokens": 2}]
    assert store.table(run_id, "other") == []
    assert store.artifacts(run_id)[0]["path"] == "/m"
    assert store.notes(run_id)[0]["level"] == "warning"
    store.delete_run(run_id)
    assert store.get_run(run_id) is None and store.metrics(run_id) == []
    assert store.health()["counts"]["ingest_offsets"] == 0


def test_models_registry_versions_and_upserts(store: Store) -> None:
    first = store.register_model("tiny", "base", "trained", "/a", params=100, run_id="p-1")
    again = store.register_model("tiny", "assistant", "trained", "/a", meta={"x": 1})
    assert (first["version"], first["ref"], first["latest"]) == (1, "tiny@1", True)
    assert again["created_at"] == first["created_at"] and again["version"] == 1
    assert (again["kind"], again["path"], again["params"], again["meta"]) == (
        "assistant", "/a", None, {"x": 1})  # fmt: skip
    second = store.register_model("tiny", "base", "trained", "/b", run_id="p-2")
    assert second["version"] == 2
    assert store.get_model("tiny")["path"] == "/b"
    assert store.get_model("tiny@1")["path"] == "/a" and store.get_model("tiny@3") is None
    store.register_model("emb", "embedding", "pulled", "/e", chat_template=False)
    assert [m["ref"] for m in store.list_models()] == ["emb@1", "tiny@1", "tiny@2"]
    assert [m["latest"] for m in store.list_models()] == [True, False, True]
    assert [m["ref"] for m in store.list_models(latest_only=True)] == ["emb@1", "tiny@2"]
    assert [m["name"] for m in store.list_models(kind="embedding")] == ["emb"]
    assert store.remove_model("tiny@2") and store.get_model("tiny")["version"] == 1
    assert store.remove_model("tiny") and not store.remove_model("tiny")
    assert store.get_model("tiny") is None
    with pytest.raises(StoreError, match="model kind"):
        store.register_model("x", "giant", "trained", "/x")
    with pytest.raises(StoreError, match="unknown model fields"):
        store.register_model("x", "base", "trained", "/x", colour="red")
    with pytest.raises(StoreError, match="@<number>"):
        store.register_model("x@2", "base", "trained", "/x")


def test_comparisons_votes_and_prompt_experiments(store: Store) -> None:
    cid = store.add_comparison("2+2?", ["4", "5"], source="votes")
    assert store.list_comparisons()[0]["completions"] == ["4", "5"]
    assert store.list_comparisons(source="manual") == []
    assert cid
    store.add_vote("hi", "m1", "m2", "a", "b", "a", voter="me")
    store.add_vote("hi", "m1", "m2", "a", "b", "tie")
    assert [v["winner"] for v in store.list_votes()] == ["a", "tie"]
    with pytest.raises(StoreError, match="winner"):
        store.add_vote("hi", "m1", "m2", "a", "b", "c")
    store.add_prompt_experiment("m1", "cot", "arith", 10, 0.7, tokens=50, transcripts=[{"q": 1}])
    (exp,) = store.list_prompt_experiments(model="m1")
    assert (exp["accuracy"], exp["transcripts"]) == (0.7, [{"q": 1}])


def test_sql_and_health(store: Store) -> None:
    store.create_run("a-1", "a", {})
    cols, rows = store.sql("SELECT run_id, status FROM runs")
    assert cols == ["run_id", "status"] and rows == [("a-1", "queued")]
    store.sql("CREATE TABLE mine (x INTEGER)", write=True)
    assert store.sql("INSERT INTO mine VALUES (?), (?)", [1, 2], write=True)[1] == [(2,)]
    health = store.health()
    assert health["schema_version"] == health["code_schema_version"] >= 2
    assert health["counts"]["runs"] == 1 and health["size_bytes"] > 0
    assert health["runs_by_status"] == {"queued": 1}
    assert health["ok"] and health["integrity"] == "ok" and health["schema_problems"] == []


def test_waits_for_another_program_holding_the_file(store: Store) -> None:
    store.list_runs()
    code = (
        "import duckdb, time\n"
        f"c = duckdb.connect({str(store.db_path)!r})\n"
        "print('held', flush=True); time.sleep(0.6); c.close()"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    store.create_run("a-1", "a", {})  # retries until the holder lets go
    assert holder.wait(timeout=10) == 0
    assert store.get_run("a-1") is not None


def test_gives_up_with_a_clear_error_when_the_file_stays_held(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from store import db

    store.list_runs()
    code = (
        "import duckdb, time\n"
        f"c = duckdb.connect({str(store.db_path)!r})\n"
        "print('held', flush=True); time.sleep(5)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(db, "CONNECT_ATTEMPTS", 2)
        with pytest.raises(StoreError, match="held open by another program"):
            store.list_runs()
    finally:
        holder.kill()
        holder.wait()
