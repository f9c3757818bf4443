"""The Textual TUI: one screen per job — Runs, Run detail, Launch, Data & tokenizer, Models.

    workbench tui                 # or just `workbench` on a terminal
    workbench tui --serve         # the same app in a browser (textual-serve, loopback)

Jobs never run inside the TUI: Launch validates the spec and `ops.runs.start` writes the run
and starts `workbench _exec RUN_ID` detached (setsid), so a job outlives the TUI; on start
the TUI just reads the store.

One refresher, a timer of the app, ingests new events in a worker and posts `StoreChanged`
when the store holds anything new; the current screen then reads what it shows in one store
transaction. Actions (delete, resume, export, …) run an ops function in a worker via
`run_op`; one `on_worker_state_changed` turns every worker failure into a notification and
every finished action into a toast. Only the Runs screen is imported at start; torch and
transformers load inside workers that need them.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.worker import Worker, WorkerState

from workbench.ops import OpError
from workbench.ops.fmt import utc_now
from workbench.ops.stores import open_store
from workbench.tui.messages import StoreChanged
from workbench.tui.screens.runs import RunsScreen

REFRESH_S = 1.0


def _lazy(module: str, name: str) -> Callable[[], Any]:
    """A screen factory that imports the screen's module when the mode is first opened."""

    def make() -> Any:
        import importlib

        return getattr(importlib.import_module(module), name)()

    return make


def _commands_provider():
    from workbench.tui.commands import WorkbenchCommands

    return WorkbenchCommands


def error_text(error: BaseException | None) -> str:
    """A worker's failure as a user reads it: an OpError's message, else type and message."""
    if isinstance(error, OpError):
        return str(error)
    return f"{type(error).__name__}: {error}"


