"""Constrained output: the answer forced to a JSON schema, a regex or a choice.

The constraint is the item's own `schema` (a JSON task line) or the run's `--json-schema`,
`--regex`, `--choice`; the grammar is compiled once per distinct constraint and applied as a
logits processor on the project's generator, so every output parses. Items with different
schemas are generated in separate batches.

So that an output always *finishes* (and so parses) within the token budget, `bounded_schema`
fills in limits a schema leaves open: strings at most 64 characters, arrays at most 16 items,
integers within ±10^12, and no properties beyond the declared ones. A schema's own limits win.
"""

from __future__ import annotations

import json

from engines.errors import UserError
from pipelines.prompting.adapter import Adapter, Constraint, Params
from pipelines.prompting.core import Options, Result, ask_prompt
from pipelines.prompting.tasksets import Item

MAX_STRING = 64
MAX_ITEMS = 16
MAX_INTEGER = 10**12
CONSTRAINED_TOKENS = 256


def bounded_schema(schema: dict) -> dict:
    """A copy of `schema` with the open limits filled in (see the module docstring)."""
    out = dict(schema)
    kind = out.get("type")
    if kind == "string" and "enum" not in out and "pattern" not in out:
        out.setdefault("maxLength", MAX_STRING)
    if kind == "integer":
        out.setdefault("minimum", -MAX_INTEGER)
        out.setdefault("maximum", MAX_INTEGER)
    if kind == "array":
        out.setdefault("maxItems", MAX_ITEMS)
    if isinstance(out.get("items"), dict):
        out["items"] = bounded_schema(out["items"])
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: bounded_schema(v) for k, v in out["properties"].items()}
        out.setdefault("additionalProperties", False)
    return out


def constraint_for(item: Item, opts: Options) -> Constraint:
    if opts.constraint is not None:
        return opts.constraint
    if item.schema is not None:
        return Constraint("json", item.schema)
    raise UserError(
        f"task {item.id!r} has no schema: give tasks a 'schema' field or pass "
        "--json-schema FILE, --regex R or --choice A --choice B"
    )


def constrained(adapter: Adapter, items: list[Item], opts: Options) -> list[Result]:
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        c = constraint_for(item, opts)
        groups.setdefault(json.dumps([c.kind, c.value], sort_keys=True), []).append(i)
    results: list[Result | None] = [None] * len(items)
    for indices in groups.values():
        constraint = constraint_for(items[indices[0]], opts)
        prompts = [ask_prompt(adapter, items[i], opts) for i in indices]
        params = Params(opts.tokens(CONSTRAINED_TOKENS), opts.temperature, opts.seed, ())
        outs = adapter.generate(prompts, params, constraint=constraint, on_piece=opts.on_piece)
        for i, out in zip(indices, outs, strict=True):
            results[i] = Result(out.text.strip())
            results[i].spend(out)
            results[i].steps.append(opts.emit(i, "answer", out.text, constraint=constraint.kind))
    return results
