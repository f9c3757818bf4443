"""Print rows as a rich table, CSV or JSON; format ages and numbers for humans."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from typing import Any


def human_age(ts: Any, now: dt.datetime | None = None) -> str:
    """'12s', '5m', '3h', '2d' from a store timestamp (naive UTC) to now."""
    if ts is None:
        return "-"
    if isinstance(ts, str):
        ts = dt.datetime.fromisoformat(ts)
    now = now or dt.datetime.now(dt.UTC)
    now = now if ts.tzinfo else now.replace(tzinfo=None)
    s = max(0, int((now - ts).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def human_count(n: Any) -> str:
    """135150108 -> '135.2M'."""
    if n is None:
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def print_rows(
    columns: list[str], rows: list[tuple], style: str = "table", title: str | None = None
):
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
            table.add_row(*(_cell(v) for v in r))
        Console().print(table)


def _cell(v: Any) -> str:
    return fmt(v)
