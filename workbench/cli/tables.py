"""Print rows for people and for programs: aligned columns, TSV, CSV, JSON or one cell a line.

    print_rows(["run_id", "status"], rows)                # aligned on a TTY, TSV when piped
    print_rows(cols, rows, style="json")                  # one JSON object a line
    print_rows(cols, rows, style="vertical")              # `column: value`, a blank line between

On a terminal every cell is shown whole and a long line overflows rather than wrapping cells
(nothing is cut: ids and paths stay copyable); off one, lines are tab-separated so that `cut`,
`awk` and spreadsheets read them. JSON keeps numbers as numbers and timestamps as ISO 8601.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from typing import Any

from workbench.ops.fmt import fmt


def print_rows(
    columns: list[str], rows: list[tuple], style: str = "table", title: str | None = None
) -> None:
    """Print rows in `style`: table (aligned on a TTY, TSV otherwise), tsv, csv, json,
    vertical."""
    if style == "table" and not sys.stdout.isatty():
        style = "tsv"
    if style == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(columns)
        w.writerows(rows)
    elif style == "json":
        for r in rows:
            print(json.dumps(dict(zip(columns, r, strict=False)), default=json_value))
    elif style == "vertical":
        _vertical(columns, rows)
    elif style == "tsv":
        print("\t".join(columns))
        for r in rows:
            print("\t".join(_cell(v).replace("\t", " ").replace("\n", "⏎") for v in r))
    else:
        if title:
            print(title)
        _aligned(columns, rows)


def json_value(v: Any) -> Any:
    """A value json cannot write by itself: ISO timestamps, paths and the rest as text."""
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    return str(v)


def _cell(v: Any) -> str:
    return fmt(v).replace("\n", "⏎")


def _aligned(columns: list[str], rows: list[tuple]) -> None:
    """Columns padded to their widest cell; the last column is not padded."""
    cells = [[_cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    bold, plain = ("\x1b[1m", "\x1b[0m") if sys.stdout.isatty() else ("", "")
    print(bold + _line(columns, widths) + plain)
    for r in cells:
        print(_line(r, widths))


def _line(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip()


def _vertical(columns: list[str], rows: list[tuple]) -> None:
    width = max((len(c) for c in columns), default=0)
    for i, r in enumerate(rows):
        if i:
            print()
        for c, v in zip(columns, r, strict=False):
            print(f"{c.rjust(width)}: {fmt(v)}")
