"""Range and type checks for event fields: what a DuckDB column can hold, or a clear error.

An events.jsonl line is untrusted input (a bug, a hand edit, a torn write can put anything in
it), so every field passes through one of these before it becomes a row. A check returns the
value in the form the column wants, or raises `EventError` naming the field and the problem.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)
MAX_UNIX_S = 253402300799.0  # 9999-12-31T23:59:59Z, the last second a TIMESTAMP holds
NONFINITE_TEXT = {"nan", "-nan", "inf", "+inf", "-inf", "infinity", "-infinity"}
_SURROGATE = re.compile("[\ud800-\udfff]")


class EventError(ValueError):
    """An event field the store cannot hold; the message names the field."""


def integer(name: str, v: Any, bounds: tuple[int, int] = INT64) -> int:
    """An int within bounds; integral floats (3.0) pass, bools and fractions do not."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise EventError(f"{name} must be an integer, got {type(v).__name__} {_short(v)}")
    lo, hi = bounds
    if not (math.isfinite(v) and lo <= v <= hi):
        raise EventError(f"{name} = {_short(v)} is out of range [{lo}, {hi}]")
    if isinstance(v, float) and not v.is_integer():
        raise EventError(f"{name} must be an integer, got {_short(v)}")
    return int(v)


def opt_integer(name: str, v: Any, bounds: tuple[int, int] = INT64) -> int | None:
    return None if v is None else integer(name, v, bounds)


def count(name: str, v: Any) -> int:
    """A non-negative int64 (seq, step totals)."""
    return integer(name, v, (0, INT64[1]))


def text(name: str, v: Any) -> str:
    """A string a UTF-8 column holds: lone surrogates become U+FFFD."""
    if not isinstance(v, str):
        raise EventError(f"{name} must be a string, got {type(v).__name__} {_short(v)}")
    return clean_text(v)


def opt_text(name: str, v: Any) -> str | None:
    return None if v is None else text(name, v)


def clean_text(s: str) -> str:
    if s.isascii():
        return s
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", s)
    return s


def unix_time(name: str, v: Any) -> float:
    """Unix seconds between 1970 and the year 9999."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise EventError(f"{name} must be unix seconds, got {type(v).__name__} {_short(v)}")
    if not (math.isfinite(v) and 0 <= v <= MAX_UNIX_S):
        raise EventError(f"{name} = {_short(v)} is not a time between 1970 and 9999")
    return float(v)


def mapping(name: str, v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise EventError(f"{name} must be an object, got {type(v).__name__} {_short(v)}")
    return v


def rows(name: str, v: Any) -> list[Any]:
    if not isinstance(v, list):
        raise EventError(f"{name} must be a list, got {type(v).__name__} {_short(v)}")
    return v


def flag(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise EventError(f"{name} must be true or false, got {_short(v)}")
    return v


def metric(name: str, v: Any) -> float:
    """A metric value: a number, or one of the strings "nan"/"inf"/"-inf" (kept as NaN/inf)."""
    if isinstance(v, str) and v.strip().lower() in NONFINITE_TEXT:
        return float(v.strip().lower().replace("infinity", "inf"))
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise EventError(f"metric {name!r} must be a number, got {type(v).__name__} {_short(v)}")
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


def metric_values(name: str, v: Any) -> dict[str, float]:
    values = mapping(name, v)
    return {text("metric name", k): metric(k, x) for k, x in values.items()}


def json_text(v: Any) -> str:
    """JSON text a DuckDB JSON column accepts: non-finite floats as strings, no surrogates."""
    try:
        out = json.dumps(v, allow_nan=False, default=str, ensure_ascii=False)
    except ValueError:
        out = json.dumps(json_finite(v), allow_nan=False, default=str, ensure_ascii=False)
    return clean_text(out)


def json_finite(x: Any) -> Any:
    """x with every non-finite float as its repr ("nan", "inf"), so JSON can hold it."""
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)
    if isinstance(x, dict):
        return {k: json_finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_finite(v) for v in x]
    return x


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."
