"""What the store-backed screens share: re-read on `StoreChanged`, in one worker at a time.

A `StoreScreen` subclass implements `read(store)` (runs in a worker thread and calls ONE
`workbench.ops.views` function: one store transaction) and `show(data)` (runs on the UI
thread when the worker's `Loaded` message arrives). Workers never touch widgets; a failing
read becomes a notification through the app's `on_worker_state_changed`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static, TextArea
from textual.worker import Worker

from workbench.tui.messages import Loaded, StoreChanged

# (mode, title, short title): the short titles keep all eight on one line at 80 columns
MODES = (
    ("runs", "Runs", "Runs"),
    ("launch", "Launch", "Launch"),
    ("data", "Data", "Data"),
    ("models", "Models", "Models"),
    ("compare", "Compare", "Compare"),
    ("arena", "Arena", "Arena"),
    ("experiments", "Experiments", "Exps"),
    ("playground", "Playground", "Play"),
)
WIDE = 110  # columns from which the bar has its title and the full screen names


def mode_bar_markup(current: str, wide: bool) -> str:
    """The bar's markup: each screen clickable, the current one highlighted."""
    parts = []
    for i, (mode, title, short) in enumerate(MODES, 1):
        label = f" {i} {title if wide else short} "
        style = "b reverse" if mode == current else "$text-muted"
        parts.append(f"[@click=app.switch_mode('{mode}')][{style}]{label}[/][/]")
    return (" GPT Workbench │" if wide else "") + "│".join(parts)


class ModeBar(Static):
    """One line naming the screens, the current one highlighted; click or press 1–8."""

    def __init__(self, current: str) -> None:
        self.current = current
        super().__init__(mode_bar_markup(current, wide=False), id="modebar", markup=True)

    def on_resize(self, event: events.Resize) -> None:
        self.update(mode_bar_markup(self.current, wide=event.size.width >= WIDE))


NAMED_PRINTABLE = {"question_mark", "slash", "space", "full_stop", "comma", "minus", "plus"}


def typing(node: DOMNode) -> bool:
    """A text box (Input, TextArea) has the focus: printable keys belong to it."""
    return isinstance(node.app.focused, (Input, TextArea))


def letter_actions(node: DOMNode) -> set[str]:
    """Actions `node` binds to a bare printable key (`q`, `1`, `?`): never run while typing."""
    out = set()
    for cls in type(node).__mro__:
        for b in vars(cls).get("BINDINGS", []):
            key, action = (b.key, b.action) if isinstance(b, Binding) else (b[0], b[1])
            if any(len(k) == 1 or k in NAMED_PRINTABLE for k in key.split(",")):
                out.add(action.split("(", 1)[0])
    return out


class WorkbenchScreen(Screen):
    """A screen with the mode bar on top. Keys typed into a text box stay there: bare-letter
    bindings are disabled while one has the focus, and Escape leaves it (`focus_home`)."""

    MODE = ""
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape", "leave_input", "Leave text box", priority=True),
    ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_input":
            return typing(self)
        return not (typing(self) and action in letter_actions(self))

    def action_leave_input(self) -> None:
        self.focus_home()

    def focus_home(self) -> None:
        """Focus what the keys of the visible pane act on: its table, else nothing."""
        tables = [t for t in self.query(DataTable) if t.region]
        self.set_focus(tables[0] if tables else None)

    def unsaved(self) -> str | None:
        """What quitting now would lose (text typed), or None."""
        return None

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
