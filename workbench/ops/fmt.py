"""Numbers, ages and paths as both front ends show them.

human_age(run["created_at"])      # '12s', '5m', '3h', '2d'
human_count(135150108)            # '135.2M'
fmt(0.123456)                     # '0.1235'
fmt_num(9123.0)                   # '9.12k' (chart labels)
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any


def utc_now() -> dt.datetime:
    """Now as naive UTC, the form of every store timestamp."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


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


def human_seconds(s: float | None) -> str:
    """A duration: '45s', '12m', '1h05m', '2d3h' ('-' for None)."""
    if s is None or not math.isfinite(s):
        return "-"
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def human_bytes(n: int | None) -> str:
    """1536 -> '1.5 KiB' ('-' for None)."""
    if n is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def human_count(n: Any) -> str:
    """135150108 -> '135.2M'."""
    if n is None:
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def fmt(v: Any) -> str:
    """A table cell: '-' for missing, 4 significant digits for floats."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


PERCENT_METRICS = frozenset({"mfu"})  # stored as fractions, read by people as percentages
FIRST_METRICS = ("loss", "lr", "tokens_per_s", "mfu", "grad_norm")  # charts and lines lead with


def metric_rank(name: str) -> int:
    """Where a metric goes among others: FIRST_METRICS in their order, then the rest."""
    return FIRST_METRICS.index(name) if name in FIRST_METRICS else len(FIRST_METRICS)


def fmt_metric(name: str, v: Any) -> str:
    """A metric's value for people: `fmt`, but MFU as "63.4%" (never above 100%)."""
    if name in PERCENT_METRICS and isinstance(v, (int, float)) and math.isfinite(v):
        return f"{100.0 * min(max(v, 0.0), 1.0):.1f}%"
    return fmt(v)


def fmt_num(v: float | None) -> str:
    """A short label: 3 significant digits, k/M/G for big values, exponent for tiny ones."""
    if v is None or not math.isfinite(v):
        return "-"
    a = abs(v)
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= size:
            return f"{v / size:.3g}{unit}"
    if 0 < a < 1e-2:
        return f"{v:.1e}"
    return f"{v:.3g}"


def short_path(path: str | Path | None, home: Path) -> str:
    """A path shown relative to the workbench home when it lies inside it."""
    if not path:
        return "-"
    p = Path(path)
    try:
        return str(p.relative_to(home))
    except ValueError:
        return str(p)


def step_text(run: dict[str, Any]) -> str:
    """'40/200' for a run with a known total, else '-'."""
    total = run.get("progress_total")
    return f"{run.get('progress_step') or 0}/{total}" if total else "-"
