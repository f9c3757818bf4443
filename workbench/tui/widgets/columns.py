"""Side-by-side answers: one column per model, its streamed text and its figures.

The Compare and Arena screens run `workbench.ops.compare.side_by_side` in a thread worker;
the worker posts `ColumnsUpdated` with every column's whole state so far (they coalesce),
and the screen hands the columns to `AnswerColumns.update_columns` on the UI thread. The
Arena hides the models' names (`blind`) until the vote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Static


@dataclass
class ColumnsUpdated(Message):
    """Every column's answer so far (`workbench.ops.compare.Column`); `done` on the last."""

    columns: list[Any]
    done: bool = False

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ColumnsUpdated) and not message.done


def figures(column: Any) -> str:
    """ "12 tok · 24.1 tok/s · logp −1.23" (what is known so far)."""
    parts = [f"{column.tokens} tok"]
    if column.tokens_per_s is not None:
        parts.append(f"{column.tokens_per_s:.1f} tok/s")
    if column.mean_logprob is not None:
        parts.append(f"logp {column.mean_logprob:.2f}")
    if column.error:
        parts.append(f"failed: {column.error}")
    elif not column.done:
        parts.append("…")
    return " · ".join(parts)


class AnswerColumn(Vertical):
    """A title (the model, or "Model A"), the figures line and the text, scrolling."""

    def __init__(self, title: str, **kwargs: Any) -> None:
        super().__init__(classes="answer-column", **kwargs)
        self._title = title

    def compose(self) -> ComposeResult:
        yield Static(self._title, classes="answer-title", markup=False)
        yield Static("", classes="answer-figures", markup=False)
        with VerticalScroll(classes="answer-scroll"):
            yield Static("", classes="answer-text", markup=False)

    def set_title(self, title: str) -> None:
        self.query_one(".answer-title", Static).update(title)

    def show(self, column: Any) -> None:
        self.query_one(".answer-figures", Static).update(figures(column))
        self.query_one(".answer-text", Static).update(column.text or "…")
        self.query_one(".answer-scroll", VerticalScroll).scroll_end(animate=False)


class AnswerColumns(Horizontal):
    """N answer columns side by side; titles are the models or blind letters."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.texts: list[str] = []

    async def reset(self, titles: list[str]) -> None:
        """Replace the columns with empty ones titled `titles`."""
        await self.remove_children()
        self.texts = [""] * len(titles)
        await self.mount_all([AnswerColumn(t) for t in titles])

    def update_columns(self, columns: list[Any]) -> None:
        for widget, column in zip(self.query(AnswerColumn), columns, strict=False):
            widget.show(column)
        self.texts = [c.text for c in columns]

    def set_titles(self, titles: list[str]) -> None:
        for widget, title in zip(self.query(AnswerColumn), titles, strict=False):
            widget.set_title(title)
