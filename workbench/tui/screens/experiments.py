"""Experiments: every prompt experiment (strategy × model × task set) with accuracy, tokens
and latency per question, newest first; the highlighted one's transcripts below.

The TUI face of `workbench eval compare`: the rows are `workbench.ops.compare.experiments_view`
(one store transaction); Enter moves into the transcripts, Escape back to the table.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static

from workbench.ops.compare import EXPERIMENT_COLUMNS, experiments_view, transcript_lines
from workbench.ops.fmt import fmt_num
from workbench.tui.screens.base import StoreScreen
from workbench.tui.widgets.table import fill


def experiment_cells(e: dict[str, Any]) -> tuple[str, ...]:
    def num(v: Any) -> str:
        return "-" if v is None else fmt_num(float(v))

    when = e["when"].strftime("%m-%d %H:%M") if e.get("when") else "-"
    return (e["task"][:24], e["strategy"], e["model"], str(e["n"]), num(e["accuracy"]),
            num(e["tokens/q"]), num(e["s/q"]), when)  # fmt: skip


class ExperimentsScreen(StoreScreen):
    MODE = "experiments"
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("enter", "transcripts", "Transcripts"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.experiments: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield from self.compose_modebar()
        table = DataTable(id="experiments-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*EXPERIMENT_COLUMNS)
        yield table
        with VerticalScroll(id="experiment-transcripts"):
            yield Static("", id="experiment-text", markup=False)
        yield Footer(compact=True)

    def read(self, store: Any) -> list[dict[str, Any]]:
        return experiments_view(store)

    def show(self, experiments: list[dict[str, Any]]) -> None:
        self.experiments = experiments
        table = self.query_one("#experiments-table", DataTable)
        at = table.cursor_row
        fill(table, [(e["id"], experiment_cells(e)) for e in experiments])
        table.move_cursor(row=min(at, max(0, len(experiments) - 1)), animate=False)
        self.show_transcripts()

    def selected(self) -> dict[str, Any] | None:
        table = self.query_one("#experiments-table", DataTable)
        if not self.experiments:
            return None
        return self.experiments[min(table.cursor_row, len(self.experiments) - 1)]

    def show_transcripts(self) -> None:
        e = self.selected()
        text = "no prompt experiments yet: `workbench eval MODEL --strategy cot --tasks …`"
        if e is not None:
            text = "\n".join(transcript_lines(e))
        self.query_one("#experiment-text", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_transcripts()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_transcripts()

    def action_transcripts(self) -> None:
        self.set_focus(self.query_one("#experiment-transcripts"))

    def focus_home(self) -> None:
        self.set_focus(self.query_one("#experiments-table"))

    def on_mount(self) -> None:
        self.focus_home()
