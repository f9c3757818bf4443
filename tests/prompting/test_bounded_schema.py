"""bounded_schema fills in the limits that let a constrained output always finish."""

from __future__ import annotations

from engines.answers import schema_errors
from pipelines.prompting.constrained import MAX_INTEGER, MAX_ITEMS, MAX_STRING, bounded_schema


def test_open_limits_are_filled_and_own_limits_win():
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "code": {"type": "string", "maxLength": 3},
            "tags": {"type": "array", "items": {"type": "integer"}},
            "kind": {"type": "string", "enum": ["a", "b"]},
        },
    }
    out = bounded_schema(schema)
    props = out["properties"]
    assert props["name"]["maxLength"] == MAX_STRING and props["code"]["maxLength"] == 3
    assert props["tags"]["maxItems"] == MAX_ITEMS
    assert props["tags"]["items"] == {"type": "integer", "minimum": -MAX_INTEGER,
                                      "maximum": MAX_INTEGER}  # fmt: skip
    assert "maxLength" not in props["kind"] and out["additionalProperties"] is False
    assert "maxLength" not in schema["properties"]["name"]  # the caller's schema is untouched


def test_schema_errors_by_hand():
    schema = bounded_schema({"type": "object", "properties": {"a": {"type": "integer"}},
                             "required": ["a"]})  # fmt: skip
    assert schema_errors({"a": 1}, schema) == []
    assert schema_errors({"a": True}, schema) == ["$.a: expected integer, got bool"]
    assert schema_errors({}, schema) == ["$: missing 'a'"]
    assert schema_errors({"a": 1, "b": 2}, schema) == ["$: unexpected 'b'"]
