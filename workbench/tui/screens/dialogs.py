"""Modal dialogs: a yes/no confirmation and the key help."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """Ask a question; dismiss with True (y / the danger button) or False (n / escape)."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, yes: str = "Delete") -> None:
        super().__init__()
        self.question, self.yes = question, yes

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question")
            with Horizontal(id="buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class HelpScreen(ModalScreen[None]):
    """Every key of the app and of the screen it was opened from, with what it does."""

    BINDINGS: ClassVar[list[Binding]] = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        lines = []
        for title, keys in self.sections:
            lines.append(f"[b]{title}[/b]")
            lines += [f"  [b $accent]{escape(key):<12}[/] {escape(desc)}" for key, desc in keys]
            lines.append("")
        lines.append("[$text-muted]Ctrl+P opens the command palette: every action is there.[/]")
        self.text = "\n".join(lines)
        with Vertical(id="dialog", classes="help"):
            yield Label("[b]Keys[/b]  (escape closes)")
            with VerticalScroll():
                yield Static(self.text, markup=True)

    def action_close(self) -> None:
        self.dismiss(None)
