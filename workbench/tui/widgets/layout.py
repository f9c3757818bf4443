"""Layout blocks several screens compose the same way."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from textual.widget import Widget
from textual.widgets import DataTable, Static


def table_with_hint(table_id: str, headers: Sequence[str], hint_id: str) -> Iterator[Widget]:
    """A row-cursor, zebra-striped table with these headers, and an (empty) hint line below it
    that the screen fills with what the table shows; for `yield from` in a compose."""
    table = DataTable(id=table_id, cursor_type="row", zebra_stripes=True)
    table.add_columns(*headers)
    yield table
    yield Static("", id=hint_id, classes="hint")
