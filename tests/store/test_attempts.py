"""Issue 10 #9: after a kill and resume, or a stop off the log grid and a resume, the stored
curve (metrics(), curves, latest_metrics, run_summary) equals an uninterrupted run's."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb

from store import Store, migrations
from store.db import forget_migrated
from store.events import Artifact, Metrics, RunFinished, RunStarted

from .conftest import new_run


def _loss(step: int) -> float:
    return 4.0 / (1 + step)


def _log(log, steps, val_every: int = 20) -> None:
    for step in steps:
        log.append(Metrics(step=step, values={"loss": _loss(step)}))
        if step % val_every == 0:
            log.append(Metrics(step=step, values={"loss": _loss(step) + 0.1}, split="val"))


def _curve(store: Store, run_id: str) -> list[tuple]:
    rows = store.metrics(run_id)
    return sorted((m["split"], m["step"], m["name"], m["value"]) for m in rows)


def _uninterrupted(store: Store, steps, log_every: int = 1) -> str:
    with new_run(store, "pretrain-ref", spec={"train": {"log_every": log_every}}) as log:
        log.append(RunStarted(pid=1, host="elsewhere"))
        _log(log, steps)
        log.append(RunFinished(status="done"))
    return "pretrain-ref"


def test_kill_and_resume_store_one_curve(store: Store) -> None:
    with new_run(store, "pretrain-1") as log:
        log.append(RunStarted(pid=1, host="elsewhere"))
        _log(log, range(1, 46))  # checkpoint at 40, killed at 45
        log.append(Artifact(type="checkpoint", path="/c/40", step=40))
        log.append(RunStarted(pid=2, host="elsewhere"))  # resumed from step 40
        _log(log, range(41, 61))
        log.append(RunFinished(status="done"))
    ref = _uninterrupted(store, range(1, 61))
    store.ingest()
    assert _curve(store, "pretrain-1") == _curve(store, ref)
    assert store.latest_metrics("pretrain-1") == store.latest_metrics(ref)
    run = store.get_run("pretrain-1")
    assert (run["loss"], run["val_loss"], run["attempts"]) == (_loss(60), _loss(60) + 0.1, 2)
    (dupes,) = store.sql("SELECT count(*) FROM metrics WHERE run_id = 'pretrain-1' AND superseded")[
        1
    ][0]
    assert dupes == 5  # steps 41..45 of the first attempt, kept but marked
    (n,) = store.sql("SELECT count(*) FROM curves WHERE run_id = 'pretrain-1'")[1][0]
    assert n == 60 + 3


def test_a_stop_off_the_log_grid_leaves_no_extra_row(store: Store) -> None:
    with new_run(store, "pretrain-1", spec={"train": {"log_every": 10}}) as log:
        log.append(RunStarted(pid=1, host="elsewhere"))
        _log(log, [10, 20, 30, 37])  # a stop at 37 logs and checkpoints there
        log.append(RunFinished(status="cancelled", reason="stopped at step 37"))
        log.append(RunStarted(pid=2, host="elsewhere"))
        _log(log, [40, 50, 60])
        log.append(RunFinished(status="done"))
    ref = _uninterrupted(store, [10, 20, 30, 40, 50, 60], log_every=10)
    store.ingest()
    assert _curve(store, "pretrain-1") == _curve(store, ref)
    kept = store.metrics("pretrain-1", split="train", include_superseded=True)
    assert [(m["step"], m["superseded"]) for m in kept][3] == (37, True)


def test_an_old_store_is_migrated(store: Store) -> None:
    """A version-1 store (val_ names, no attempts) gets split-named metrics and attempts."""
    events = store.run_dir("pretrain-1") / "events.jsonl"
    events.parent.mkdir(parents=True)
    lines = [{"seq": 1, "kind": "run_started"}]
    rows = []
    for step in range(1, 6):
        rows.append((len(lines) + 1, step, "loss", "train"))
        lines.append({"seq": len(lines) + 1, "kind": "metrics", "step": step})
    rows.append((len(lines) + 1, 4, "val_loss", "val"))
    lines.append({"seq": len(lines) + 1, "kind": "metrics", "step": 4, "split": "val"})
    lines.append({"seq": len(lines) + 1, "kind": "run_started"})  # resumed from step 3
    for step in range(4, 7):
        rows.append((len(lines) + 1, step, "loss", "train"))
        lines.append({"seq": len(lines) + 1, "kind": "metrics", "step": step})
    events.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with duckdb.connect(str(store.db_path)) as conn:
        conn.execute(migrations.MIGRATIONS[0])
        conn.execute("CREATE TABLE schema_version (version INTEGER, applied_at TIMESTAMP)")
        conn.execute("INSERT INTO schema_version VALUES (1, now()::TIMESTAMP)")
        conn.execute(
            "INSERT INTO runs (run_id, pipeline, status, created_at, run_dir) "
            "VALUES ('pretrain-1', 'pretrain', 'done', ?, ?)",
            [datetime(2025, 1, 1), str(events.parent)],
        )
        for seq, step, name, split in rows:
            conn.execute(
                "INSERT INTO metrics VALUES ('pretrain-1', ?, ?, ?, false, ?, NULL, ?)",
                [step, name, float(step), split, seq],
            )
        conn.execute("INSERT INTO ingest_offsets VALUES ('pretrain-1', ?, ?)",
                     [events.stat().st_size, len(lines)])  # fmt: skip
        conn.execute("INSERT INTO models VALUES ('m', 'base', 'trained', '/m', NULL, NULL, NULL, "
                     "NULL, NULL, NULL, '{}', now()::TIMESTAMP)")  # fmt: skip
    forget_migrated()
    assert store.health()["schema_version"] == migrations.SCHEMA_VERSION
    curve = [(m["step"], m["name"], m["split"], m["attempt"]) for m in store.metrics("pretrain-1")]
    assert curve == [(1, "loss", "train", 1), (2, "loss", "train", 1), (3, "loss", "train", 1),
                     (4, "loss", "val", 1), (4, "loss", "train", 2), (5, "loss", "train", 2),
                     (6, "loss", "train", 2)]  # fmt: skip
    assert store.latest_metrics("pretrain-1") == {"loss": 6.0, "val_loss": 4.0}
    assert store.get_model("m")["ref"] == "m@1"
    assert store.check_schema() == []
