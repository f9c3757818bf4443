"""Final answers out of free text, and the four ways a task's answer is matched.

    extract("Let's see... so the answer is 1,234.", "numeric")   # '1234'
    is_match("42", "The answer is 42.0", "numeric")              # True
    majority(["12", "12", None, "13"])                            # ('12', 0.5)

Matching kinds (a task line's `match` field):
- exact: the final answer segment equals the reference, ignoring case, punctuation and spaces;
- numeric: the final number is within a relative tolerance of the reference (default 1%);
- json: the last JSON object in the text equals the reference object;
- contains: the reference appears in the text as whole words (ignoring case and punctuation).
No torch here.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter

from engines.errors import UserError
from engines.tasks import extract_json, extract_number

MATCHES = ("exact", "numeric", "json", "contains")
DEFAULT_TOLERANCE = 0.01

_MARKER = re.compile(r"answer\s*(?:is|:|=)\s*", re.IGNORECASE)


def normalise(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces ('Tobin  Ashgrove.' → 'tobin ashgrove')."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def final_segment(text: str) -> str:
    """The text after the last 'answer is' / 'Answer:' up to the line end, else the first
    non-empty line (a direct answer comes first; reasoning ends with a marker)."""
    found = list(_MARKER.finditer(text))
    if found:
        tail = text[found[-1].end() :].strip()
        return tail.splitlines()[0].strip() if tail else ""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def extract(text: str, match: str) -> str | None:
    """A comparable key for the final answer in `text` (for votes), or None when there is none."""
    check_match(match)
    if match == "numeric":
        tail = final_segment(text) if _MARKER.search(text) else text
        return extract_number(tail) or extract_number(text)
    if match == "json":
        obj = extract_json(text)
        return None if obj is None else json.dumps(obj, sort_keys=True)
    key = normalise(final_segment(text))
    return key or None


def is_match(reference: str, text: str, match: str, tolerance: float | None = None) -> bool:
    """True when the answer in `text` matches `reference` under the `match` rule."""
    check_match(match)
    if match == "contains":
        ref = normalise(reference)
        return (
            bool(ref) and re.search(rf"(?<!\w){re.escape(ref)}(?!\w)", normalise(text)) is not None
        )
    if match == "json":
        return extract_json(text) == _json_object(reference)
    got = extract(text, match)
    if got is None:
        return False
    if match == "numeric":
        return numbers_close(reference, got, DEFAULT_TOLERANCE if tolerance is None else tolerance)
    return got == normalise(reference)


def numbers_close(reference: str, got: str, tolerance: float) -> bool:
    """|got - ref| <= tolerance * |ref| (exact equality for a reference of 0)."""
    try:
        ref, value = float(str(reference).replace(",", "")), float(got)
    except ValueError:
        return False
    return math.isclose(value, ref, rel_tol=tolerance, abs_tol=0.0) or value == ref


def majority(keys: list[str | None]) -> tuple[str | None, float]:
    """The most common non-None key and the share of all samples that gave it (first wins ties)."""
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None, 0.0
    best = max(counts, key=lambda k: (counts[k], -keys.index(k)))
    return best, counts[best] / len(keys)


def check_match(match: str) -> None:
    if match not in MATCHES:
        raise UserError(f"unknown match {match!r}: use one of {', '.join(MATCHES)}")


def _json_object(reference: str) -> object:
    try:
        return json.loads(reference)
    except ValueError:
        return reference


_TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
    "integer": int, "number": (int, float),
}  # fmt: skip


def schema_errors(value: object, schema: dict, path: str = "$") -> list[str]:
    """Where `value` breaks `schema` (type, required, properties, additionalProperties, enum,
    items): enough of JSON Schema to check what a constrained model wrote."""
    errors: list[str] = []
    kind = schema.get("type")
    if kind in _TYPES:
        ok = isinstance(value, _TYPES[kind]) and not (
            kind in ("integer", "number") and isinstance(value, bool)
        )
        if not ok:
            return [f"{path}: expected {kind}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        errors += _object_errors(value, schema, path)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, element in enumerate(value):
            errors += schema_errors(element, schema["items"], f"{path}[{i}]")
    return errors


def _object_errors(value: dict, schema: dict, path: str) -> list[str]:
    props = schema.get("properties", {})
    errors = [f"{path}: missing {key!r}" for key in schema.get("required", []) if key not in value]
    for key, element in value.items():
        if key in props:
            errors += schema_errors(element, props[key], f"{path}.{key}")
        elif schema.get("additionalProperties") is False:
            errors.append(f"{path}: unexpected {key!r}")
    return errors
