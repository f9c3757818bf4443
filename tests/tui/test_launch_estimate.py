"""Launch shows `workbench run --dry-run`'s estimate under the form and keeps it current as
fields are typed: pretrain-tiny's figures on opening, a bigger batch and a `[launch]` of two
processes raise them, an invalid field shows no estimate, and a batch that cannot fit shows
the fixes in the error colour while Ctrl+S refuses to start it. An estimate sets WORLD_SIZE in the
TUI's environment while it runs, so a start waits for the one in flight."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time

import pytest
from textual.pilot import OutOfBounds

from engines.model_size import ModelSize
from tests.tui.helpers import screen_text, wait_for, wait_loaded
from workbench.tui.app import WorkbenchApp

pytestmark = pytest.mark.asyncio

PARAMS = ModelSize(4, 4, 128, 128, 2048).params  # pretrain-tiny's model
TOKENS = 900 * 16 * 128  # steps × batch × context of the preset
SIZE = (120, 40)


def device() -> str:
    """Where the preset's train.device = "auto" trains."""
    from engines.memory import gpu_present

    return "cuda" if gpu_present() else "cpu"


def panel(app) -> str:
    return str(app.screen.query_one("#estimate").content)


def activations_mb(text: str) -> float:
    return float(re.search(r"activations ([\d.]+) MB", text).group(1))


async def open_launch(pilot) -> None:
    await wait_loaded(pilot)
    await pilot.press("2")
    await wait_for(pilot, lambda: "params" in panel(pilot.app), 60, "the first estimate")


async def retype(pilot, field: str, text: str) -> None:
    """Scroll the form to `field`, click into it, clear it and type `text` as a user does
    (scrolled again while the layout settles: the estimate under the form changes height)."""
    widget = pilot.app.screen.query_one(f"#f-{field}")
    end = time.monotonic() + 10
    while pilot.app.focused is not widget:
        assert time.monotonic() < end, f"#{field} never took the focus: {pilot.app.focused}"
        pilot.app.screen.query_one("#form").scroll_to_widget(widget, animate=False)
        await pilot.pause(0.1)
        with contextlib.suppress(OutOfBounds):  # laid out where it was before the scroll
            await pilot.click(f"#f-{field}")
        await pilot.pause(0.1)
    await pilot.press("home", "ctrl+k", *text)
    assert widget.value == text


async def test_opens_with_the_dry_run_estimate_of_pretrain_tiny(home):
    app = WorkbenchApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await open_launch(pilot)
        text = panel(app)
        assert "1.07M params · 1.84M tokens (900 steps × 16 × 128)" in text
        assert f"{6.0 * PARAMS * TOKENS:.2e} FLOPs (6·N·D)" in text
        assert "at MFU 40% of " in text and "FLOP/s" in text
        weights = f"{4 * PARAMS / 2**20:.1f} MB"  # fp32 weights, as the dry run prints them
        assert f"(weights {weights}, gradients {weights}, AdamW" in text
        assert f"free on {device()} — fits" in text
        shown = screen_text(app)
        assert "1.84M tokens (900 steps × 16 × 128)" in shown
        assert "ctrl+s launches it" in shown
        assert not app.screen.query_one("#estimate").has_class("refused")


async def test_typed_batch_and_processes_change_the_estimate_and_bad_text_clears_it(home):
    app = WorkbenchApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await open_launch(pilot)
        before = activations_mb(panel(app))  # of batch 16 × 128 tokens
        await retype(pilot, "train-batch_size", "32")
        await wait_for(pilot, lambda: "(900 steps × 32 × 128)" in panel(app), 60, "batch 32")
        text = panel(app)
        assert "3.69M tokens" in text and activations_mb(text) == 2 * before
        assert f"{6.0 * PARAMS * 2 * TOKENS:.2e} FLOPs" in text

        await retype(pilot, "launch-nproc_per_node", "2")
        await wait_for(pilot, lambda: "2 processes" in panel(app), 60, "two processes")
        text = panel(app)
        assert "7.37M tokens (900 steps × 32 × 2 processes × 128)" in text
        if device() == "cpu":  # two ranks share this host's memory (on CUDA: a GPU each)
            assert "× 2 processes here: needs" in text

        await retype(pilot, "launch-nproc_per_node", "x")
        await wait_for(pilot, lambda: panel(app) == "", 30, "no estimate for an invalid spec")
        assert "nproc_per_node" in screen_text(app)  # the validation error names the field


async def test_a_batch_that_cannot_fit_shows_the_fixes_and_is_not_launched(home):
    app = WorkbenchApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await open_launch(pilot)
        estimate = app.screen.query_one("#estimate")
        await retype(pilot, "train-batch_size", "1000000")
        await wait_for(pilot, lambda: "DOES NOT FIT" in panel(app), 60, "the refusal")
        assert estimate.has_class("refused")
        text = panel(app)
        assert "change one of:" in text and "• train.batch_size = " in text
        assert "does not fit in memory" in screen_text(app)
        assert "ctrl+s launches it" not in screen_text(app)

        await pilot.press("ctrl+s")
        toasts = lambda: [n.message for n in app._notifications]
        await wait_for(
            pilot, lambda: any("does not fit" in t for t in toasts()), 10, "the launch refused"
        )
        await app.workers.wait_for_complete()
        assert app.current_mode == "launch"
        assert not (home / "runs").exists() or not any((home / "runs").iterdir())

        await retype(pilot, "train-batch_size", "8")
        await wait_for(pilot, lambda: "— fits" in panel(app), 60, "the estimate of batch 8")
        assert not estimate.has_class("refused") and "change one of" not in panel(app)
        assert "ctrl+s launches it" in screen_text(app)


async def test_a_start_waits_for_the_estimate_in_flight(home, monkeypatch):
    import pipelines.registry
    from workbench.ops import runs

    entered, release, inherited = threading.Event(), threading.Event(), []
    real = pipelines.registry.preflight

    def held_preflight(spec, store):  # dry_run's last step, inside its WORLD_SIZE
        if spec.train.batch_size == 24:
            entered.set()
            release.wait(10)
        return real(spec, store)

    def start(store, spec, detach=True):
        inherited.append(os.environ.get("WORLD_SIZE"))  # what the job's process would get
        return "pretrain-x", 0

    monkeypatch.setattr(pipelines.registry, "preflight", held_preflight)
    monkeypatch.setattr(runs, "start", start)
    app = WorkbenchApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await open_launch(pilot)
        await retype(pilot, "train-batch_size", "24")
        await wait_for(pilot, entered.is_set, 30, "the estimate of batch 24 in flight")
        await pilot.press("ctrl+s")
        await pilot.pause(0.5)
        assert inherited == []  # the start waits while the estimate runs
        release.set()
        await wait_for(pilot, lambda: inherited, 30, "the start")
        assert inherited == [None]
        await wait_for(pilot, lambda: app.current_mode == "runs", 10, "back on Runs")
