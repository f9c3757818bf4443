"""Launch in the TUI with a `[launch] nproc_per_node = 2` spec: it starts the job detached
under torchrun, and the Runs screen then shows one run for it (rank 0's), done at world
size 2."""

from __future__ import annotations

import tomllib

import pytest
from textual.widgets import Input

from store import Store
from tests.pipelines.test_pretrain import TINY
from tests.tui.helpers import screen_text, wait_for, wait_loaded
from workbench.tui.app import WorkbenchApp

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


def tiny_spec() -> dict:
    """tests/workbench/test_launch_section.py's job: the tiny pretrain, 4 steps of 4."""
    spec = tomllib.loads(TINY.format(w1=0.8, w2=0.2, B=4, steps=4, ckpt=0))
    spec["train"]["sample_every"] = 0
    spec["launch"] = {"nproc_per_node": 2}
    return spec


def pretrain_rows(app) -> list[str]:
    return [r for r in screen_text(app).splitlines() if "pretrain-" in r]


async def test_launch_starts_a_two_process_spec_detached_and_runs_shows_one_run(home, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    app = WorkbenchApp(home=home)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("2")  # Launch
        await wait_for(pilot, lambda: app.screen.query("#f-model-n_layer"), 10, "the form")
        await app.screen.prefill(tiny_spec())
        await wait_for(pilot, lambda: app.screen.query("#f-launch-nproc_per_node"), 10, "launch")
        assert app.screen.query_one("#f-launch-nproc_per_node", Input).value == "2"
        await wait_for(pilot, lambda: "ctrl+s launches it" in screen_text(app), 60, "valid")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.current_mode == "runs", 60, "back on Runs")
        await wait_for(pilot, lambda: pretrain_rows(app), 30, "the run's row")
        await wait_for(
            pilot, lambda: any(" done " in r for r in pretrain_rows(app)), 150, "the run done"
        )
        assert len(pretrain_rows(app)) == 1, screen_text(app)
    store = Store(home)
    store.refresh()
    [run] = store.list_runs()
    assert run["world_size"] == 2 and run["status"] == "done"
    log = (home / "runs" / run["run_id"] / "stdout.log").read_text()
    assert '"world_size": 2' in log  # rank 0 of the torchrun job wrote the one run
