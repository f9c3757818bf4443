"""Arena: blind A/B between two models, the leaderboard, and ranking K completions.

A match: type a prompt (or leave it empty for one from the built-in set) and press Enter;
two models drawn at random from the registry answer side by side, streaming, as "Model A"
and "Model B". Vote with `a` (left better), `b` (right better), `=` (tie) or `x` (both bad):
`workbench.ops.arena.cast_vote` stores it and the names are revealed. The leaderboard is the
store's `leaderboard` view (Elo, counts) with Bradley–Terry scores fitted by ops. Rank: one
model samples K completions of a prompt; type their numbers best first and they are stored
as a comparison, the form the reward pipeline reads with `data.from_store = true`. Both tabs
have a quantize choice (none, int8, int4): the weights the models decode with; the vote or
ranking then names the models `model [int8]`.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Label, Select, Static, TabbedContent, TabPane

from workbench.ops import OpError
from workbench.ops import arena as arena_ops
from workbench.ops.chat import DEFAULTS, parse_sampling, quantize_label
from workbench.tui.screens.base import StoreScreen
from workbench.tui.widgets.columns import AnswerColumns, ColumnsUpdated
from workbench.tui.widgets.layout import table_with_hint
from workbench.tui.widgets.picker import offer, quantize_of, quantize_picker
from workbench.tui.widgets.sidebyside import StreamsAnswers, prompt_row, stream_columns
from workbench.tui.widgets.table import fill

BOARD_COLUMNS = ("model", "elo", "BT", "votes", "won", "lost", "tie", "bad")
BLIND = ["Model A", "Model B"]
VOTE_KEYS = "a left better · b right better · = tie · x both bad"


@dataclass
class CompletionsSampled(Message):
    """K completions of the Rank tab's prompt arrived (from `model` with `quantize` weights)."""

    prompt: str
    texts: list[str]
    model: str = ""
    quantize: str = "none"


def board_cells(row: dict) -> tuple[str, ...]:
    def num(v: Any) -> str:
        return "-" if v is None else f"{v:.0f}"

    return (row["model"], num(row["elo"]), num(row.get("bt")), str(row["votes"]),
            str(row["wins"]), str(row["losses"]), str(row["ties"]), str(row["both_bad"]))  # fmt: skip


