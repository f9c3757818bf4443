"""Data & tokenizer: a pretrain run's mixture accounting, one packed B×T batch, a tokenizer.

Mixture: the run's `mixture` table (else `sources`): docs, bytes, tokens, weight, the share
actually drawn and the effective epochs. Batch: B windows of T tokens read from the run's
cached shards, end-of-text markers between documents (`b` draws another). Tokenizer: type
text and see it split into tokens with ids, for any registered model or pretrain run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Select, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState, get_current_worker

from workbench.ops.fmt import fmt
from workbench.ops.views import data_view
from workbench.tui.screens.base import StoreScreen
from workbench.tui.widgets.table import fill
from workbench.tui.widgets.tokens import TokenView

COLUMNS = ("source", "docs", "bytes", "tokens", "weight", "drawn_share", "epochs")


def mixture_cells(row: dict[str, Any]) -> tuple[str, ...]:
    tokens = row.get("tokens", row.get("tokens_train"))
    mb = f"{row['bytes'] / 1e6:.2f}M" if row.get("bytes") is not None else "-"
    return (
        str(row.get("source")),
        fmt(row.get("docs")),
        mb,
        fmt(tokens),
        fmt(row.get("weight")),
        fmt(row.get("drawn_share")),
        fmt(row.get("epochs")),
    )


@dataclass
class BatchDrawn(Message):
    """A packed B×T batch was read from the run's shards."""

    rows: list
    special: set[int]
    T: int


@dataclass
class TextTokenized(Message):
    """The typed text was split into (id, piece) tokens."""

    pieces: list
    special: set[int]
    text: str


