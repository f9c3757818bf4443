"""Runs, Launch and Run detail driven by keys: launch echo from the form, watch it finish,
open it, see its charts and samples; stop and delete; the form's inline validation."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input

from tests.tui.helpers import choose, click_into, screen_text, wait_for, wait_loaded
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.detail import RunDetailScreen
from workbench.tui.screens.launch import LaunchScreen
from workbench.tui.widgets.specform import SpecForm

pytestmark = pytest.mark.asyncio


async def set_field(pilot, field_id: str, text: str) -> None:
    """Focus a form field by clicking it, clear it and type `text`."""
    await click_into(pilot, f"#{field_id}")
    field = pilot.app.screen.query_one(f"#{field_id}", Input)
    await pilot.press("end", *["backspace"] * len(field.value), *text)


async def launch_echo(pilot, steps: str, interval: str) -> None:
    await pilot.press("n")  # Runs → Launch
    await wait_for(
        pilot,
        lambda: isinstance(pilot.app.screen, LaunchScreen) and pilot.app.screen.query(SpecForm),
        what="the launch form",
    )
    await choose(pilot, "pipeline", "echo")  # Launch opens on pretrain-tiny
    await wait_for(pilot, lambda: pilot.app.screen.query("#f-steps"), what="the echo form")
    await set_field(pilot, "f-steps", steps)
    await set_field(pilot, "f-interval_s", interval)
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: pilot.app.current_mode == "runs", what="back on Runs")


def run_rows(app) -> list[str]:
    return [r for r in screen_text(app).splitlines() if "echo" in r]


async def test_launch_from_form_then_detail(home):
    app = WorkbenchApp(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        await launch_echo(pilot, "10", "0.05")
        await wait_for(pilot, lambda: any(" done " in r for r in run_rows(app)), 90, "echo done")
        assert "10/10" in run_rows(app)[0]

        await pilot.press("enter")  # open the run
        await wait_for(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.loaded)
        detail = app.screen
        await wait_for(pilot, lambda: len(detail.series["loss"]) == 10, what="10 loss points")
        await wait_for(pilot, lambda: "● lr" in screen_text(app), 10, "the charts painted")
        text = screen_text(app)
        assert "● loss" in text and "● lr" in text and "done" in text
        await pilot.press("a")  # samples tab
        await wait_for(pilot, lambda: "step 10" in screen_text(app), what="the samples")
        assert "echostep5" in screen_text(app).replace(" ", "")  # prompt + completion
        await pilot.press("p")  # the resolved spec
        await wait_for(pilot, lambda: "steps = 10" in screen_text(app), what="the spec")
        await pilot.press("escape")
        assert app.screen.__class__.__name__ == "RunsScreen"

        await pilot.press("e")  # re-launch with edits: the form holds this run's spec
        await wait_for(pilot, lambda: app.current_mode == "launch" and app.screen.query("#f-steps"))
        await wait_for(pilot, lambda: app.screen.query_one("#f-steps", Input).value == "10", 5)


async def test_form_shows_validation_errors(home):
    app = WorkbenchApp(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("2")
        await wait_for(pilot, lambda: app.screen.query(SpecForm), what="the form")
        await choose(pilot, "pipeline", "echo")
        await wait_for(pilot, lambda: app.screen.query("#f-steps"), what="the echo form")
        await set_field(pilot, "f-steps", "0")
        await wait_for(pilot, lambda: "field 'steps'" in screen_text(app), 10, "the error")
        assert "greater than or equal to 1" in screen_text(app)
        await pilot.press("ctrl+s")  # refused: still on Launch, nothing created
        await pilot.pause(0.5)
        assert app.current_mode == "launch"
        assert not (home / "runs").exists() or not any((home / "runs").iterdir())
        await set_field(pilot, "f-steps", "3")
        await wait_for(pilot, lambda: "valid echo spec" in screen_text(app), 10, "valid again")


async def test_stop_resume_delete(home):
    app = WorkbenchApp(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        await launch_echo(pilot, "400", "0.05")
        await wait_for(pilot, lambda: any("running" in r for r in run_rows(app)), 90, "running")
        app.screen.query_one(DataTable).focus()
        await pilot.press("d")  # a running run cannot be deleted
        await pilot.pause(0.2)
        assert app.screen.__class__.__name__ == "RunsScreen"
        await pilot.press("s")
        await wait_for(pilot, lambda: any("cancelled" in r for r in run_rows(app)), 60, "cancel")
        stopped_at = int(run_rows(app)[0].split("/")[0].split()[-1])
        await pilot.press("r")  # resume from its checkpoint, detached
        await wait_for(pilot, lambda: any("running" in r for r in run_rows(app)), 60, "resumed")
        await wait_for(
            pilot, lambda: int(run_rows(app)[0].split("/")[0].split()[-1]) > stopped_at, 30
        )
        await pilot.press("s")
        await wait_for(pilot, lambda: any("cancelled" in r for r in run_rows(app)), 60, "cancel")
        await pilot.press("d")
        await wait_for(pilot, lambda: "Delete run" in screen_text(app), 5, "the confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: not run_rows(app), 30, "the run gone")
        assert not any((home / "runs").iterdir())