class ArenaScreen(StreamsAnswers, StoreScreen):
    MODE = "arena"
    STREAM_GROUP = "arena"
    STATUS = "#arena-status"
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("m", "tab('match')", "Match"),
        Binding("l", "tab('board')", "Leaderboard"),
        Binding("k", "tab('rank')", "Rank K"),
        Binding("n", "new_match", "New match"),
        Binding("a", "vote('left')", "Left better"),
        Binding("b", "vote('right')", "Right better"),
        Binding("equals_sign", "vote('tie')", "Tie"),
        Binding("x", "vote('both_bad')", "Both bad"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.models: list[str] = []
        self.pair: tuple[str, str] | None = None
        self.prompt = ""
        self.streaming = False
        self.voted = False
        self.answers: list[str] = []
        self.quantize = "none"  # the weights the current match's models answer with
        self.ranking: tuple[str, list[str]] | None = None
        self.ranked_by: tuple[str, str] = ("", "none")  # (model, quantize) that sampled it
        self._stop = threading.Event()

    def compose(self) -> ComposeResult:
        yield from self.compose_modebar()
        with TabbedContent(initial="match"):
            with TabPane("Match", id="match"):
                placeholder = "prompt (Enter: match; empty: one from the set)"
                yield prompt_row("arena-top", "arena-prompt", placeholder, "arena-max",
                                 "arena-quantize")  # fmt: skip
                yield AnswerColumns(id="arena-columns")
                yield Static("type a prompt and press Enter", id="arena-status", classes="hint",
                             markup=False)  # fmt: skip
            with TabPane("Leaderboard", id="board"):
                yield from table_with_hint("arena-board", BOARD_COLUMNS, "board-info")
            with TabPane("Rank", id="rank"):
                with Horizontal(id="rank-top"):
                    yield Select([], prompt="model", id="rank-model", compact=True)
                    yield Label(" K ")
                    yield Input("4", id="rank-k", compact=True, classes="num")
                    yield Label(" quantize ")
                    yield quantize_picker("rank-quantize")
                yield Input(placeholder="prompt (Enter samples K completions)", id="rank-prompt",
                            compact=True)  # fmt: skip
                yield VerticalScroll(Static("", id="rank-list", markup=False), id="rank-box")
                yield Input(placeholder="their numbers best first, e.g. 3 1 4 2 (Enter stores)",
                            id="rank-order", compact=True)  # fmt: skip
        yield Footer(compact=True)

    async def on_mount(self) -> None:
        await self.query_one(AnswerColumns).reset(BLIND)
        self.set_focus(self.query_one("#arena-prompt"))

    def focus_home(self) -> None:
        tab = self.query_one(TabbedContent).active
        target = {"match": "#arena-columns .answer-scroll", "board": "#arena-board",
                  "rank": "#rank-box"}  # fmt: skip
        self.set_focus(self.query_one(target[tab]))

    # the store

    def read(self, store: Any) -> dict:
        return arena_ops.arena_view(store)

    def show(self, data: dict) -> None:
        self.models = data["models"]
        table = self.query_one("#arena-board", DataTable)
        fill(table, [(row["model"], board_cells(row)) for row in data["board"]])
        votes = sum(r["votes"] for r in data["board"]) // 2
        self.query_one("#board-info", Static).update(
            f"{votes} votes · {data['rankings']} rankings stored · Elo K=32 from 1000 "
            "(SQL view `leaderboard`); BT: Bradley–Terry on the Elo scale"
        )
        self._set_rank_models()

    def _set_rank_models(self) -> None:
        offer(self.query_one("#rank-model", Select), [(m, m) for m in self.models])

    # tabs

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        target = {"match": "#arena-prompt", "board": "#arena-board", "rank": "#rank-prompt"}
        self.set_focus(self.query_one(target[tab]))

    # a match

    def on_input_submitted(self, event: Input.Submitted) -> None:
        handlers = {"arena-prompt": self.action_new_match, "arena-max": self.action_new_match,
                    "rank-prompt": self.sample_ranking, "rank-k": self.sample_ranking,
                    "rank-order": self.store_ranking}  # fmt: skip
        if event.input.id in handlers:
            event.stop()
            self.call_later(handlers[event.input.id])

    async def action_new_match(self) -> None:
        if self.streaming:
            self.notify("the models are still answering", severity="warning")
            return
        prompt_box = self.query_one("#arena-prompt", Input)
        quantize = quantize_of(self.query_one("#arena-quantize", Select))
        try:
            sampling = parse_sampling("", self.query_one("#arena-max", Input).value,
                                      quantize=quantize)  # fmt: skip
            pair = arena_ops.blind_pair(self.models)
        except OpError as e:
            self.notify(str(e), severity="error")
            return
        self.prompt = prompt_box.value.strip() or random.choice(arena_ops.PROMPTS)
        prompt_box.value = self.prompt
        self.pair, self.voted, self.streaming, self.answers = pair, False, True, []
        self.quantize = quantize
        await self.query_one(AnswerColumns).reset(BLIND)
        self.query_one("#arena-status", Static).update("both models are answering…")
        self.set_focus(self.query_one("#arena-columns .answer-scroll"))
        self._stop = threading.Event()
        self._battle(self.prompt, list(pair), sampling, self._stop)

    @work(thread=True, exclusive=True, group="arena", exit_on_error=False)
    def _battle(self, prompt: str, refs: list[str], sampling: Any, stop: threading.Event) -> None:
        stream_columns(self, self.app.store(), refs, prompt, sampling, stop)

    def on_columns_updated(self, message: ColumnsUpdated) -> None:
        self.query_one(AnswerColumns).update_columns(message.columns)
        if message.done:
            self.streaming = False
            self.answers = [c.text.strip() for c in message.columns]
            self.query_one("#arena-status", Static).update(f"vote: {VOTE_KEYS}")

    def action_vote(self, choice: str) -> None:
        if self.pair is None or self.streaming or self.voted:
            why = (
                "start a match first (Enter in the prompt)"
                if self.pair is None
                else (
                    "wait for both answers"
                    if self.streaming
                    else "already voted: n for a new match"
                )
            )
            self.notify(why, severity="warning")
            return
        self.voted = True
        left, right = self.pair
        self.app.run_op("vote", arena_ops.cast_vote, self.app.store(), self.prompt, left, right,
                        *self.answers, choice, quantize=self.quantize, node=self)  # fmt: skip
        left, right = (quantize_label(m, self.quantize) for m in self.pair)
        self.query_one(AnswerColumns).set_titles([f"A: {left}", f"B: {right}"])
        self.query_one("#arena-status", Static).update(
            f"voted {choice.replace('_', ' ')} — A was {left}, B was {right} · n: new match"
        )

    # rank K completions

    def sample_ranking(self) -> None:
        select = self.query_one("#rank-model", Select)
        prompt = self.query_one("#rank-prompt", Input).value.strip()
        if select.is_blank() or not prompt:
            self.notify("pick a model and type a prompt", severity="warning")
            return
        try:
            k = int(self.query_one("#rank-k", Input).value)
        except ValueError:
            self.notify("K is a whole number from 2 to 16", severity="error")
            return
        self.ranking = None
        quantize = quantize_of(self.query_one("#rank-quantize", Select))
        self.query_one("#rank-list", Static).update(f"sampling {k} completions…")
        self._sample(str(select.value), prompt, k, quantize)

    @work(thread=True, exclusive=True, group="rank", exit_on_error=False)
    def _sample(self, model: str, prompt: str, k: int, quantize: str) -> None:
        sampling = DEFAULTS.with_(max_new_tokens=min(DEFAULTS.max_new_tokens, 64), seed=None,
                                  quantize=quantize)  # fmt: skip
        texts = arena_ops.sample_completions(self.app.store(), model, prompt, k, sampling)
        self.post_message(CompletionsSampled(prompt, texts, model, quantize))

    def on_completions_sampled(self, message: CompletionsSampled) -> None:
        self.ranking = (message.prompt, message.texts)
        self.ranked_by = (message.model, message.quantize)
        lines = [f"{i}. {t or '(empty)'}" for i, t in enumerate(message.texts, 1)]
        self.query_one("#rank-list", Static).update("\n".join(lines))
        self.set_focus(self.query_one("#rank-order"))

    def store_ranking(self) -> None:
        if self.ranking is None:
            self.notify("sample completions first (Enter in the prompt)", severity="warning")
            return
        prompt, texts = self.ranking
        box = self.query_one("#rank-order", Input)
        try:
            order = arena_ops.parse_order(box.value, len(texts))
        except OpError as e:
            self.notify(str(e), severity="error")
            return
        box.value = ""
        model, quantize = self.ranked_by
        self.app.run_op("rank", arena_ops.rank_completions, self.app.store(), prompt, texts,
                        order, model=model or None, quantize=quantize, node=self)  # fmt: skip
