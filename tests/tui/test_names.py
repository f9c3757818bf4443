"""Names by keys: the Runs list shows full run ids (what every CLI verb takes), run names, the
phase and an ETA; the Models table shows `name@N` refs and sizes; deleting a run says which
models went and they leave the table; chat offers assistants first and no embedding model."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Select

from tests.tui.fixtures import FIXED_NOW, PRETRAIN, SFT
from tests.tui.helpers import screen_text, wait_for, wait_loaded
from workbench.ops.refs import find_run
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.detail import RunDetailScreen

pytestmark = pytest.mark.asyncio


def toasts(app) -> str:
    return " ".join(n.message for n in app._notifications)


async def test_full_ids_names_phase_and_eta(filled_home):
    app = WorkbenchApp(home=filled_home, now=FIXED_NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        text = screen_text(app)
        assert PRETRAIN in text and SFT in text  # whole ids, not the pipeline-less tails
        shown = next(w for line in text.splitlines() for w in line.split() if w.startswith("sft-"))
        assert find_run(app.store(), shown)["run_id"] == SFT  # the CLI's resolver takes it
        await pilot.press("down", "down")  # the running SFT run
        await wait_for(pilot, lambda: "chat · train · eta" in screen_text(app), 10, "its line")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.loaded)
        await wait_for(pilot, lambda: "train 60/150" in screen_text(app), 10, "the phase")
        assert "(chat)" in screen_text(app) and "eta " in screen_text(app)


async def test_wide_runs_table_has_name_phase_eta_columns(filled_home):
    app = WorkbenchApp(home=filled_home, now=FIXED_NOW)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_loaded(pilot)
        lines = screen_text(app).splitlines()
        header = next(line for line in lines if "status" in line and "filter" not in line)
        for column in ("run", "name", "phase", "eta", "best val"):
            assert column in header
        sft_row = next(line for line in screen_text(app).splitlines() if SFT in line)
        assert " chat " in sft_row and " train " in sft_row


async def test_model_refs_and_delete_says_which_models_went(filled_home):
    app = WorkbenchApp(home=filled_home, now=FIXED_NOW)
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press("4")
        await wait_loaded(pilot)
        assert "tiny@1" in screen_text(app) and "smollm2-135m-instruct@1" in screen_text(app)
        await pilot.press("1")
        await wait_loaded(pilot)
        await pilot.press("down", "down", "down", "d")  # the oldest: the pretrain that made tiny
        await wait_for(pilot, lambda: "Delete run" in screen_text(app), 5, "the question")
        await pilot.press("y")
        await wait_for(pilot, lambda: "tiny@1" in toasts(app), 30, "the models it took")
        await pilot.press("4")
        await wait_loaded(pilot)
        await wait_for(pilot, lambda: "tiny@1" not in screen_text(app), 10, "tiny gone")
        assert isinstance(app.focused, DataTable)


async def test_chat_defaults_to_an_assistant_and_hides_embeddings(filled_home):
    from store import Store

    store = Store(filled_home)
    for name, kind in (("aaa-base", "base"), ("all-minilm", "embedding")):
        store.register_model(name, kind, "imported", filled_home / "models" / name, params=10)
    app = WorkbenchApp(home=filled_home, now=FIXED_NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await wait_loaded(pilot)
        await pilot.press("c")
        picker = app.screen.query_one("#chat-model", Select)
        await wait_for(pilot, lambda: not picker.is_blank(), 5, "a model picked")
        assert picker.value == "smollm2-135m-instruct@1"
        offered = [ref for _, ref in app.screen.query_one("ChatPane").models]
        assert "all-minilm@1" not in offered and "aaa-base@1" in offered
        labels = [label for label, _ in app.screen.query_one("ChatPane").models]
        assert "aaa-base@1 (base: plain completion)" in labels
