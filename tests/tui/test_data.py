"""Data & tokenizer screen by keys: the mixture table, one packed B×T batch read from the
run's cached shards with end-of-text markers, and text split into tokens with ids."""

from __future__ import annotations

import pytest

from tests.tui.fixtures import FIXED_NOW, PRETRAIN, write_shards
from tests.tui.helpers import choose, click_into, screen_text, wait_for, wait_loaded
from workbench.tui.app import WorkbenchApp
from workbench.tui.widgets.tokens import TokenView

pytestmark = pytest.mark.asyncio


async def test_mixture_batch_and_tokenizer(filled_home):
    write_shards(filled_home)
    app = WorkbenchApp(home=filled_home, now=FIXED_NOW)
    async with app.run_test(size=(80, 30)) as pilot:
        await pilot.press("3")
        await wait_loaded(pilot)
        text = screen_text(app)
        assert PRETRAIN in text and "synthetic-stories" in text and "0.61" in text

        await pilot.press("b")  # draw a batch
        view = app.screen.query_one("#batch-view", TokenView)
        await wait_for(pilot, lambda: view.rows, 60, "the batch")
        assert len(view.rows) == 4 and all(len(pieces) == 128 for _, pieces in view.rows)
        assert "B×T = 4×128" in screen_text(app) and "<|endoftext|>" in screen_text(app)
        assert "def add(a, b):" in "".join(p for _, pieces in view.rows for _, p in pieces)

        await pilot.press("k")  # the tokenizer tab
        await choose(pilot, "tok-source", f"run {PRETRAIN}")
        await click_into(pilot, "#tok-text")
        await pilot.press(*"The little fox")
        tokens = app.screen.query_one("#tok-view", TokenView)
        await wait_for(pilot, lambda: "tokens ·" in screen_text(app), 60, "the tokens")
        ((_, pieces),) = tokens.rows
        assert "".join(p for _, p in pieces) == "The little fox"
        assert " ".join(str(i) for i, _ in pieces) + " " in screen_text(app)


async def test_batch_without_shards_says_so(filled_home):
    app = WorkbenchApp(home=filled_home, now=FIXED_NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await wait_loaded(pilot)
        await pilot.press("b")
        await wait_for(pilot, lambda: "no packed shards" in screen_text(app), 30, "the message")
