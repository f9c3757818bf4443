"""Playground by keys: a tiny model answers a prompt plainly (streamed) and through a
strategy of the prompting lab (with its steps); the exchange is saved as an experiment."""

from __future__ import annotations

import pytest
from textual.widgets import Select

from store import Store
from tests.tui.helpers import click_into, screen_text, wait_for, wait_loaded
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.playground import PlayUpdated


@pytest.fixture
def tiny(home, tmp_path):
    from tests.engines.tinylm import save_tiny

    store = Store(home)
    store.register_model("tiny-chat", "assistant", "imported", save_tiny(tmp_path / "t", seed=3))
    return store


async def _set(pilot, selector: str, value: str) -> None:
    await click_into(pilot, selector)
    await pilot.press("end", *["backspace"] * 6, *value)


@pytest.mark.asyncio
async def test_plain_and_strategy_stream_and_save(home, tiny, monkeypatch):
    posted: list[str] = []
    original = PlayUpdated.__init__

    def spy(self, steps, text, *args, **kwargs):
        posted.append(text)
        original(self, steps, text, *args, **kwargs)

    monkeypatch.setattr(PlayUpdated, "__init__", spy)
    app = WorkbenchApp(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("8")
        await wait_loaded(pilot)
        screen = app.screen
        strategy = screen.query_one("#play-strategy", Select)
        await wait_for(pilot, lambda: len(screen.strategies) > 5, 20, "the strategies")
        assert strategy.value == "plain" and "cot" in [n for n, _ in screen.strategies]
        await _set(pilot, "#play-temp", "0")
        await _set(pilot, "#play-max", "8")
        await click_into(pilot, "#play-prompt")
        await pilot.press(*"hello fox", "enter")
        await wait_for(pilot, lambda: screen.exchange, 60, "the plain answer")
        plain = screen.exchange["output"]
        assert plain.strip() and len(posted) >= 4 and posted[-2] != posted[1]  # streamed
        assert plain[:8] in screen_text(app)
        await pilot.press("escape", "s")
        await wait_for(pilot, lambda: tiny.list_prompt_experiments(), 20, "the saved exchange")
        strategy.value = "zero-shot"
        await click_into(pilot, "#play-prompt")
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.exchange and not screen.busy, 60, "zero-shot")
        assert screen.exchange["request"]["strategy"] == "zero-shot"
        assert screen.exchange["output"].strip()[:8] in screen_text(app)
    (saved,) = tiny.list_prompt_experiments()
    assert (saved["model"], saved["strategy"], saved["task"]) == (
        "tiny-chat",
        "plain",
        "playground",
    )
    assert saved["transcripts"][1]["question"] == "hello fox"
