"""Runs: every run in the store, re-read when it changes; open, stop, resume, edit, delete.

Stop, resume and delete are `workbench.ops.runs` functions, the same ones `workbench runs
stop|resume|rm` call; they run in workers and report back as notifications.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Input, Static

from workbench.ops import OpError
from workbench.ops import runs as run_ops
from workbench.ops.fmt import fmt, human_age, human_seconds, step_text
from workbench.ops.runlist import finished_since, run_rows
from workbench.tui.screens.base import StoreScreen
from workbench.tui.widgets.table import fill

AGES_EVERY_S = 10.0  # re-render (no store read) so "2m" becomes "3m" with nothing new

# What fits 80 columns first (the full id, which every CLI verb accepts), the rest after it
# (the table scrolls sideways; the line under it repeats them for the selected run).
COLUMNS = (
    ("run", "run_id"),
    ("status", "status"),
    ("step", "progress_step"),
    ("loss", "loss"),
    ("val", "val_loss"),
    ("age", "created_at"),
    ("name", "name"),
    ("phase", "phase"),
    ("eta", "eta_s"),
    ("best val", "best_val_loss"),
    ("pipeline", "pipeline"),
)


def matches(run: dict[str, Any], query: str) -> bool:
    """Every word of the filter appears in the run's id, pipeline, status or name."""
    hay = " ".join(str(run.get(k) or "") for k in ("run_id", "pipeline", "status", "name")).lower()
    return all(word in hay for word in query.lower().split())


def sort_runs(runs: list[dict], column: str | None, reverse: bool) -> list[dict]:
    if column is None:
        return runs
    present = [r for r in runs if r.get(column) is not None]
    missing = [r for r in runs if r.get(column) is None]
    return sorted(present, key=lambda r: r[column], reverse=reverse) + missing


class RunsScreen(StoreScreen):
    MODE = "runs"
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("enter", "open", "Open", show=False),
        Binding("n", "new", "New"),
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("e", "edit", "Edit+run"),
        Binding("d", "delete", "Delete"),
        Binding("o", "sort", "Sort"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[dict] = []
        self.sort_column: str | None = None
        self.sort_reverse = False
        self._shown: list[tuple] = []

    def compose(self) -> ComposeResult:
        yield from self.compose_modebar()
        yield Input(placeholder="/ filter: words in id, name, pipeline, status", id="filter")
        table = DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        for label, key in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("", id="runs-status", classes="status-line")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.set_interval(AGES_EVERY_S, self.render_table)  # ages move on an idle screen too
        self.app.theme_changed_signal.subscribe(self, self._recolour)

    def _recolour(self, _theme) -> None:
        self._shown = []  # status colours come from the theme: rebuild the rows
        self.render_table()

    def read(self, store) -> list[dict]:
        return run_rows(store)

    def show(self, runs: list[dict]) -> None:
        if self.loaded:
            self.announce_finished(runs)
        self.runs = runs
        self.render_table()

    def announce_finished(self, runs: list[dict]) -> None:
        """A notification and the terminal bell when a run that was live has ended."""
        before = {r["run_id"]: r["status"] for r in self.runs}
        for run in finished_since(before, runs):
            severity = "information" if run["status"] == "done" else "warning"
            self.app.notify(f"{run['run_id']} ended {run['status']}", severity=severity)
            self.app.bell()

    # the table

    def visible_runs(self) -> list[dict]:
        query = self.query_one("#filter", Input).value
        shown = [r for r in self.runs if matches(r, query)]
        return sort_runs(shown, self.sort_column, self.sort_reverse)

    def _cells(self, run: dict) -> tuple:
        return (
            run["run_id"],
            run["status"],
            step_text(run),
            fmt(run.get("loss")),
            fmt(run.get("val_loss")),
            human_age(run.get("created_at"), self.app.now()),
            run.get("name") or "-",
            run.get("phase") or "-",
            human_seconds(run.get("eta_s")),
            fmt(run.get("best_val_loss")),
            run["pipeline"],
        )

    def render_table(self) -> None:
        runs = self.visible_runs()
        rows = [(r["run_id"], self._cells(r)) for r in runs]
        if rows != self._shown:
            self._shown = rows
            table = self.query_one(DataTable)
            selected = self.selected_id()
            fill(table, [(k, (c[0], self._status(c[1]), *c[2:])) for k, c in rows])
            if selected in {r for r, _ in rows}:
                table.move_cursor(row=table.get_row_index(selected), animate=False)
        self.show_status()

    def show_status(self) -> None:
        """The counts, and the selected run's name, phase and ETA (off-screen at 80 columns)."""
        live = sum(r["status"] in run_ops.LIVE for r in self.runs)
        order = f" · sorted by {self.sort_column}" if self.sort_column else ""
        line = f"{len(self.visible_runs())} of {len(self.runs)} runs · {live} live{order}"
        if run := self.selected():
            line += f" │ {run.get('name') or run['pipeline']} · {run.get('phase') or '-'}"
            line += f" · eta {human_seconds(run['eta_s'])}" if run.get("eta_s") else ""
        self.query_one("#runs-status", Static).update(line)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_status()

    def _status(self, status: str) -> Text:
        theme = self.app.current_theme
        colour = {
            "running": theme.success,
            "queued": theme.accent,
            "done": theme.primary,
            "cancelled": theme.warning,
        }.get(status, theme.error)
        return Text(status, style=colour or "")

    def selected_id(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def selected(self) -> dict | None:
        rid = self.selected_id()
        return next((r for r in self.runs if r["run_id"] == rid), None)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.render_table()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(DataTable).focus()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        self.sort_reverse = not self.sort_reverse if key == self.sort_column else False
        self.sort_column = key
        self.render_table()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    # actions

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_leave_input(self) -> None:
        self.action_clear_filter()  # Escape in the filter box clears it (Enter keeps it)

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.query_one(DataTable).focus()

    def action_sort(self) -> None:
        """Sort by the next column; after the last one, back to newest first."""
        keys = [key for _, key in COLUMNS]
        at = keys.index(self.sort_column) + 1 if self.sort_column else 0
        self.sort_column = keys[at] if at < len(keys) else None
        self.sort_reverse = self.sort_column in ("created_at",)
        self.render_table()

    def action_open(self) -> None:
        from workbench.tui.screens.detail import RunDetailScreen

        if rid := self.selected_id():
            self.app.push_screen(RunDetailScreen(rid))

    async def action_new(self) -> None:
        await self.app.open_launch()

    async def action_edit(self) -> None:
        run = self.selected()
        if run is not None:
            await self.app.open_launch(run.get("spec") or {}, source=run["run_id"])

    def action_stop(self) -> None:
        if rid := self.selected_id():
            self.app.run_op("stop", run_ops.stop, self.app.store(), rid)

    def action_resume(self) -> None:
        if rid := self.selected_id():
            self.app.resume_run(rid)

    def action_delete(self) -> None:
        from workbench.tui.screens.dialogs import ConfirmScreen

        run = self.selected()
        if run is None:
            return
        try:
            run_ops.check_deletable(run)
        except OpError as e:
            self.notify(str(e), severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.run_op("delete", run_ops.delete, self.app.store(), run["run_id"])

        question = f"Delete run {run['run_id']}?\nIts rows and its folder (checkpoints, model) go."
        self.app.push_screen(ConfirmScreen(question), answered)
