"""Runs: every run in the store, refreshed each second; open, stop, resume, edit, delete.

Stopping sends SIGTERM to the job (it checkpoints and ends cancelled), like
`workbench runs stop`; resuming starts `workbench _exec RUN_ID --resume` detached.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Input, Static

from workbench.screens.base import Notice, StoreScreen, age, fmt

COLUMNS = (
    ("run", "run_id"),
    ("pipeline", "pipeline"),
    ("status", "status"),
    ("step", "progress_step"),
    ("loss", "loss"),
    ("val", "val_loss"),
    ("age", "created_at"),
)
LIVE = ("running", "queued")


def short_id(run: dict[str, Any]) -> str:
    """The run id without its pipeline prefix (the pipeline has its own column)."""
    prefix = f"{run['pipeline']}-"
    rid = run["run_id"]
    return rid.removeprefix(prefix)


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
        yield Input(placeholder="/ filter: words in id, pipeline, status", id="filter")
        table = DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        for label, key in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("", id="runs-status", classes="status-line")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(DataTable).focus()
        self.app.theme_changed_signal.subscribe(self, self._recolour)

    def _recolour(self, _theme) -> None:
        self._shown = []  # status colours come from the theme: rebuild the rows
        self.render_table()

    def read(self, store) -> list[dict]:
        store.refresh()
        return store.list_runs()

    def show(self, runs: list[dict]) -> None:
        self.runs = runs
        self.render_table()

    # the table

    def visible_runs(self) -> list[dict]:
        query = self.query_one("#filter", Input).value
        shown = [r for r in self.runs if matches(r, query)]
        return sort_runs(shown, self.sort_column, self.sort_reverse)

    def _cells(self, run: dict) -> tuple:
        total = run.get("progress_total")
        step = f"{run.get('progress_step') or 0}/{total}" if total else "-"
        return (
            short_id(run),
            run["pipeline"],
            run["status"],
            step,
            fmt(run.get("loss")),
            fmt(run.get("val_loss")),
            age(run.get("created_at"), self.app.now()),
        )

    def render_table(self) -> None:
        runs = self.visible_runs()
        rows = [(r["run_id"], self._cells(r)) for r in runs]
        if rows != self._shown:
            self._shown = rows
            table = self.query_one(DataTable)
            selected = self.selected_id()
            table.clear()
            for run_id, cells in rows:
                table.add_row(*cells[:2], self._status(cells[2]), *cells[3:], key=run_id)
            if selected in {r for r, _ in rows}:
                table.move_cursor(row=table.get_row_index(selected), animate=False)
        live = sum(r["status"] in LIVE for r in self.runs)
        order = f" · sorted by {self.sort_column}" if self.sort_column else ""
        self.query_one("#runs-status", Static).update(
            f"{len(runs)} of {len(self.runs)} runs · {live} live{order}"
        )

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
        from workbench.screens.detail import RunDetailScreen

        if rid := self.selected_id():
            self.app.push_screen(RunDetailScreen(rid))

    async def action_new(self) -> None:
        await self.app.open_launch()

    async def action_edit(self) -> None:
        run = self.selected()
        if run is not None:
            await self.app.open_launch(run.get("spec") or {}, source=run["run_id"])

    def action_stop(self) -> None:
        if run := self.selected():
            self.notify(stop_run(run))
            self.poll()

    def action_resume(self) -> None:
        if run := self.selected():
            self.app.resume_run(run)

    def action_delete(self) -> None:
        from workbench.screens.dialogs import ConfirmScreen

        run = self.selected()
        if run is None:
            return
        if run["status"] in LIVE:
            self.notify(f"{run['run_id']} is {run['status']}: stop it first", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(run["run_id"], run.get("run_dir"))

        question = f"Delete run {run['run_id']}?\nIts rows and its folder (checkpoints, model) go."
        self.app.push_screen(ConfirmScreen(question), answered)

    @work(thread=True, group="delete")
    def _delete(self, run_id: str, run_dir: str | None) -> None:
        store = self.app.store()
        if run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)  # first, so a refresh cannot re-find it
        store.delete_run(run_id)
        self.post_message(Notice(f"deleted {run_id}"))


def stop_run(run: dict) -> str:
    """SIGTERM the run's process (it checkpoints and ends cancelled); say what happened."""
    if run["status"] not in LIVE or not run.get("pid"):
        return f"{run['run_id']} is {run['status']}, not running"
    if run.get("host") and run["host"] != socket.gethostname():
        return f"{run['run_id']} runs on {run['host']}; stop it there"
    try:
        os.kill(run["pid"], signal.SIGTERM)
    except ProcessLookupError:
        return f"process {run['pid']} is gone (the run will show as crashed)"
    return f"asked {run['run_id']} to stop (pid {run['pid']})"
