"""Run detail's store read (`ops.views.run_view`): the first read of a long run takes each curve
cut to CHART_POINTS rows, read as columns; refreshes after it take every new row."""

from __future__ import annotations

from store import Store
from store.eventlog import EventLog
from store.events import Metrics, RunStarted
from workbench.ops import views

RUN = "pretrain-20250101-000000-abcd"


def log_steps(store: Store, start: int, stop: int) -> None:
    with EventLog(store.run_dir(RUN) / "events.jsonl") as log:
        if start == 0:
            log.append(RunStarted(pid=1, host="elsewhere"))
        for step in range(start, stop):
            log.append(Metrics(step=step, values={"loss": 1 / (step + 1), "lr": 0.1}))
            if step % 10 == 9:
                log.append(Metrics(step=step, values={"loss": float("nan")}, split="val"))
    store.ingest()


def test_first_read_is_cut_per_curve_and_refreshes_read_every_new_row(tmp_path, monkeypatch):
    monkeypatch.setattr(views, "CHART_POINTS", 50)
    store = Store(tmp_path)
    store.create_run(RUN, "pretrain", {})
    log_steps(store, 0, 1000)
    every = store.metrics(RUN)

    rows = views.run_view(store, RUN)["metrics"]
    curves: dict[tuple, list[dict]] = {}
    for m in rows:
        curves.setdefault((m["name"], m["split"]), []).append(m)
    assert sorted(curves) == [("loss", "train"), ("loss", "val"), ("lr", "train")]
    loss = curves["loss", "train"]
    assert 40 <= len(loss) <= 51  # at most 50 and the last
    assert [m["step"] for m in loss[:3]] == [0, 20, 40] and loss[-1]["step"] == 999
    assert [m["value"] for m in loss] == [1 / (m["step"] + 1) for m in loss]
    assert len(curves["loss", "val"]) == 100 // 2 + 1  # 100 rows: stride 2, then the last
    assert all(m["value"] is None for m in curves["loss", "val"])  # non-finite
    assert [m["seq"] for m in rows] == sorted(m["seq"] for m in rows)  # logging order
    # the time of a curve's first row (Run detail's ETA starts there), and no other
    assert loss[0]["t"] == every[0]["t"] and all(m["t"] is None for m in loss[1:])
    last_seq = max(m["seq"] for m in rows)
    assert last_seq == max(m["seq"] for m in every)

    log_steps(store, 1000, 1005)
    new = views.run_view(store, RUN, after_seq=last_seq)["metrics"]
    assert [(m["name"], m["step"]) for m in new] == [
        (n, s) for s in range(1000, 1005) for n in ("loss", "lr")]  # fmt: skip
    assert all(m["t"] is not None for m in new)


def test_a_short_run_reads_every_row(tmp_path):
    store = Store(tmp_path)
    store.create_run(RUN, "pretrain", {})
    log_steps(store, 0, 30)
    rows = views.run_view(store, RUN)["metrics"]
    every = store.metrics(RUN)
    key = ("name", "split", "step", "value", "seq")
    assert sorted(tuple(m[k] for k in key) for m in rows) == sorted(
        tuple(m[k] for k in key) for m in every)  # fmt: skip
