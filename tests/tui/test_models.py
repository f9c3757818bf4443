"""Models screen by keys: pull a model from a fake registry entry (nothing downloads), with
progress; chat with a tiny random Llama and see its answer stream in."""

from __future__ import annotations

import pytest
from textual.widgets import ProgressBar

from engines import hub
from store import Store
from tests.tui.helpers import choose, click_into, open_chat, screen_text, wait_for, wait_loaded
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.chat import AnswerUpdated

pytestmark = pytest.mark.asyncio

FAKE = hub.KnownModel(
    name="fake-lm",
    kind="assistant",
    packages=("fake-lm==1.0",),
    files=("",),
    sha256="0" * 64,
    fmt="folder",
    description="a fake test model",
)


@pytest.fixture
def fake_hub(monkeypatch):
    calls = []

    def fake_pull(name, models_dir, cache_dir, progress=None):
        calls.append(name)
        for message in ("fetching fake-lm==1.0", "extracting fake-lm", "fake-lm ready"):
            progress(message)
        folder = models_dir / name
        folder.mkdir(parents=True)
        return {
            "name": name,
            "kind": "assistant",
            "path": str(folder),
            "params": 1234,
            "architecture": "LlamaForCausalLM",
            "chat_template": True,
            "meta": {},
        }

    monkeypatch.setattr(hub, "KNOWN_MODELS", {"fake-lm": FAKE})
    monkeypatch.setattr(hub, "pull", fake_pull)
    return calls


async def test_pull_from_fake_registry(home, fake_hub):
    app = WorkbenchApp(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await wait_loaded(pilot)
        await pilot.press("p")  # the Pull & import tab
        await choose(pilot, "pull-name", "fake-lm")
        await wait_for(pilot, lambda: not app.screen.query_one("#pull-name").is_blank(), 5)
        await pilot.click("#pull")
        await wait_for(pilot, lambda: "pulled fake-lm" in screen_text(app), 30, "the pull")
        assert fake_hub == ["fake-lm"]
        assert app.screen.query_one("#pull-bar", ProgressBar).percentage == 1.0
        await pilot.press("g")  # back to the registry
        await wait_for(pilot, lambda: "fake-lm" in screen_text(app), 10, "the new model")
    assert Store(home).get_model("fake-lm")["source"] == "pulled"


async def test_chat_streams_a_tiny_model(home, tmp_path, monkeypatch):
    from tests.engines.tinylm import save_tiny

    folder = save_tiny(tmp_path / "tiny", seed=3)  # greedy output: "cecece…", not blank lines
    Store(home).register_model("tiny-chat", "assistant", "imported", folder, chat_template=True)
    posted: list[str] = []  # every update the worker posts (the UI may merge queued ones)
    original = AnswerUpdated.__init__

    def spy(self, text: str, *args, **kwargs) -> None:
        posted.append(text)
        original(self, text, *args, **kwargs)

    monkeypatch.setattr(AnswerUpdated, "__init__", spy)
    app = WorkbenchApp(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_chat(pilot)
        await click_into(pilot, "#chat-temp")
        await pilot.press("end", "backspace", "backspace", "backspace", "0")
        await click_into(pilot, "#chat-max")
        await pilot.press("end", "backspace", "backspace", "backspace", "1", "2")
        await click_into(pilot, "#chat-input")
        await pilot.press(*"hello fox", "enter")
        await wait_for(pilot, lambda: len(pane.history) == 2, 120, "the answer")
        answer = pane.history[1]["content"]
        assert answer.startswith("cece") and posted[-1].strip() == answer
        assert len(posted) >= 6 and posted[1].startswith(posted[0])  # piece by piece
        assert "you: hello fox" in screen_text(app) and answer[:20] in screen_text(app)
