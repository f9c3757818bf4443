"""Issue 10 #11: a run whose folder was deleted is reported, and deleting a run forgets the
models inside its folder and cannot leave a phantom row behind a concurrent ingest."""

from __future__ import annotations

import shutil
import threading

from store import Store
from store.events import Artifact, Metrics, RunStarted

from .conftest import new_run


def test_a_run_without_its_folder_is_flagged_missing(store: Store) -> None:
    with new_run(store, "pretrain-1") as log:
        log.append(Metrics(step=1, values={"loss": 1.0}))
    with new_run(store, "pretrain-2"):
        pass
    store.refresh()
    shutil.rmtree(store.run_dir("pretrain-1"))
    store.refresh()
    assert {r["run_id"]: r["missing"] for r in store.list_runs()} == {
        "pretrain-1": True, "pretrain-2": False}  # fmt: skip
    assert store.get_run("pretrain-1")["missing"] is True
    assert store.missing_runs() == ["pretrain-1"]
    assert store.health()["missing_runs"] == ["pretrain-1"]


def test_delete_run_forgets_the_models_inside_its_folder(store: Store) -> None:
    model = store.run_dir("pretrain-1") / "model"
    with new_run(store, "pretrain-1") as log:
        model.mkdir()
        log.append(Artifact(type="model", path=str(model), meta={"name": "tiny"}))
    elsewhere = store.models_dir / "keep"
    elsewhere.mkdir()
    store.register_model("keep", "base", "imported", elsewhere, run_id="pretrain-1")
    store.ingest()
    assert store.delete_run("pretrain-1", remove_folder=True) == ["tiny@1"]
    assert [m["ref"] for m in store.list_models()] == ["keep@1"]
    assert not store.run_dir("pretrain-1").exists()
    assert list(store.runs_dir.iterdir()) == []


def test_delete_under_a_concurrent_ingest_leaves_no_phantom(store: Store) -> None:
    for i in range(8):
        with new_run(store, f"pretrain-{i}") as log:
            log.append(RunStarted(pid=1, host="elsewhere"))
            (store.run_dir(f"pretrain-{i}") / "run.json").write_text("{}")
    stop = threading.Event()

    def ingest_forever() -> None:
        other = Store(store.home)
        while not stop.is_set():
            other.ingest()

    thread = threading.Thread(target=ingest_forever)
    thread.start()
    try:
        for i in range(8):
            store.delete_run(f"pretrain-{i}", remove_folder=True)
    finally:
        stop.set()
        thread.join()
    store.ingest()
    assert store.list_runs() == []
