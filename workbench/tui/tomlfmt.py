"""Specs as TOML for showing and editing (tomli-w writes; None values are left out).

    dumps({"pipeline": "echo", "train": {"lr": 3e-4}})  # pipeline = "echo" … [train] lr = 0.0003

TOML has no null: a key whose value is None is dropped, so the spec's default applies.
"""

from __future__ import annotations

from typing import Any

import tomli_w


def drop_none(v: Any) -> Any:
    """`v` with None removed from every dict and list, at any depth."""
    if isinstance(v, dict):
        return {k: drop_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, list | tuple):
        return [drop_none(x) for x in v if x is not None]
    return v


def dumps(data: dict[str, Any]) -> str:
    """A TOML document ("" for an empty one)."""
    return tomli_w.dumps(drop_none(data))


def value(v: Any) -> str:
    """One TOML value as it would appear after `key = `."""
    return tomli_w.dumps({"v": drop_none(v)}).removeprefix("v = ").rstrip("\n")
