"""Compare: models side by side on one prompt, runs' curves overlaid, a spec diff, lineage.

Answers: tick 2–4 models, type a prompt, Enter — `workbench.ops.compare.side_by_side` streams
every answer at once in one worker, with each column's tokens/s, length and mean log-prob;
the quantize choice beside the prompt decodes every model with int8 or int4 weights (columns
then read `model [int8]`).
Curves: tick 2–4 runs; their `metric` (train and validation) share one chart. Diff: the
resolved specs of the two oldest ticked runs, field by field where they differ. Lineage: the
chain of the oldest ticked run (base → SFT → reward → RLHF) with each stage's final losses,
held-out accuracy, diversity (distinct-2) and time, read in one store transaction.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import (
    DataTable,
    Footer,
    Input,
    Select,
    SelectionList,
    Static,
    TabbedContent,
    TabPane,
)

from workbench.ops import OpError
from workbench.ops.chat import parse_sampling, quantize_label
from workbench.ops.compare import LINEAGE_COLUMNS, MAX_COLUMNS, compare_view, short_id
from workbench.ops.fmt import fmt_num, human_seconds
from workbench.tui.screens.base import StoreScreen
from workbench.tui.widgets.chart import LineChart
from workbench.tui.widgets.columns import AnswerColumns, ColumnsUpdated
from workbench.tui.widgets.layout import table_with_hint
from workbench.tui.widgets.picker import quantize_of
from workbench.tui.widgets.sidebyside import StreamsAnswers, prompt_row, stream_columns
from workbench.tui.widgets.table import fill

DIFF_HEADERS = ("field", "older run", "newer run")
LINEAGE_HEADERS = ("stage", "run", "status", "model", "loss", "val", "acc", "div-2", "time")
TARGETS = {"answers": "#compare-prompt", "curves": "#compare-runs", "diff": "#diff-table",
           "lineage": "#lineage-table"}  # fmt: skip


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return fmt_num(value)
    return str(value)


class CompareScreen(StreamsAnswers, StoreScreen):
    MODE = "compare"
    STREAM_GROUP = "compare"
    STATUS = "#compare-status"
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("a", "tab('answers')", "Answers"),
        Binding("c", "tab('curves')", "Curves"),
        Binding("d", "tab('diff')", "Spec diff"),
        Binding("i", "tab('lineage')", "Lineage"),
        Binding("s", "stop", "Stop answers"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.models: list[str] = []
        self.runs: list[str] = []
        self.metric = "loss"
        self.streaming = False
        self.columns: list[Any] = []
        self._stop = threading.Event()

    def compose(self) -> ComposeResult:
        yield from self.compose_modebar()
        with TabbedContent(initial="answers"):
            with TabPane("Answers", id="answers"):
                placeholder = "prompt for the ticked models (Enter: answer)"
                yield prompt_row("compare-top", "compare-prompt", placeholder, "compare-max",
                                 "compare-quantize")  # fmt: skip
                yield SelectionList[str](id="compare-models")
                yield AnswerColumns(id="compare-columns")
                yield Static("tick 2–4 models, type a prompt, Enter", id="compare-status",
                             classes="hint")  # fmt: skip
            with TabPane("Curves", id="curves"):
                with Horizontal(id="runs-top"):
                    yield Select([("loss", "loss")], value="loss", id="compare-metric",
                                 allow_blank=False, compact=True)  # fmt: skip
                yield SelectionList[str](id="compare-runs")
                yield LineChart("loss", id="compare-chart")
            with TabPane("Spec diff", id="diff"):
                yield from table_with_hint("diff-table", DIFF_HEADERS, "diff-info")
            with TabPane("Lineage", id="lineage"):
                yield from table_with_hint("lineage-table", LINEAGE_HEADERS, "lineage-info")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#compare-prompt"))

    def focus_home(self) -> None:
        tab = self.query_one(TabbedContent).active
        self.set_focus(self.query_one("#compare-models" if tab == "answers" else TARGETS[tab]))

    # the store

    def selected_runs(self) -> list[str]:
        return list(self.query_one("#compare-runs", SelectionList).selected)

    def read(self, store: Any) -> dict:
        return compare_view(store, self.selected_runs(), self.metric)

    def show(self, data: dict) -> None:
        self._options("#compare-models", data["models"], self.models)
        self.models = data["models"]
        self._options("#compare-runs", data["runs"], self.runs)
        self.runs = data["runs"]
        self._metrics(data["metrics"])
        chart = self.query_one("#compare-chart", LineChart)
        chart.title = self.metric
        chart.set_series(data["series"])
        self._diff(data["diff"], data["selected"])
        self._lineage(data["lineage"])

    def _options(self, selector: str, values: list[str], before: list[str]) -> None:
        if values == before:
            return
        box = self.query_one(selector, SelectionList)
        ticked = set(box.selected)
        with self.prevent(SelectionList.SelectedChanged):
            box.clear_options()
            box.add_options([(v, v, v in ticked) for v in values])

    def _metrics(self, names: list[str]) -> None:
        select = self.query_one("#compare-metric", Select)
        names = names or [self.metric]
        with self.prevent(Select.Changed):
            select.set_options([(n, n) for n in names])
            select.value = self.metric if self.metric in names else names[0]

    def _diff(self, diff: list | None, selected: list[str]) -> None:
        table = self.query_one("#diff-table", DataTable)
        hint = "tick two runs under Curves (c): their resolved specs, field by field"
        if diff is not None:
            first, second = (short_id(r) for r in selected[:2])
            hint = f"older: {first} · newer: {second} · " + (
                f"{len(diff)} fields differ" if diff else "the resolved specs are the same"
            )
        self.query_one("#diff-info", Static).update(hint)
        fill(table, [(None, row) for row in diff or []])

    def _lineage(self, rows: list[dict]) -> None:
        table = self.query_one("#lineage-table", DataTable)
        lines = []
        for row in rows:
            cells = [cell(row[c]) for c in LINEAGE_COLUMNS]
            cells[1] = short_id(row["run"])
            cells[-1] = human_seconds(row["duration_s"]) if row["duration_s"] else "-"
            lines.append((row["run"], cells))
        fill(table, lines)
        hint = "base → SFT → reward → RLHF: acc = held-out accuracy, div-2 = distinct-2"
        self.query_one("#lineage-info", Static).update(
            hint if rows else "tick a run under Curves (c) to see its lineage"
        )

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        if event.selection_list.id == "compare-runs":
            self.reload()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "compare-metric" and isinstance(event.value, str):
            self.metric = event.value
            self.reload()

    # tabs

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self.set_focus(self.query_one(TARGETS[tab]))

    # answers side by side

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id in ("compare-prompt", "compare-max"):
            event.stop()
            self.call_later(self.answer)

    async def answer(self) -> None:
        if self.streaming:
            self.notify("the models are still answering (s stops them)", severity="warning")
            return
        refs = list(self.query_one("#compare-models", SelectionList).selected)
        prompt = self.query_one("#compare-prompt", Input).value
        try:
            if not 1 <= len(refs) <= MAX_COLUMNS:
                raise OpError(f"tick 1 to {MAX_COLUMNS} models in the list (space ticks)")
            if not prompt.strip():
                raise OpError("type a prompt first")
            quantize = quantize_of(self.query_one("#compare-quantize", Select))
            sampling = parse_sampling("", self.query_one("#compare-max", Input).value,
                                      quantize=quantize)  # fmt: skip
        except OpError as e:
            self.notify(str(e), severity="warning")
            return
        self.streaming = True
        await self.query_one(AnswerColumns).reset([quantize_label(r, quantize) for r in refs])
        self.query_one("#compare-status", Static).update(f"{len(refs)} models answering…")
        self._stop = threading.Event()
        self._answer(refs, prompt, sampling, self._stop)

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def _answer(self, refs: list[str], prompt: str, sampling: Any, stop: threading.Event) -> None:
        stream_columns(self, self.app.store(), refs, prompt, sampling, stop)

    def on_columns_updated(self, message: ColumnsUpdated) -> None:
        self.columns = message.columns
        self.query_one(AnswerColumns).update_columns(message.columns)
        if message.done:
            self.streaming = False
            self.query_one("#compare-status", Static).update("done · Enter in the prompt: again")

    def action_stop(self) -> None:
        self._stop.set()
