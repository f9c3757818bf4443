"""The chat pane of the Models screen: a model's answer streamed token by token.

A turn is `ops.chat.ChatSession.turn` — the one `workbench chat` streams — run in a thread
worker (torch and transformers import there) with the same sampling defaults. The worker
posts `AnswerUpdated` messages carrying the whole answer so far; they coalesce
(`can_replace`), so a fast model cannot flood the UI and nothing is lost when two merge. The
quantize choice (none, int8, int4) is `workbench chat --quantize`: the weights each turn
decodes with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Select, Static
from textual.worker import Worker, WorkerState, get_current_worker

from workbench.ops import OpError
from workbench.ops.chat import DEFAULTS, ChatSession, Sampling, parse_sampling
from workbench.tui.screens.base import forward_worker_state
from workbench.tui.widgets.picker import offer, quantize_of, quantize_picker


@dataclass
class AnswerUpdated(Message):
    """The answer so far (`done` on the last one)."""

    text: str
    done: bool = False
    pieces: int = 0  # tokens streamed so far
    seconds: float = 0.0  # since the first one

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, AnswerUpdated) and not message.done


CHAT_KINDS = ("assistant", "adapter", "base")  # in the order offered; never "embedding"


def chat_choices(models: list[dict]) -> list[tuple[str, str]]:
    """(label, ref) of the models a chat can use: assistants (newest first), then adapters,
    then base models, which continue a plain document (the label says so)."""
    latest = [m for m in models if m.get("latest", True) and m["kind"] in CHAT_KINDS]
    latest.sort(key=lambda m: str(m.get("created_at") or ""), reverse=True)
    latest.sort(key=lambda m: CHAT_KINDS.index(m["kind"]))
    out = []
    for m in latest:
        ref = m.get("ref") or m["name"]
        label = f"{ref} (base: plain completion)" if m["kind"] == "base" else ref
        out.append((label, ref))
    return out


@dataclass
class SessionNoticed(Message):
    """The chat session has something to say about its model (a base model, say)."""

    text: str


class ChatPane(Vertical):
    """Model picker, sampling inputs, the transcript and a message box (enter sends)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history: list[dict[str, str]] = []  # the session's messages, shown as a transcript
        self.models: list[tuple[str, str]] = []  # (label, ref) offered
        self._session: ChatSession | None = None
        self._answer: Static | None = None
        self._busy = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="chat-top"):
            yield Select([], prompt="model", id="chat-model", compact=True)
            yield Label(" temp ")
            yield Input(str(DEFAULTS.temperature), id="chat-temp", compact=True, classes="num")
            yield Label(" max ")
            yield Input(str(DEFAULTS.max_new_tokens), id="chat-max", compact=True, classes="num")
            yield Label(" quantize ")
            yield quantize_picker("chat-quantize")
        yield VerticalScroll(
            Static("pick a model, type below, enter sends", classes="hint"), id="transcript"
        )
        yield Input(placeholder="message (enter sends)", id="chat-input")
        yield Static("", id="chat-stats", classes="hint")

    def unsaved(self) -> str | None:
        """A message typed and not sent, or a conversation, would be lost on quit."""
        if self.query_one("#chat-input", Input).value.strip():
            return "a chat message is typed and not sent"
        return "the chat conversation goes" if self.history else None

    def set_models(self, models: list[dict]) -> None:
        """Offer the newest version of every model that writes text, assistants first (the
        default: the newest one); base models complete plainly; embedding models are left out."""
        found = chat_choices(models)
        if found == self.models:
            return
        self.models = found
        offer(self.query_one("#chat-model", Select), found)

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.id != "chat-model":
            return  # the quantize choice applies from the next turn on
        self.history, self._session = [], None
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
            sampling = parse_sampling(
                self.query_one("#chat-temp", Input).value,
                self.query_one("#chat-max", Input).value,
                quantize=quantize_of(self.query_one("#chat-quantize", Select)),
            )
        except OpError as e:
            self.app.notify(str(e), severity="error")
            return
        text, event.input.value = event.value, ""
        transcript = self.query_one("#transcript", VerticalScroll)
        transcript.mount(Static(f"you: {text}", classes="msg-user", markup=False))
        self._answer = Static("…", classes="msg-model", markup=False)
        transcript.mount(self._answer)
        transcript.scroll_end(animate=False)
        self._busy = True
        self._generate(str(select.value), text, sampling)

    @work(thread=True, exclusive=True, group="chat", exit_on_error=False)
    def _generate(self, model: str, text: str, sampling: Sampling) -> None:
        worker = get_current_worker()
        if self._session is None:
            self._session = ChatSession(self.app.store(), model)
            self.history = self._session.messages
            if self._session.notice:
                self.post_message(SessionNoticed(self._session.notice))
        answer, n, start = "", 0, time.monotonic()
        for piece in self._session.turn(text, sampling):
            if worker.is_cancelled:
                break
            answer, n = answer + piece, n + 1
            self.post_message(AnswerUpdated(answer, pieces=n, seconds=time.monotonic() - start))
        seconds = time.monotonic() - start
        self.post_message(AnswerUpdated(answer, done=True, pieces=n, seconds=seconds))

    def on_session_noticed(self, message: SessionNoticed) -> None:
        transcript = self.query_one("#transcript", VerticalScroll)
        notice = Static(message.text, classes="hint", markup=False)
        transcript.mount(notice, before=self._answer)

    def on_answer_updated(self, message: AnswerUpdated) -> None:
        if self._answer is not None:
            self._answer.update(message.text or "…")
            self.query_one("#transcript", VerticalScroll).scroll_end(animate=False)
        if message.pieces and message.seconds > 0:
            rate = message.pieces / message.seconds
            state = "" if message.done else " · ctrl+x stops"
            self.query_one("#chat-stats", Static).update(
                f"{message.pieces} tokens · {rate:.1f} tokens/s{state}"
            )
        if message.done:
            self._busy = False

    def stop(self) -> None:
        """Stop the answer being generated (it keeps what came so far)."""
        self.workers.cancel_group(self, "chat")

    def clear(self) -> None:
        """Start a new conversation with the same model."""
        self.stop()
        self.history, self._session, self._busy = [], None, False
        self.query_one("#transcript", VerticalScroll).remove_children()
        self.query_one("#chat-stats", Static).update("")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        forward_worker_state(self, event)  # the app notifies the failure
        if event.state == WorkerState.ERROR:
            self._busy = False
            if self._answer is not None:
                self._answer.update(f"(failed) {event.worker.error}")
