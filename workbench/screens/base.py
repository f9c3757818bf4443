"""What every workbench screen shares: reading the store on a timer in a thread worker.

A `StoreScreen` subclass implements `read(store)` (runs in a worker thread: open, query,
close — the Store does one transaction per call) and `show(data)` (runs on the UI thread
when the worker's `Loaded` message arrives). Workers never touch widgets.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from workbench.tables import fmt
from workbench.tables import human_age as age

__all__ = ["Notice", "StoreScreen", "age", "fmt", "open_store"]

_stores: dict[Path, Any] = {}
_stores_lock = threading.Lock()

MODES = (("runs", "Runs"), ("launch", "Launch"), ("data", "Data"), ("models", "Models"))


def open_store(home: Path):
    """The Store for `home` (imported lazily: duckdb stays out of the TUI's startup)."""
    from store import Store

    with _stores_lock:
        if home not in _stores:
            _stores[home] = Store(home)
        return _stores[home]


def short_path(path: str | Path | None, home: Path) -> str:
    """A path shown relative to the workbench home when it lies inside it."""
    if not path:
        return "-"
    p = Path(path)
    try:
        return str(p.relative_to(home))
    except ValueError:
        return str(p)


class Notice(Message):
    """Something a worker did that the user should hear about (a toast, then a re-read)."""

    def __init__(self, text: str, severity: str = "information") -> None:
        super().__init__()
        self.text, self.severity = text, severity


class ModeBar(Static):
    """One line naming the screens, the current one highlighted; click or press 1–4."""

    def __init__(self, current: str) -> None:
        parts = []
        for i, (mode, title) in enumerate(MODES, 1):
            label = f" {i} {title} "
            style = "b reverse" if mode == current else "$text-muted"
            parts.append(f"[@click=app.switch_mode('{mode}')][{style}]{label}[/][/]")
        super().__init__(" GPT Workbench │" + "│".join(parts), id="modebar", markup=True)


class StoreScreen(Screen):
    """A screen that re-reads the store every POLL_S seconds while it is showing."""

    POLL_S = 1.0
    MODE = ""

    class Loaded(Message):
        """The worker finished a read; `data` is what `read` returned."""

        def __init__(self, data: Any) -> None:
            super().__init__()
            self.data = data

    class ReadFailed(Message):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._reading = False
        self.loaded = False  # a first read has been shown (tests and snapshots wait on it)

    def compose_modebar(self) -> ComposeResult:
        yield ModeBar(self.MODE)

    @property
    def home(self) -> Path:
        return self.app.home

    def on_mount(self) -> None:
        self.set_interval(self.POLL_S, self.poll)
        self.call_after_refresh(self.poll)  # paint first: the read imports duckdb

    def on_screen_resume(self) -> None:
        self.poll()

    def poll(self) -> None:
        if self._reading or not self.is_current:
            return
        self._reading = True
        self._read_worker()

    @work(thread=True, group="read", exit_on_error=False)
    def _read_worker(self) -> None:
        try:
            with self.app.store_guard:
                data = self.read(open_store(self.home))
        except Exception as e:  # noqa: BLE001 - shown to the user; the next poll retries
            self.post_message(self.ReadFailed(f"{type(e).__name__}: {e}"))
            return
        self.post_message(self.Loaded(data))

    def on_store_screen_loaded(self, message: Loaded) -> None:
        self._reading = False
        self.show(message.data)
        self.loaded = True

    def on_store_screen_read_failed(self, message: ReadFailed) -> None:
        self._reading = False
        self.notify(message.error, title="store", severity="error", timeout=4)

    def on_notice(self, message: Notice) -> None:
        message.stop()
        self.notify(message.text, severity=message.severity)
        self.poll()

    def read(self, store) -> Any:
        """Runs in a worker thread: query the store, return plain data."""
        return None

    def show(self, data: Any) -> None:
        """Runs on the UI thread with what `read` returned."""
