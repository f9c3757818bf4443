"""The chat pane of the Models screen: a model's answer streamed token by token.

The model loads once per choice in a thread worker (torch and transformers import there),
`engines.generate.stream` yields text pieces, and the worker posts `AnswerUpdated` messages
carrying the whole answer so far; they coalesce (`can_replace`), so a fast model cannot
flood the UI and nothing is lost when two merge.
"""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Select, Static
from textual.worker import get_current_worker


class AnswerUpdated(Message):
    """The answer so far (`done` on the last one)."""

    def __init__(self, text: str, done: bool = False) -> None:
        super().__init__()
        self.text, self.done = text, done

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, AnswerUpdated) and not message.done


class ChatFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


def read_params(temperature: str, max_tokens: str) -> tuple[float, int]:
    """Temperature and max new tokens from the inputs; ValueError names the bad one."""
    try:
        t = float(temperature or 0.7)
    except ValueError:
        raise ValueError(f"temperature {temperature!r} is not a number (0 = greedy)") from None
    try:
        n = int(max_tokens or 128)
    except ValueError:
        raise ValueError(f"max tokens {max_tokens!r} is not a whole number") from None
    if t < 0 or n < 1:
        raise ValueError("temperature must be ≥ 0 and max tokens ≥ 1")
    return t, n


class ChatPane(Vertical):
    """Model picker, sampling inputs, the transcript and a message box (enter sends)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history: list[dict[str, str]] = []
        self.models: dict[str, str] = {}  # name -> folder
        self._loaded: tuple[str, Any, Any] | None = None  # (path, model, tokenizer), worker-only
        self._answer: Static | None = None
        self._busy = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="chat-top"):
            yield Select([], prompt="model", id="chat-model", compact=True)
            yield Label(" temp ")
            yield Input("0.7", id="chat-temp", compact=True, classes="num")
            yield Label(" max ")
            yield Input("128", id="chat-max", compact=True, classes="num")
        yield VerticalScroll(
            Static("pick a model, type below, enter sends", classes="hint"), id="transcript"
        )
        yield Input(placeholder="message (enter sends)", id="chat-input")

    def set_models(self, models: list[dict]) -> None:
        chat_kinds = ("base", "assistant", "adapter")
        found = {m["name"]: m["path"] for m in models if m["kind"] in chat_kinds}
        if found == self.models:
            return
        self.models = found
        select = self.query_one("#chat-model", Select)
        value = select.value
        with self.prevent(Select.Changed):
            select.set_options([(name, name) for name in found])
            if value in found:
                select.value = value
            elif found:
                select.value = next(iter(found))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.history = []
        self.query_one("#transcript", VerticalScroll).remove_children()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id != "chat-input" or not event.value.strip() or self._busy:
            return
        select = self.query_one("#chat-model", Select)
        if select.is_blank():
            self.app.notify("pick a model first", severity="warning")
            return
        try:
            temperature, max_tokens = read_params(
                self.query_one("#chat-temp", Input).value, self.query_one("#chat-max", Input).value
            )
        except ValueError as e:
            self.app.notify(str(e), severity="error")
            return
        self.history.append({"role": "user", "content": event.value})
        event.input.value = ""
        transcript = self.query_one("#transcript", VerticalScroll)
        transcript.mount(
            Static(f"you: {self.history[-1]['content']}", classes="msg-user", markup=False)
        )
        self._answer = Static("…", classes="msg-model", markup=False)
        transcript.mount(self._answer)
        transcript.scroll_end(animate=False)
        self._busy = True
        path = self.models[str(select.value)]
        self._generate(path, list(self.history), temperature, max_tokens)

    @work(thread=True, exclusive=True, group="chat", exit_on_error=False)
    def _generate(self, path: str, messages: list[dict], temperature: float, n: int) -> None:
        worker = get_current_worker()
        try:
            from engines.generate import SamplingParams, chat_prompt, stream
            from engines.models import load_causal_lm

            if self._loaded is None or self._loaded[0] != path:
                self._loaded = (path, *load_causal_lm(path))
            _, model, tok = self._loaded
            prompt = chat_prompt(tok, messages, fallback=True)
            params = SamplingParams(max_new_tokens=n, temperature=temperature)
            text = ""
            for piece in stream(model, tok, prompt, params):
                if worker.is_cancelled:
                    break
                text += piece
                self.post_message(AnswerUpdated(text))
        except Exception as e:  # noqa: BLE001 - a model that will not load or generate
            self.post_message(ChatFailed(f"{type(e).__name__}: {e}"))
            return
        self.post_message(AnswerUpdated(text, done=True))

    def on_answer_updated(self, message: AnswerUpdated) -> None:
        if self._answer is not None:
            self._answer.update(message.text or "…")
            self.query_one("#transcript", VerticalScroll).scroll_end(animate=False)
        if message.done:
            self._busy = False
            self.history.append({"role": "assistant", "content": message.text.strip()})

    def on_chat_failed(self, message: ChatFailed) -> None:
        self._busy = False
        if self._answer is not None:
            self._answer.update(f"(failed) {message.error}")
        self.app.notify(message.error, title="chat", severity="error")
