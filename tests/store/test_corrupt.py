"""Issue 10 #8: a damaged store is diagnosed with the file and the fix, and `rebuild()` moves
it aside (kept) and recreates runs and registered models from their folders."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from store import Store, StoreError
from store.db import forget_migrated
from store.events import Artifact, Metrics, RunFinished, RunStarted

from .conftest import new_run

BLOCK = 262144
HEADER = 3 * 4096


def _store_with_runs(store: Store) -> Path:
    """Two runs (one with a registered model, one with many metrics) and an imported model."""
    model = store.run_dir("pretrain-1") / "model"
    with new_run(store, "pretrain-1") as log:
        log.append(RunStarted(pid=1, host="elsewhere"))
        model.mkdir(parents=True)
        log.append(Artifact(type="model", path=str(model), meta={"name": "tiny", "params": 5}))
        log.append(RunFinished(status="done"))
    with new_run(store, "pretrain-2") as log:
        log.append(RunStarted(pid=1, host="elsewhere"))
        for step in range(30000):
            log.append(Metrics(step=step, values={"loss": 1.0 / (step + 1), "lr": 0.1}))
        log.append(RunFinished(status="done"))
    imported = store.models_dir / "chat"
    imported.mkdir()
    store.register_model("chat", "assistant", "imported", imported)
    store.refresh()
    return model


def _garbage_in_a_data_block(path: Path) -> None:
    with duckdb.connect(str(path)) as conn:
        (block,) = conn.execute(
            "SELECT max(block_id) FROM pragma_storage_info('metrics') WHERE block_id >= 0"
        ).fetchone()
    with open(path, "r+b") as f:
        f.seek(HEADER + block * BLOCK + BLOCK // 2)
        f.write(os.urandom(16 * 1024))


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


@pytest.mark.parametrize("damage", [_truncate, _garbage_in_a_data_block])
def test_a_damaged_store_says_which_file_and_how_to_fix_it(store: Store, damage) -> None:
    _store_with_runs(store)
    damage(store.db_path)
    forget_migrated()
    with pytest.raises(StoreError) as err, store.read():
        store.list_runs()
        store.metrics("pretrain-2")
    text = str(err.value)
    assert str(store.db_path) in text and "workbench store rebuild" in text
    health = store.health()
    assert health["ok"] is False
    assert "workbench store rebuild" in (health.get("error") or health.get("integrity"))


def test_rebuild_restores_runs_and_models_and_keeps_the_damaged_file(store: Store) -> None:
    model = _store_with_runs(store)
    store.register_model("tiny", "base", "trained", model, run_id="pretrain-1")
    second = store.models_dir / "tiny-2"
    second.mkdir()
    store.register_model("tiny", "base", "imported", second)  # tiny@2
    _truncate(store.db_path)
    forget_migrated()
    result = store.rebuild()
    aside = Path(result["moved_to"])
    assert aside.exists() and aside.name.startswith("workbench.duckdb.damaged-")
    assert (result["runs"], result["models"]) == (2, 3)
    assert {r["run_id"]: r["status"] for r in store.list_runs()} == {
        "pretrain-1": "done", "pretrain-2": "done"}  # fmt: skip
    assert len(store.metrics("pretrain-2")) == 60000
    assert [m["ref"] for m in store.list_models()] == ["chat@1", "tiny@1", "tiny@2"]
    assert store.get_model("tiny")["path"] == str(second)
    assert store.get_model("tiny@1")["run_id"] == "pretrain-1"
    assert store.health()["ok"]
