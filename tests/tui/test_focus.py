"""Keys reach the widget the user sees focused: inputs take focus when their pane opens, bare
letters typed into them never switch screens or quit, Escape leaves an input, and quitting
with a job attached or a message typed asks first. Keyboard only, as over SSH."""

from __future__ import annotations

import subprocess

import pytest
from textual.widgets import DataTable, Input

from tests.tui.fixtures import FIXED_NOW
from tests.tui.helpers import screen_text, wait_for, wait_loaded
from workbench.tui.app import WorkbenchApp

pytestmark = pytest.mark.asyncio


async def test_typing_in_chat_never_quits_or_switches(fixed_app):
    async with fixed_app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await wait_loaded(pilot)
        await pilot.press("c")  # the chat pane: its message box takes focus
        box = fixed_app.screen.query_one("#chat-input", Input)
        await wait_for(pilot, lambda: fixed_app.focused is box, 5, "the message box focused")
        await pilot.press(*"quit? press 1234 then p t")
        assert fixed_app.is_running and fixed_app.current_mode == "models"
        assert box.value == "quit? press 1234 then p t"
        await pilot.press("escape")  # leaves the box: letters are keys again
        assert not isinstance(fixed_app.focused, Input)
        await pilot.press("g")
        await wait_for(
            pilot, lambda: isinstance(fixed_app.focused, DataTable), 5, "the registry table"
        )
        await pilot.press("q")  # a message is typed: it asks first
        await wait_for(pilot, lambda: "Quit" in screen_text(fixed_app), 5, "the question")
        await pilot.press("n")
        assert fixed_app.is_running


async def test_tokenizer_text_takes_the_keys(filled_home):
    app = WorkbenchApp(home=filled_home, now=FIXED_NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await wait_loaded(pilot)
        await pilot.press("k")
        text = app.screen.query_one("#tok-text", Input)
        await wait_for(pilot, lambda: app.focused is text, 5, "the text box focused")
        await pilot.press(*"a b 2 q")
        assert text.value == "a b 2 q" and app.current_mode == "data"
        assert app.screen.query_one("#tok-source").expanded is False


async def test_pull_pane_keys_still_work_after_pull_and_import(filled_home):
    app = WorkbenchApp(home=filled_home, now=FIXED_NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await wait_loaded(pilot)
        await pilot.press("p")  # the model to pull has the focus; tab on to the path box
        await wait_for(pilot, lambda: app.focused.id == "pull-name", 5, "the pull choice")
        await pilot.press("tab", "tab")
        path = app.screen.query_one("#import-path", Input)
        await wait_for(pilot, lambda: app.focused is path, 5, "the path box focused")
        await pilot.press(*"/nowhere", "enter")  # enter imports
        await wait_for(
            pilot, lambda: any("nowhere" in n.message for n in app._notifications), 10, "error"
        )
        await pilot.press("escape", "g")
        await wait_for(
            pilot, lambda: isinstance(app.focused, DataTable), 5, "the registry table focused"
        )
        await pilot.press("c")
        await wait_for(
            pilot, lambda: app.focused is app.screen.query_one("#chat-input"), 5, "chat box"
        )


async def test_filter_escape_returns_to_table(fixed_app):
    async with fixed_app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("slash", *"echo 2")
        assert fixed_app.current_mode == "runs"
        await pilot.press("escape")
        assert isinstance(fixed_app.focused, DataTable)
        await pilot.press("2")
        await wait_for(pilot, lambda: fixed_app.current_mode == "launch", 5, "launch")


@pytest.fixture
def child():
    """A process of ours that stands for a job this TUI started."""
    job = subprocess.Popen(["sleep", "60"])
    yield job
    job.kill()
    job.wait()


async def test_quit_with_a_job_attached_asks(fixed_app, child):
    job = child
    async with fixed_app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        fixed_app.children_pids.add(job.pid)
        await pilot.press("q")
        await wait_for(pilot, lambda: "Quit" in screen_text(fixed_app), 5, "the question")
        assert "job" in screen_text(fixed_app)
        await pilot.press("n")
        assert fixed_app.is_running
        job.kill()
        job.wait()
        fixed_app.children_pids.clear()
        await pilot.press("q")
        await wait_for(pilot, lambda: not fixed_app.is_running, 5, "the app to quit")
