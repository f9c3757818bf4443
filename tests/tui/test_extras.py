"""What a user expects beyond the basics, by keys: ages move on an idle Runs screen, a model
is removed from the registry after a confirmation, and a chat answer can be stopped (with
tokens/s shown) and the conversation cleared."""

from __future__ import annotations

import datetime as dt

import pytest

from store import Store
from tests.tui.fixtures import FIXED_NOW
from tests.tui.helpers import click_into, open_chat, screen_text, wait_for, wait_loaded
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens import runs as runs_screen

pytestmark = pytest.mark.asyncio


async def test_ages_move_on_an_idle_screen(fixed_app, monkeypatch):
    monkeypatch.setattr(runs_screen, "AGES_EVERY_S", 0.2)
    async with fixed_app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        assert " 1h " in screen_text(fixed_app)
        fixed_app._fixed_now = FIXED_NOW + dt.timedelta(hours=2)  # nothing new in the store
        await wait_for(pilot, lambda: " 3h " in screen_text(fixed_app), 10, "the ages moved")


async def test_remove_a_model_after_confirming(fixed_app):
    async with fixed_app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await wait_loaded(pilot)
        await pilot.press("down", "d")  # tiny@1
        await wait_for(pilot, lambda: "Remove model tiny" in screen_text(fixed_app), 5, "ask")
        await pilot.press("n")
        assert "tiny@1" in screen_text(fixed_app)
        await pilot.press("d", "y")
        await wait_for(pilot, lambda: "tiny@1" not in screen_text(fixed_app), 30, "tiny gone")
        assert Store(fixed_app.home).get_model("tiny") is None


async def test_stop_an_answer_then_clear(home, tmp_path):
    from tests.engines.tinylm import save_tiny

    folder = save_tiny(tmp_path / "tiny", seed=3)
    Store(home).register_model("tiny-chat", "assistant", "imported", folder, chat_template=True)
    app = WorkbenchApp(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_chat(pilot)
        await click_into(pilot, "#chat-max")
        await pilot.press("end", *["backspace"] * 4, *"2000")
        await click_into(pilot, "#chat-input")
        await pilot.press(*"hello", "enter")
        await wait_for(pilot, lambda: "tokens/s" in screen_text(app), 120, "the first tokens")
        await pilot.press("ctrl+x")
        await wait_for(pilot, lambda: len(pane.history) == 2, 30, "the stopped answer")
        assert len(pane.history[1]["content"]) < 2000
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: not pane.history, 5, "a new conversation")
        assert "you: hello" not in screen_text(app)
