"""Compare: models side by side on one prompt, runs' curves overlaid, a spec diff, lineage.

Answers: tick 2–4 models, type a prompt, Enter — `workbench.ops.compare.side_by_side` streams
every answer at once in one worker, with each column's tokens/s, length and mean log-prob.
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
    Label,
    Select,
    SelectionList,
    Static,
    TabbedContent,
    TabPane,
)
from textual.worker import Worker, WorkerState, get_current_worker

from workbench.ops import OpError
from workbench.ops.chat import DEFAULTS, parse_sampling
from workbench.ops.compare import LINEAGE_COLUMNS, MAX_COLUMNS, compare_view, short_id
from workbench.ops.fmt import fmt_num, human_seconds
from workbench.tui.screens.base import StoreScreen
from workbench.tui.widgets.chart import LineChart
from workbench.tui.widgets.columns import AnswerColumns, ColumnsUpdated
from workbench.tui.widgets.table import fill

LINEAGE_HEADERS = ("stage", "run", "status", "model", "loss", "val", "acc", "div-2", "time")
TARGETS = {"answers": "#compare-prompt", "curves": "#compare-runs", "diff": "#diff-table",
           "lineage": "#lineage-table"}  # fmt: skip


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return fmt_num(value)
    return str(value)


class CompareScreen(StoreScreen):
    MODE = "compare"
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
                with Horizontal(id="compare-top"):
                    yield Input(placeholder="prompt for the ticked models (Enter: answer)",
                                id="compare-prompt", compact=True)  # fmt: skip
                    yield Label(" max ")
                    yield Input(str(DEFAULTS.max_new_tokens), id="compare-max", compact=True,
                                classes="num")  # fmt: skip
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
                table = DataTable(id="diff-table", cursor_type="row", zebra_stripes=True)
                table.add_columns("field", "older run", "newer run")
                yield table
                yield Static("", id="diff-info", classes="hint")
            with TabPane("Lineage", id="lineage"):
                table = DataTable(id="lineage-table", cursor_type="row", zebra_stripes=True)
                table.add_columns(*LINEAGE_HEADERS)
                yield table
                yield Static("", id="lineage-info", classes="hint")
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
            sampling = parse_sampling("", self.query_one("#compare-max", Input).value)
        except OpError as e:
            self.notify(str(e), severity="warning")
            return
        self.streaming = True
        await self.query_one(AnswerColumns).reset(refs)
        self.query_one("#compare-status", Static).update(f"{len(refs)} models answering…")
        self._stop = threading.Event()
        self._answer(refs, prompt, sampling, self._stop)

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def _answer(self, refs: list[str], prompt: str, sampling: Any, stop: threading.Event) -> None:
        from workbench.ops.compare import side_by_side

        worker = get_current_worker()
        columns: list[Any] = []
        for columns in side_by_side(self.app.store(), refs, prompt, sampling, stop=stop):
            if worker.is_cancelled:
                stop.set()
                break
            self.post_message(ColumnsUpdated(columns))
        self.post_message(ColumnsUpdated(columns, done=True))

    def on_columns_updated(self, message: ColumnsUpdated) -> None:
        self.columns = message.columns
        self.query_one(AnswerColumns).update_columns(message.columns)
        if message.done:
            self.streaming = False
            self.query_one("#compare-status", Static).update("done · Enter in the prompt: again")

    def action_stop(self) -> None:
        self._stop.set()

    def on_screen_suspend(self) -> None:
        self._stop.set()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)
        if event.worker.group == "compare" and event.state == WorkerState.ERROR:
            self.streaming = False
            self.query_one("#compare-status", Static).update(f"failed: {event.worker.error}")
