"""Launch by keys: it opens on pretrain-tiny with a one-line summary, the pipeline preflight
refuses a `cuda` preset on a machine without a GPU inline (before any run exists), and a
second Ctrl+S while the first start is in flight starts nothing."""

from __future__ import annotations

import threading

import pytest
from textual.widgets import Select

from tests.tui.helpers import choose, screen_text, wait_for, wait_loaded
from workbench.ops import launch, specs
from workbench.tui.app import WorkbenchApp


async def test_summary_of_the_tiny_preset():  # async: the module's tests all carry asyncio
    spec = specs.load(None, preset="pretrain-tiny", overrides=["train.device=cpu"])
    line = launch.summary(spec)
    assert line.startswith("1.07M params · 1.84M tokens (900 steps × 16 × 128) · ~")
    assert line.endswith("on cpu (rough)")
    assert launch.default_preset("pretrain", specs.presets_for("pretrain")) == "pretrain-tiny"


pytestmark = pytest.mark.asyncio


async def open_launch(pilot):
    await wait_loaded(pilot)
    await pilot.press("2")
    await wait_for(pilot, lambda: pilot.app.screen.query("#f-model-n_layer"), 10, "the form")


async def test_opens_on_pretrain_tiny_with_a_summary(home):
    app = WorkbenchApp(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_launch(pilot)
        assert app.screen.query_one("#pipeline", Select).value == "pretrain"
        assert app.screen.query_one("#preset", Select).value == "pretrain-tiny"
        await wait_for(pilot, lambda: "1.07M params" in screen_text(app), 30, "the summary")
        assert "900 steps × 16 × 128" in screen_text(app)


async def test_cuda_preset_refused_inline_without_a_gpu(home):
    from engines.memory import gpu_present

    if gpu_present():
        pytest.skip("this machine has a GPU")
    app = WorkbenchApp(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_launch(pilot)
        await choose(pilot, "preset", "pretrain-gpt2-124m")
        await wait_for(pilot, lambda: "no GPU" in screen_text(app), 30, "the preflight error")
        assert "valid" not in screen_text(app)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "no GPU" in screen_text(app), 30, "refused")
        await app.workers.wait_for_complete()
        assert app.current_mode == "launch"
        assert not (home / "runs").exists() or not any((home / "runs").iterdir())


async def test_second_launch_while_starting_does_nothing(home, monkeypatch):
    from workbench.ops import runs

    calls, release = [], threading.Event()

    def slow_start(store, spec, detach=True):
        calls.append(spec)
        release.wait(10)
        return "pretrain-x", 0

    monkeypatch.setattr(runs, "start", slow_start)
    app = WorkbenchApp(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_launch(pilot)
        await wait_for(pilot, lambda: "1.07M params" in screen_text(app), 30, "the summary")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: calls, 10, "the start")
        await pilot.press("ctrl+s")
        toasts = lambda: [n.message for n in app._notifications]
        await wait_for(pilot, lambda: "a launch is already starting" in toasts(), 5, "the warning")
        release.set()
        await wait_for(pilot, lambda: app.current_mode == "runs", 10, "back on Runs")
        assert len(calls) == 1
