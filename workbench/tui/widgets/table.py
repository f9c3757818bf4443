"""Fill a DataTable with columns measured here, when the rows are added.

A DataTable measures its columns later, when its message queue goes idle; a frame drawn before
that (a busy machine, a snapshot, a screen switched to mid-read) shows every column as wide as
its header, which cuts run ids to three letters. Measuring the cells as they are added makes
what is drawn depend on the rows alone.
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


def fill(table: DataTable, rows: Iterable[tuple[Hashable | None, Sequence[object]]]) -> None:
    """Replace the table's rows with `rows` ((key or None, cells) pairs) and size each column
    to its widest cell or header."""
    rows = list(rows)
    table.clear()
    for column, *cells in zip(table.ordered_columns, *(cells for _, cells in rows), strict=True):
        column.auto_width = False
        column.width = max([column.label.cell_len, *map(_width, cells)])
    for key, cells in rows:
        table.add_row(*cells, key=None if key is None else str(key))
    table.refresh(layout=True)
