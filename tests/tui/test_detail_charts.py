"""Run detail's charts by keys at 80×24: loss comes first even when a run logs evaluation
metrics before it (SFT), the grid scrolls to its last chart with the keyboard, and new rows
reach the charts already shown (no panel freezes on its first values)."""

from __future__ import annotations

import pytest

from store import EventLog
from tests.tui.fixtures import FIXED_NOW, _run
from tests.tui.helpers import screen_text, wait_for, wait_loaded
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.detail import RunDetailScreen
from workbench.tui.widgets.chart import LineChart

RUN = "sft-20250301-115900-abcd"


def sft_events(first: int, last: int) -> list[dict]:
    out = []
    for step in range(first, last + 1):
        train = {"loss": 3.0 - step / 100, "lr": 1e-4, "tokens_per_s": 500.0, "grad_norm": 1.0,
                 "mfu": 0.4 + step / 1000}  # fmt: skip
        out.append({"kind": "metrics", "step": step, "values": train, "split": "train"})
        if step % 5 == 0:
            out.append({"kind": "metrics", "step": step, "values": {"loss": 3.5 - step / 100},
                        "split": "val"})  # fmt: skip
    return out


def sft_run(home) -> EventLog:
    from store import Store

    store = Store(home)
    _run(store, RUN, "sft", {"pipeline": "sft", "name": "chat", "seed": 0})
    log = EventLog(store.runs_dir / RUN / "events.jsonl")
    log.append({"kind": "run_started", "pid": 0, "device": "cpu", "world_size": 1})
    eval_values = {"accuracy": 0.1, "ended_turn": 0.5, "accuracy_arith": 0.2}
    log.append({"kind": "metrics", "step": 0, "values": eval_values, "split": "eval"})
    log.append({"kind": "metrics", "step": 0, "values": {"trainable_share": 0.01},
                "split": "info"})  # fmt: skip
    (store.runs_dir / RUN / "heartbeat").touch()
    return log


def charts(screen) -> list[LineChart]:
    return list(screen.query_one("#chart-grid").query(LineChart))


@pytest.mark.asyncio
async def test_loss_first_scrolls_and_stays_live(home):
    log = sft_run(home)
    app = WorkbenchApp(home=home, now=FIXED_NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.loaded)
        detail = app.screen
        await wait_for(pilot, lambda: len(charts(detail)) >= 4, 10, "the evaluation charts")
        for e in sft_events(1, 10):  # training starts after the baseline evaluation
            log.append(e)
        await wait_for(pilot, lambda: len(charts(detail)) >= 9, 20, "every chart")
        first = charts(detail)[0]
        assert first.title == "loss" and set(first.series) == {"loss", "val_loss"}
        legends = [line for line in screen_text(app).splitlines() if "● " in line]
        assert legends[0].strip().startswith("loss")
        mfu = next(c for c in charts(detail) if c.title == "mfu")
        assert "mfu 41%" in mfu.legend().plain  # a fraction in the store, a percentage here

        grid = detail.query_one("#chart-grid")
        assert app.focused is grid  # the charts take the arrow keys when the detail opens
        last = charts(detail)[-1]
        assert not grid.region.contains_region(last.region)
        await pilot.press("end")
        await wait_for(pilot, lambda: grid.region.contains_region(last.region), 5, "the last one")
        await pilot.press("home")

        for e in sft_events(11, 20):
            log.append(e)
        log.close()
        await wait_for(pilot, lambda: first.series["val_loss"][-1] == (20.0, 3.3), 20, "val 20")
        assert first.series["loss"][-1] == (20.0, 2.8)
        assert [c.title for c in charts(detail)].count("loss") == 1
        assert "val_loss 3.3" in screen_text(app)


def test_transform_smooths_then_takes_the_log():
    from workbench.tui.widgets.chart import transform

    assert transform([(0, 4.0), (1, 0.0)], smoothing=0.5) == [(0, 4.0), (1, 2.0)]
    assert transform([(0, 100.0), (1, -1.0), (2, 10.0)], log_y=True) == [(0, 2.0), (2, 1.0)]


@pytest.mark.asyncio
async def test_smoothing_and_log_scale_keys(fixed_app):
    async with fixed_app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("down", "down", "down", "enter")  # the finished pretrain
        await wait_for(pilot, lambda: isinstance(fixed_app.screen, RunDetailScreen))
        detail = fixed_app.screen
        await wait_for(pilot, lambda: charts(detail), 20, "the charts")
        await pilot.press("m", "y")
        await wait_for(
            pilot, lambda: "loss (smoothed 0.6, log)" in screen_text(fixed_app), 5, "the view"
        )
        assert all(c.smoothing == 0.6 and c.log_y for c in charts(detail))
        await pilot.press("m", "m", "y")
        assert all(c.smoothing == 0 and not c.log_y for c in charts(detail))
