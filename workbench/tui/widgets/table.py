"""Fill a DataTable with columns measured here, when the rows are added.

A DataTable measures its columns later, when its message queue goes idle; a frame drawn before
that (a busy machine, a snapshot, a screen switched to mid-read) shows every column as wide as
its header, which cuts run ids to three letters. Measuring the cells as they are added makes
what is drawn depend on the rows alone. A text cell is shown as it is, never as markup: a
model label such as `sft [int8]` keeps its brackets (such a cell is stored as a rich Text).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable


def _width(cell: object) -> int:
    if isinstance(cell, Text):
        return cell.cell_len
    return cell_len(str(cell))


def _literal(cell: object) -> object:
    """A text cell that DataTable would read as markup (`[…]`) as Text, shown as it is."""
    return Text(cell) if isinstance(cell, str) and "[" in cell else cell


def fill(table: DataTable, rows: Iterable[tuple[Hashable | None, Sequence[object]]]) -> None:
    """Replace the table's rows with `rows` ((key or None, cells) pairs) and size each column
    to its widest cell or header."""
    rows = [(key, [_literal(c) for c in cells]) for key, cells in rows]
    table.clear()
    for column, *cells in zip(table.ordered_columns, *(cells for _, cells in rows), strict=True):
        column.auto_width = False
        column.width = max([column.label.cell_len, *map(_width, cells)])
    for key, cells in rows:
        table.add_row(*cells, key=None if key is None else str(key))
    table.refresh(layout=True)
