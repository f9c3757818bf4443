"""Print rows as a rich table, CSV or JSON (cells formatted by `ops.fmt.fmt`)."""

from __future__ import annotations

import csv
import json
import sys

from workbench.ops.fmt import fmt


def print_rows(
    columns: list[str], rows: list[tuple], style: str = "table", title: str | None = None
) -> None:
    if style == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(columns)
        w.writerows(rows)
    elif style == "json":
        for r in rows:
            print(json.dumps(dict(zip(columns, r)), default=str))
    else:
        from rich import box
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
        for i, c in enumerate(columns):
            last = i == len(columns) - 1
            table.add_column(c, overflow="fold" if last else "ellipsis", no_wrap=not last)
        for r in rows:
            table.add_row(*(fmt(v) for v in r))
        Console().print(table)
