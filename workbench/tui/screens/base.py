"""What the store-backed screens share: re-read on `StoreChanged`, in one worker at a time.

A `StoreScreen` subclass implements `read(store)` (runs in a worker thread and calls ONE
`workbench.ops.views` function: one store transaction) and `show(data)` (runs on the UI
thread when the worker's `Loaded` message arrives). Workers never touch widgets; a failing
read becomes a notification through the app's `on_worker_state_changed`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker

from workbench.tui.messages import Loaded, StoreChanged

MODES = (("runs", "Runs"), ("launch", "Launch"), ("data", "Data"), ("models", "Models"))


class ModeBar(Static):
    """One line naming the screens, the current one highlighted; click or press 1–4."""

    def __init__(self, current: str) -> None:
        parts = []
        for i, (mode, title) in enumerate(MODES, 1):
            label = f" {i} {title} "
            style = "b reverse" if mode == current else "$text-muted"
            parts.append(f"[@click=app.switch_mode('{mode}')][{style}]{label}[/][/]")
        super().__init__(" GPT Workbench │" + "│".join(parts), id="modebar", markup=True)


class WorkbenchScreen(Screen):
    """A screen with the mode bar on top."""

    MODE = ""

    def compose_modebar(self) -> ComposeResult:
        yield ModeBar(self.MODE)

    @property
    def home(self) -> Path:
        return self.app.home

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        forward_worker_state(self, event)


def forward_worker_state(node: Any, event: Worker.StateChanged) -> None:
    """Hand a worker's state change to the app's one handler (these messages do not bubble)."""
    node.app.post_message(Worker.StateChanged(event.worker, event.state))


class StoreScreen(WorkbenchScreen):
    """A screen that shows what it reads from the store, re-read when the store changed."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._reading = False
        self._stale = False
        self.loaded = False  # a first read has been shown (tests and snapshots wait on it)

    def on_screen_resume(self) -> None:
        self.call_after_refresh(self.reload)  # paint first: the first read imports duckdb

    def on_store_changed(self, message: StoreChanged) -> None:
        self.reload()

    def reload(self) -> None:
        """Read the store again (once the read in flight, if any, has been shown)."""
        if self._reading:
            self._stale = True
            return
        self._reading, self._stale = True, False
        self._read_worker()

    @work(thread=True, group="read", exit_on_error=False)
    def _read_worker(self) -> None:
        try:
            self.post_message(Loaded(self.read(self.app.store())))
        except BaseException:
            self._reading = False
            raise

    def on_loaded(self, message: Loaded) -> None:
        self._reading = False
        self.show(message.data)
        self.loaded = True
        if self._stale:
            self.reload()

    def read(self, store: Any) -> Any:
        """Runs in a worker thread: one ops.views call; returns plain data."""
        return None

    def show(self, data: Any) -> None:
        """Runs on the UI thread with what `read` returned."""