class DataScreen(StoreScreen):
    MODE = "data"
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("b", "draw_batch", "New batch"),
        Binding("m", "tab('mixture')", "Mixture", show=False),
        Binding("k", "tab('tokenizer')", "Tokenizer"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.run_id: str | None = None
        self.runs: dict[str, dict] = {}
        self.seed = 0
        self._options: list = []

    def compose(self) -> ComposeResult:
        yield from self.compose_modebar()
        with Horizontal(id="data-top"):
            yield Select([], prompt="a pretrain run", id="data-run", compact=True)
        with TabbedContent(initial="mixture"):
            with TabPane("Mixture", id="mixture"):
                table = DataTable(id="mixture-table", cursor_type="row", classes="table-box")
                table.add_columns(*COLUMNS)
                yield table
                yield Static("", id="mixture-hint", classes="hint")
            with TabPane("Batch", id="batch"):
                yield Static("press b to draw a batch", id="batch-status", classes="hint")
                yield VerticalScroll(TokenView(id="batch-view"), classes="pane")
            with TabPane("Tokenizer", id="tokenizer"):
                with Horizontal(id="tok-top"):
                    yield Select([], prompt="tokenizer of…", id="tok-source", compact=True)
                yield Input(placeholder="type text to tokenize", id="tok-text")
                yield Static("", id="tok-summary", classes="hint")
                yield VerticalScroll(TokenView(id="tok-view"), classes="pane")
        yield Footer(compact=True)

    def read(self, store) -> dict[str, Any]:
        return data_view(store, self.run_id)

    def show(self, data: dict[str, Any]) -> None:
        self.runs = {r["run_id"]: r for r in data["runs"]}
        select = self.query_one("#data-run", Select)
        options = [(f"{r['run_id']} ({r['status']})", r["run_id"]) for r in data["runs"]]
        with self.prevent(Select.Changed):
            if options != self._options:
                self._options = options
                select.set_options(options)
            if data["run_id"] and select.value != data["run_id"]:
                select.value = data["run_id"]
        if self.run_id is None and data["run_id"]:
            self.run_id = data["run_id"]
        self._show_mixture(data["tables"])
        self._show_sources(data)

    def _show_mixture(self, tables: dict[str, list]) -> None:
        rows = tables.get("mixture") or tables.get("sources") or []
        table = self.query_one("#mixture-table", DataTable)
        cells = [mixture_cells(r) for r in rows]
        if [tuple(table.get_row_at(i)) for i in range(table.row_count)] != cells:
            fill(table, [(None, c) for c in cells])
        hint = "" if rows else "no mixture table for this run yet (it appears once data is packed)"
        if rows and not tables.get("mixture"):
            hint = "sources as packed; drawn shares appear when training ends"
        self.query_one("#mixture-hint", Static).update(hint)

    def _show_sources(self, data: dict[str, Any]) -> None:
        options = [(f"model {m['name']}", f"model:{m['name']}") for m in data["models"]]
        options += [(f"run {r['run_id']}", f"run:{r['run_id']}") for r in data["runs"]]
        select = self.query_one("#tok-source", Select)
        if options != getattr(self, "_tok_options", None):
            self._tok_options = options
            value = select.value
            with self.prevent(Select.Changed):
                select.set_options(options)
                if value in [v for _, v in options]:
                    select.value = value

    # events

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "data-run" and not event.select.is_blank():
            self.run_id = str(event.value)
            self._options = []
            self.reload()
            if self.query_one(TabbedContent).active == "batch":
                self.action_draw_batch()
        elif event.select.id == "tok-source":
            self.tokenize()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "batch" and not self.query_one("#batch-view", TokenView).rows:
            self.action_draw_batch()
        self.focus_pane(event.pane.id or "")

    def focus_pane(self, tab: str) -> None:
        """The tokenizer's text box takes the keys when its pane opens; the others the table."""
        if tab == "tokenizer":
            self.set_focus(self.query_one("#tok-text", Input))
        elif tab == "mixture":
            self.set_focus(self.query_one("#mixture-table"))
        else:
            self.set_focus(None)

    def focus_home(self) -> None:
        """Escape leaves the text box for the tokenizer picker (letters are keys again)."""
        self.set_focus(self.query_one("#tok-source"))

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "tok-text":
            self.tokenize()

    # the batch

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self.focus_pane(tab)

    def action_draw_batch(self) -> None:
        run = self.runs.get(self.run_id or "")
        if run is None:
            return
        self.query_one(TabbedContent).active = "batch"
        self.query_one("#batch-status", Static).update("reading the shards…")
        self._batch_worker(run.get("spec") or {}, self.seed)
        self.seed += 1

    @work(thread=True, exclusive=True, group="batch", exit_on_error=False)
    def _batch_worker(self, spec: dict, seed: int) -> None:
        from workbench.ops.data import packed_batch

        rows, special, T = packed_batch(self.home, spec, batch=4, seed=seed)
        if not get_current_worker().is_cancelled:
            self.post_message(BatchDrawn(rows, special, T))

    def on_batch_drawn(self, message: BatchDrawn) -> None:
        B = len(message.rows)
        self.query_one("#batch-status", Static).update(
            f"B×T = {B}×{message.T} · <|endoftext|> ends each document · b draws again"
        )
        self.query_one("#batch-view", TokenView).set_rows(message.rows, message.special)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)
        target = {"batch": "#batch-status", "tokenize": "#tok-summary"}.get(event.worker.group)
        if target and event.state == WorkerState.ERROR:
            self.query_one(target, Static).update(str(event.worker.error))

    # the tokenizer

    def tokenize(self) -> None:
        source = self.query_one("#tok-source", Select)
        text = self.query_one("#tok-text", Input).value
        if source.is_blank() or not text:
            return
        self._tokenize_worker(str(source.value), text)

    @work(thread=True, exclusive=True, group="tokenize", exit_on_error=False)
    def _tokenize_worker(self, ref: str, text: str) -> None:
        from workbench.ops.data import tokenize

        pieces, special = tokenize(self.app.store(), ref, text)
        if not get_current_worker().is_cancelled:
            self.post_message(TextTokenized(pieces, special, text))

    def on_text_tokenized(self, message: TextTokenized) -> None:
        n, chars = len(message.pieces), len(message.text)
        per = len(message.text.encode()) / n if n else 0
        self.query_one("#tok-summary", Static).update(
            f"{n} tokens · {chars} characters · {per:.2f} bytes/token"
        )
        view = self.query_one("#tok-view", TokenView)
        view.set_rows([("", message.pieces)], message.special, show_ids=True)
