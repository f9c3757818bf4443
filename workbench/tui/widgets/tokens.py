"""Text shown token by token: alternating backgrounds, end-of-text markers, optional ids.

    view.set_rows([("row 0 · stdlib", [(17, "def"), (5, " f"), (0, "<|endoftext|>")])],
                  special_ids={0})

Colours come from component classes (theme variables), so both themes stay readable.
"""

from __future__ import annotations

from typing import ClassVar

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

Piece = tuple[int, str]
VISIBLE = str.maketrans({"\n": "↵", "\t": "→", "\r": "␍"})


class TokenView(Widget):
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "tokens--a",
        "tokens--b",
        "tokens--special",
        "tokens--label",
        "tokens--id",
    }
    DEFAULT_CSS = """
    TokenView { height: auto; padding: 0 1; }
    TokenView > .tokens--a { background: $primary 40%; color: $text; }
    TokenView > .tokens--b { background: $warning 40%; color: $text; }
    TokenView > .tokens--special { background: $error 60%; color: $text; text-style: bold; }
    TokenView > .tokens--label { color: $accent; text-style: bold; }
    TokenView > .tokens--id { color: $text-muted; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rows: list[tuple[str, list[Piece]]] = []
        self.special_ids: set[int] = set()
        self.show_ids = False

    def set_rows(
        self, rows: list[tuple[str, list[Piece]]], special_ids: set[int], show_ids: bool = False
    ) -> None:
        self.rows, self.special_ids, self.show_ids = rows, set(special_ids), show_ids
        self.refresh(layout=True)

    def _style(self, name: str):
        return self.get_component_rich_style(f"tokens--{name}")

    def render_row(self, label: str, pieces: list[Piece]) -> Text:
        text = Text()
        if label:
            text.append(label + "\n", style=self._style("label"))
        styles = (self._style("a"), self._style("b"))
        special = self._style("special")
        for i, (token_id, piece) in enumerate(pieces):
            if token_id in self.special_ids:
                text.append(piece if len(piece) <= 15 else "␃", style=special)
                text.append("\n" if piece.endswith("endoftext|>") else "")
            else:
                text.append(piece.translate(VISIBLE) or "∅", style=styles[i % 2])
        if self.show_ids:  # ids in the same alternating colours, so each matches its token
            text.append("\n")
            for i, (token_id, _) in enumerate(pieces):
                text.append(str(token_id), style=styles[i % 2])
                text.append(" ")
        return text

    def render(self) -> RenderableType:
        out = Text()
        for i, (label, pieces) in enumerate(self.rows):
            out.append_text(self.render_row(label, pieces))
            if i < len(self.rows) - 1:
                out.append("\n\n")
        return out
