"""The Textual TUI: one screen per job — Runs, Run detail, Launch, Data & tokenizer, Models.

    workbench tui                 # or just `workbench` on a terminal
    workbench tui --serve         # the same app in a browser (textual-serve, loopback)

Jobs never run inside the TUI: Launch validates the spec with the pipeline's pydantic model,
writes the run (`prepare_run`) and starts `workbench _exec RUN_ID` detached (setsid), so a
job outlives the TUI; on start the TUI just reads the store. Screens read the store on a
timer in thread workers; workers post messages and never touch widgets. Only the Runs
screen is imported at start; torch and transformers load inside workers that need them.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding

from workbench.screens.base import Notice, open_store
from workbench.screens.runs import RunsScreen


def _launch_screen():
    from workbench.screens.launch import LaunchScreen

    return LaunchScreen()


def _data_screen():
    from workbench.screens.data import DataScreen

    return DataScreen()


def _models_screen():
    from workbench.screens.models import ModelsScreen

    return ModelsScreen()


def _commands_provider():
    from workbench.commands import WorkbenchCommands

    return WorkbenchCommands


def default_home() -> Path:
    """$WORKBENCH_HOME, else ~/.workbench (as store.default_home, without importing duckdb)."""
    return Path(os.environ.get("WORKBENCH_HOME") or Path.home() / ".workbench").expanduser()


class WorkbenchApp(App[None]):
    CSS_PATH = Path(__file__).parent / "app.tcss"  # absolute, so subclasses elsewhere find it
    TITLE = "GPT Workbench"
    MODES: ClassVar[dict[str, Any]] = {
        "runs": RunsScreen,
        "launch": _launch_screen,
        "data": _data_screen,
        "models": _models_screen,
    }
    DEFAULT_MODE = "runs"
    COMMANDS = App.COMMANDS | {_commands_provider}
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("1", "switch_mode('runs')", "Runs", show=False),
        Binding("2", "switch_mode('launch')", "Launch", show=False),
        Binding("3", "switch_mode('data')", "Data", show=False),
        Binding("4", "switch_mode('models')", "Models", show=False),
        Binding("question_mark", "help", "Keys"),
        Binding("t", "toggle_theme", "Light/dark theme", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, home: Path | str | None = None, now: dt.datetime | None = None) -> None:
        super().__init__()
        self.home = Path(home).expanduser() if home is not None else default_home()
        self._fixed_now = now  # tests freeze the clock so ages in snapshots stay put
        self.children_pids: set[int] = set()
        # Held while a run is being created, and by every store read of a screen: a refresh
        # between prepare_run's run.json and its store row would "discover" the half-made run.
        self.store_guard = threading.Lock()

    def now(self) -> dt.datetime:
        """Now as naive UTC, the form of every store timestamp."""
        return self._fixed_now or dt.datetime.now(dt.UTC).replace(tzinfo=None)

    def store(self):
        return open_store(self.home)

    def on_mount(self) -> None:
        self.set_interval(2.0, self.reap_children)

    def reap_children(self) -> None:
        """Collect jobs this TUI started that have exited (they are our children)."""
        for pid in list(self.children_pids):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.children_pids.discard(pid)

    # jobs

    @work(thread=True, group="jobs", exit_on_error=False)
    def start_job(self, spec: Any) -> None:
        """Create the run for a validated spec and start it detached; post a Notice."""
        from pipelines.runner import prepare_run
        from workbench.common import spawn_detached

        store = self.store()
        os.environ["WORKBENCH_HOME"] = str(self.home)  # the job opens the same store
        try:
            with self.store_guard:
                run_id = prepare_run(store, spec)
            pid = spawn_detached(store, run_id)
        except Exception as e:  # noqa: BLE001 - a full disk, a store held elsewhere: say so
            self.post_message(Notice(f"could not start the job: {e}", "error"))
            return
        self.children_pids.add(pid)
        self.post_message(Notice(f"started {run_id} (pid {pid})"))

    @work(thread=True, group="jobs", exit_on_error=False)
    def resume_run(self, run: dict) -> None:
        from workbench.common import spawn_detached

        if run["status"] in ("running", "queued", "done"):
            self.post_message(Notice(f"{run['run_id']} is {run['status']}", "warning"))
            return
        os.environ["WORKBENCH_HOME"] = str(self.home)
        pid = spawn_detached(self.store(), run["run_id"], resume=True)
        self.children_pids.add(pid)
        self.post_message(Notice(f"resumed {run['run_id']} (pid {pid})"))

    def on_notice(self, message: Notice) -> None:
        self.notify(message.text, severity=message.severity)
        poll = getattr(self.screen, "poll", None)
        if poll is not None:
            poll()

    async def open_launch(self, spec: dict | None = None, source: str | None = None) -> None:
        """Switch to Launch; with a spec, fill the form from it (re-launch with edits)."""
        await self.switch_mode("launch")
        if spec is not None:
            await self.screen.prefill(spec, source)

    # actions

    def action_help(self) -> None:
        from workbench.commands import binding_entries
        from workbench.screens.dialogs import HelpScreen

        screen = self.screen
        here = [(key, desc) for key, desc, _, node in binding_entries(screen) if node is screen]
        everywhere = [(k, d) for k, d, _, node in binding_entries(screen) if node is self]
        title = type(screen).__name__.removesuffix("Screen") or "Screen"
        self.push_screen(HelpScreen([(title, here), ("Everywhere", everywhere)]))

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"


def main() -> None:
    WorkbenchApp().run()


if __name__ == "__main__":
    main()
