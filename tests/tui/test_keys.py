"""Keys everywhere: the help screen lists them, the palette finds every action, theme toggles."""

from __future__ import annotations

import pytest

from tests.tui.helpers import screen_text, wait_for, wait_loaded
from workbench.tui.app import WorkbenchApp
from workbench.tui.commands import WorkbenchCommands

pytestmark = pytest.mark.asyncio


async def test_help_lists_screen_and_app_keys(fixed_app):
    async with fixed_app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: "Keys" in screen_text(fixed_app), 5, "the help")
        for words in ("Stop", "Resume", "Delete", "Everywhere", "Quit", "Ctrl+P"):
            assert words in fixed_app.screen.text
        await pilot.press("escape")
        assert type(fixed_app.screen).__name__ == "RunsScreen"


async def test_palette_has_every_action(filled_home):
    app = WorkbenchApp(home=filled_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        names = [n for n, _, _ in WorkbenchCommands(app.screen, None)._commands()]
        for name in ("Go to Models & chat", "Runs: Stop", "Runs: Delete", "Keys", "Quit"):
            assert name in names
        await pilot.press("4")
        await wait_loaded(pilot)
        names = [n for n, _, _ in WorkbenchCommands(app.screen, None)._commands()]
        assert "Models: Pull the model chosen under Pull & import" in names
        await pilot.press("ctrl+p")
        await pilot.press(*"go to launch", "enter")
        await wait_for(pilot, lambda: app.current_mode == "launch", 10, "the launch screen")


async def test_theme_toggles(fixed_app):
    async with fixed_app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        assert fixed_app.current_theme.dark
        await pilot.press("t")
        assert not fixed_app.current_theme.dark
        await pilot.press("t")
        assert fixed_app.current_theme.dark
