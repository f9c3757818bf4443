"""Playground: one model, one prompting strategy, the answer streamed with its steps.

Pick a model, a strategy (`plain`, or any of the prompting lab's registry) and the weights
to decode with (quantize: none, int8 or int4), set temperature, top-p (plain only), max
tokens, seed, N (self-consistency samples) and a constraint (`a|b|c` for a choice, anything
else a regex), type a prompt and press Enter.
`workbench.ops.compare.play` runs it in a worker: steps (thoughts, tool calls, votes) and text
arrive as coalescing `PlayUpdated` messages. `s` saves the exchange as a prompt experiment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from workbench.ops.compare import PlayRequest, play, save_play
from workbench.ops.views import models_view
from workbench.tui.screens.base import StoreScreen
from workbench.tui.widgets.picker import offer, quantize_of, quantize_picker

PARAMS = (("temp", "0.7"), ("top-p", "0.95"), ("max", "128"), ("seed", "0"), ("N", "5"))
PLAIN_ONLY = [("plain", "plain")]


@dataclass
class PlayUpdated(Message):
    """The steps and text so far; `exchange` (the finished run) on the last one."""

    steps: list[str]
    text: str
    exchange: dict | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PlayUpdated) and message.exchange is None


def step_line(step: dict) -> str:
    extra = {k: v for k, v in step.items() if k not in ("kind", "text")}
    tail = f"  {extra}" if extra else ""
    return f"[{step.get('kind', 'step')}] {step.get('text', '')}{tail}"


class PlaygroundScreen(StoreScreen):
    MODE = "playground"
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("s", "save", "Save as experiment"),
        Binding("p", "focus_prompt", "Prompt"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.exchange: dict | None = None
        self.busy = False
        self.strategies: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        yield from self.compose_modebar()
        with Horizontal(id="play-top"):
            yield Select([], prompt="model", id="play-model", compact=True)
            yield Select(PLAIN_ONLY, value="plain", id="play-strategy", allow_blank=False,
                         compact=True)  # fmt: skip
            yield Label(" quantize ")
            yield quantize_picker("play-quantize")
        with Horizontal(id="play-params"):
            for name, value in PARAMS:
                yield Label(f" {name} ")
                yield Input(value, id=f"play-{name.replace('-', '')}", compact=True,
                            classes="num")  # fmt: skip
            yield Label(" constraint ")
            yield Input(placeholder="a|b or regex", id="play-constraint", compact=True)
        yield Input(placeholder="prompt (Enter runs)", id="play-prompt", compact=True)
        with VerticalScroll(id="play-out"):
            yield Static("", id="play-steps", markup=False)
            yield Static("pick a model, type a prompt, Enter", id="play-text", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#play-prompt"))

    def focus_home(self) -> None:
        self.set_focus(self.query_one("#play-out"))

    def read(self, store: Any) -> dict:
        from workbench.ops.compare import GENERATING_KINDS, strategies

        models = [m["name"] for m in models_view(store) if m["kind"] in GENERATING_KINDS]
        return {"models": models, "strategies": self.strategies or strategies()}

    def show(self, data: dict) -> None:
        offer(self.query_one("#play-model", Select), [(m, m) for m in data["models"]])
        if data["strategies"] != self.strategies:
            self.strategies = data["strategies"]
            offer(self.query_one("#play-strategy", Select), [(n, n) for n, _ in self.strategies])

    def action_focus_prompt(self) -> None:
        self.set_focus(self.query_one("#play-prompt"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.run_prompt()

    def request(self) -> PlayRequest | None:
        model = self.query_one("#play-model", Select)
        if model.is_blank():
            self.notify("pick a model first", severity="warning")
            return None
        values = {n: self.query_one(f"#play-{n.replace('-', '')}", Input).value for n, _ in PARAMS}
        try:
            return PlayRequest(
                str(model.value), str(self.query_one("#play-strategy", Select).value),
                self.query_one("#play-prompt", Input).value,
                temperature=float(values["temp"]), top_p=float(values["top-p"]),
                max_new_tokens=int(values["max"]), seed=int(values["seed"]), n=int(values["N"]),
                constraint=self.query_one("#play-constraint", Input).value.strip(),
                quantize=quantize_of(self.query_one("#play-quantize", Select)),
            )  # fmt: skip
        except ValueError as e:
            self.notify(f"a parameter is not a number: {e}", severity="error")
            return None

    def run_prompt(self) -> None:
        if self.busy:
            self.notify("still answering", severity="warning")
            return
        req = self.request()
        if req is None:
            return
        self.busy, self.exchange = True, None
        self.query_one("#play-steps", Static).update("")
        self.query_one("#play-text", Static).update("…")
        self._play(req)

    @work(thread=True, exclusive=True, group="play", exit_on_error=False)
    def _play(self, req: PlayRequest) -> None:
        steps: list[str] = []
        text: list[str] = []

        def on_step(_i: int, step: dict) -> None:
            steps.append(step_line(step))
            self.post_message(PlayUpdated(list(steps), "".join(text)))

        def on_piece(_i: int, piece: str) -> None:
            text.append(piece)
            self.post_message(PlayUpdated(list(steps), "".join(text)))

        exchange = play(self.app.store(), req, on_step, on_piece)
        self.post_message(PlayUpdated(list(steps), exchange["output"], exchange))

    def on_play_updated(self, message: PlayUpdated) -> None:
        self.query_one("#play-steps", Static).update("\n".join(message.steps))
        self.query_one("#play-text", Static).update(message.text or "…")
        self.query_one("#play-out", VerticalScroll).scroll_end(animate=False)
        if message.exchange is not None:
            self.busy, self.exchange = False, message.exchange

    def action_save(self) -> None:
        if self.exchange is None:
            self.notify("run a prompt first", severity="warning")
            return
        self.app.run_op("save", save_play, self.app.store(), self.exchange, node=self)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)
        if event.worker.group == "play" and event.state == WorkerState.ERROR:
            self.busy = False
            self.query_one("#play-text", Static).update(f"(failed) {event.worker.error}")