class WorkbenchApp(App[None]):
    CSS_PATH = Path(__file__).parent / "app.tcss"  # absolute, so subclasses elsewhere find it
    TITLE = "GPT Workbench"
    MODES: ClassVar[dict[str, Any]] = {
        "runs": RunsScreen,
        "launch": _lazy("workbench.tui.screens.launch", "LaunchScreen"),
        "data": _lazy("workbench.tui.screens.data", "DataScreen"),
        "models": _lazy("workbench.tui.screens.models", "ModelsScreen"),
        "compare": _lazy("workbench.tui.screens.compare", "CompareScreen"),
        "arena": _lazy("workbench.tui.screens.arena", "ArenaScreen"),
        "experiments": _lazy("workbench.tui.screens.experiments", "ExperimentsScreen"),
        "playground": _lazy("workbench.tui.screens.playground", "PlaygroundScreen"),
    }
    DEFAULT_MODE = "runs"
    COMMANDS = App.COMMANDS | {_commands_provider}
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("1", "switch_mode('runs')", "Runs", show=False),
        Binding("2", "switch_mode('launch')", "Launch", show=False),
        Binding("3", "switch_mode('data')", "Data", show=False),
        Binding("4", "switch_mode('models')", "Models", show=False),
        Binding("5", "switch_mode('compare')", "Compare", show=False),
        Binding("6", "switch_mode('arena')", "Arena", show=False),
        Binding("7", "switch_mode('experiments')", "Experiments", show=False),
        Binding("8", "switch_mode('playground')", "Playground", show=False),
        Binding("question_mark", "help", "Keys"),
        Binding("t", "toggle_theme", "Light/dark theme", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, home: Path | str | None = None, now: dt.datetime | None = None) -> None:
        super().__init__()
        self._home = Path(home).expanduser() if home is not None else None
        self._fixed_now = now  # tests freeze the clock so ages in snapshots stay put
        self.children_pids: set[int] = set()
        self._refreshing = False

    @property
    def home(self) -> Path:
        return self.store().home

    def now(self) -> dt.datetime:
        """Now as naive UTC, the form of every store timestamp."""
        return self._fixed_now or utc_now()

    def store(self) -> Any:
        """The shared Store (duckdb is imported on first use, in a worker)."""
        return open_store(self._home)

    def on_mount(self) -> None:
        self.set_interval(REFRESH_S, self.refresh_store)
        self.set_interval(2.0, self.reap_children)
        self.call_after_refresh(self.refresh_store)  # paint first: the refresh imports duckdb

    # the one refresher

    def refresh_store(self) -> None:
        if not self._refreshing:
            self._refreshing = True
            self._refresh_worker()

    @work(thread=True, group="refresh", exit_on_error=False)
    def _refresh_worker(self) -> None:
        from workbench.ops.stores import refresh

        try:
            if refresh(self.store()):
                self.post_message(StoreChanged())
        finally:
            self._refreshing = False

    def on_store_changed(self, message: StoreChanged) -> None:
        self.screen.post_message(StoreChanged())

    # actions in workers

    def run_op(
        self, title: str, op: Callable[..., str], *args: Any, node: Any = None, **kwargs: Any
    ) -> Worker:
        """Run an ops function in a thread worker of `node` (default: the app); its returned
        text becomes a toast, a failure an error notification (on_worker_state_changed)."""
        return (node or self).run_worker(
            partial(op, *args, **kwargs),
            name=title,
            group="ops",
            thread=True,
            exit_on_error=False,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place worker outcomes reach the user (screens forward theirs here)."""
        worker = event.worker
        # plain text, never markup: a model label such as `sft [int8]` shows as it is
        if event.state == WorkerState.ERROR:
            self.notify(error_text(worker.error), title=worker.name, severity="error", timeout=6,
                        markup=False)  # fmt: skip
        elif event.state == WorkerState.SUCCESS and worker.group == "ops":
            if isinstance(worker.result, str):
                self.notify(worker.result, title=worker.name, markup=False)
            self.post_message(StoreChanged())

    def start_job(self, spec: Any, node: Any = None) -> Worker:
        """Start a validated spec detached, in a worker of `node` (it hears the outcome)."""
        from workbench.ops import runs

        def start() -> str:
            run_id, pid = runs.start(self.store(), spec, detach=True)
            self.children_pids.add(pid)
            return f"started {run_id} (pid {pid})"

        return self.run_op("launch", start, node=node)

    def resume_run(self, run_id: str) -> Worker:
        from workbench.ops import runs

        return self.run_op("resume", runs.resume, self.store(), run_id)

    def reap_children(self) -> None:
        """Collect jobs this TUI started that have exited (they are our children)."""
        for pid in list(self.children_pids):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.children_pids.discard(pid)

    async def open_launch(self, spec: dict | None = None, source: str | None = None) -> None:
        """Switch to Launch; with a spec, fill the form from it (re-launch with edits)."""
        await self.switch_mode("launch")
        if spec is not None:
            await self.screen.prefill(spec, source)

    # keys everywhere

    def action_help(self) -> None:
        from workbench.tui.commands import binding_entries
        from workbench.tui.screens.dialogs import HelpScreen

        screen = self.screen
        here = [(key, desc) for key, desc, _, node in binding_entries(screen) if node is screen]
        everywhere = [(k, d) for k, d, _, node in binding_entries(screen) if node is self]
        title = type(screen).__name__.removesuffix("Screen") or "Screen"
        self.push_screen(HelpScreen([(title, here), ("Everywhere", everywhere)]))

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The app's bare-letter keys (`q`, `1`–`4`, `t`, `?`) never act inside a text box."""
        from workbench.tui.screens.base import letter_actions, typing

        return not (typing(self) and action in letter_actions(self))

    def quit_reason(self) -> str | None:
        """What quitting now would leave behind or lose, or None when nothing would."""
        self.reap_children()
        reasons = []
        if self.children_pids:
            n = len(self.children_pids)
            reasons.append(
                f"{n} job{'s' if n > 1 else ''} started here still running (it carries on)"
            )
        if unsaved := getattr(self.screen, "unsaved", lambda: None)():
            reasons.append(unsaved)
        return "; ".join(reasons) or None

    async def action_quit(self) -> None:
        """Quit, asking first while a job started here runs or text typed would be lost."""
        from workbench.tui.screens.dialogs import ConfirmScreen

        reason = self.quit_reason()
        if reason is None:
            self.exit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(ConfirmScreen(f"Quit? {reason}.", yes="Quit"), answered)


def main() -> None:
    WorkbenchApp().run()


if __name__ == "__main__":
    main()
