"""Write plain data as TOML (the subset specs use), for showing and editing specs.

    dumps({"pipeline": "echo", "train": {"lr": 3e-4}})  # pipeline = "echo" … [train] lr = 0.0003

Keys whose value is None are left out (TOML has no null; the spec default applies).
Lists of tables become `[[section.name]]` blocks; other lists are inline.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def key(k: str) -> str:
    return k if BARE_KEY.match(k) else json.dumps(k)


def value(v: Any) -> str:
    """One TOML value (inline)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        inner = ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items() if x is not None)
        return "{ " + inner + " }" if inner else "{}"
    return json.dumps(str(v))


def _is_table_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def dumps(data: dict[str, Any], prefix: str = "") -> str:
    """A TOML document: scalars first, then [tables] and [[arrays of tables]]."""
    lines = []
    for k, v in data.items():
        if v is not None and not isinstance(v, dict) and not _is_table_list(v):
            lines.append(f"{key(k)} = {value(v)}")
    for k, v in data.items():
        name = f"{prefix}{key(k)}"
        if isinstance(v, dict):
            body = dumps(v, prefix=f"{name}.")
            lines += ["", f"[{name}]", body.rstrip("\n")] if body.strip() else []
        elif _is_table_list(v):
            for item in v:
                lines += ["", f"[[{name}]]", dumps(item, prefix=f"{name}.").rstrip("\n")]
    return "\n".join(lines).strip("\n") + "\n" if lines else ""
