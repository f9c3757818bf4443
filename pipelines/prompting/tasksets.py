"""Task sets for the prompting lab: built-in ones and the user's own JSONL.

    ts = load_taskset("arithmetic")            # or "factsheet", "json", a path to a .jsonl …
    ts.items[:10], ts.shots                    # test items, and a pool for few-shot examples

A JSONL line is one task: `question` and `answer` (required), optional `id`, `context`
(text put before the question), `schema` (a JSON schema for constrained output), `match`
(exact | numeric | json | contains; default exact), `tolerance` (numeric, relative; default
0.01), `sources` (ids of the documents that answer it, for retrieval hit rate), `split`
("train" lines are few-shot examples, not test items). A bad line is a UserError naming
file:line and the field.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from engines.answers import MATCHES
from engines.errors import UserError
from engines.tasks import get_task

FIELDS = {"id", "question", "answer", "context", "schema", "match", "tolerance", "sources", "split"}
PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "city": {"type": "string"},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Item:
    """One question with its reference answer and how to match it."""

    id: str
    question: str
    answer: str
    match: str = "exact"
    context: str | None = None
    schema: dict | None = None
    tolerance: float | None = None
    sources: tuple[str, ...] = ()


@dataclass
class TaskSet:
    """Test items, a pool of worked examples for few-shot prompts, and where they came from."""

    name: str
    items: list[Item]
    shots: list[Item] = field(default_factory=list)
    description: str = ""


# ---------------------------------------------------------------- the user's JSONL


def _field_error(where: str, name: str, problem: str) -> UserError:
    return UserError(f"{where}: field '{name}' {problem}")


def _text(row: dict, where: str, name: str, required: bool = False) -> str | None:
    value = row.get(name)
    if value is None:
        if required:
            raise _field_error(where, name, "is missing: every line needs question and answer")
        return None
    if name == "answer" and isinstance(value, (int, float, dict, list)) and value is not True:
        return value if isinstance(value, str) else json.dumps(value)
    if not isinstance(value, str) or (required and not value.strip()):
        raise _field_error(where, name, f"must be a non-empty string, got {value!r}")
    return value


def item_from_dict(row: Any, where: str, index: int) -> Item:
    """One validated Item; UserError naming `where` (file:line) and the field at fault."""
    if not isinstance(row, dict):
        raise UserError(f"{where}: a line must be a JSON object, got {type(row).__name__}")
    unknown = sorted(set(row) - FIELDS)
    if unknown:
        raise _field_error(where, unknown[0], f"is unknown: use {', '.join(sorted(FIELDS))}")
    match = row.get("match", "exact")
    if match not in MATCHES:
        raise _field_error(where, "match", f"is {match!r}: use one of {', '.join(MATCHES)}")
    schema = row.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise _field_error(where, "schema", "must be a JSON schema object")
    tolerance = row.get("tolerance")
    if tolerance is not None and (not isinstance(tolerance, (int, float)) or tolerance < 0):
        raise _field_error(where, "tolerance", f"must be a number ≥ 0, got {tolerance!r}")
    sources = row.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise _field_error(where, "sources", "must be a list of document ids")
    answer = _text(row, where, "answer", required=True)
    if match == "json":
        try:
            json.loads(answer)
        except ValueError:
            raise _field_error(where, "answer", "must be JSON text when match is json") from None
    return Item(
        id=str(row.get("id", index)), question=_text(row, where, "question", required=True),
        answer=answer, match=match, context=_text(row, where, "context"), schema=schema,
        tolerance=tolerance, sources=tuple(sources),
    )  # fmt: skip


def parse_jsonl(text: str, source: str) -> tuple[list[Item], list[Item]]:
    """(test items, train items) of a JSONL text; UserError naming source:line and the field."""
    items, shots = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UserError(
                f"{where}: not valid JSON ({exc.msg}): one task object a line"
            ) from None
        split = row.get("split", "test") if isinstance(row, dict) else "test"
        if split not in ("train", "test"):
            raise _field_error(where, "split", f"is {split!r}: use train or test")
        (shots if split == "train" else items).append(item_from_dict(row, where, number))
    if not items:
        raise UserError(f"{source}: no test tasks in it: add lines with question and answer")
    return items, shots


def load_jsonl(path: Path) -> TaskSet:
    if not path.is_file():
        raise UserError(f"task file {path} does not exist: give a built-in set or a .jsonl file")
    items, shots = parse_jsonl(path.read_text(encoding="utf-8"), str(path))
    return TaskSet(path.stem, items, shots or items, f"tasks from {path}")


# ---------------------------------------------------------------- built-in sets


def _data(name: str) -> str:
    return resources.files("engines").joinpath(f"data/{name}").read_text(encoding="utf-8")


def _bundled(name: str, file: str, description: str) -> TaskSet:
    items, shots = parse_jsonl(_data(file), f"engines/data/{file}")
    return TaskSet(name, items, shots or items, description)


def _from_task(task_name: str, name: str, count: int, seed: int, **fields: Any) -> TaskSet:
    task = get_task(task_name)

    def items(split: str) -> list[Item]:
        return [
            Item(f"{name}-{split}-{i}", ex.prompt, ex.answer, sources=_doc(ex.meta), **fields)
            for i, ex in enumerate(task.examples(count, seed=seed, split=split))
        ]

    return TaskSet(name, items("test"), items("train")[:8], task.description)


def _doc(meta: dict) -> tuple[str, ...]:
    return (meta["doc_id"],) if "doc_id" in meta else ()


def _multistep(seed: int, split: str, count: int) -> list[Item]:
    rng = random.Random(f"multistep/{split}/{seed}")
    out = []
    for i in range(count):
        a, b, c = rng.randint(10, 99), rng.randint(10, 99), rng.randint(2, 19)
        op = rng.choice("+-")
        value = (a + b if op == "+" else a - b) * c
        q = f"What is ({a} {op} {b}) * {c}?"
        out.append(Item(f"multistep-{split}-{i}", q, str(value), "numeric", tolerance=0.0))
    return out


def _facts_set(seed: int, count: int) -> TaskSet:
    ts = _from_task("facts", "facts", count, seed, match="contains")
    return TaskSet("facts", ts.items, ts.shots, "questions about the bundled Brindlewick documents")


def _json_set(seed: int, count: int) -> TaskSet:
    ts = _from_task("json_extract", "json", count, seed, match="json", schema=PERSON_SCHEMA)
    return TaskSet("json", ts.items, ts.shots, "name, age and city from a sentence as JSON")


BUILTIN: dict[str, str] = {
    "arithmetic": "add, subtract or multiply two numbers of up to 3 digits",
    "multistep": "(a ± b) * c with two-digit numbers: two steps",
    "factsheet": "US state fact sheet questions that need retrieval and a calculator",
    "facts": "questions about the bundled fictional town documents (retrieval)",
    "json": "name, age and city from a sentence as JSON (a schema per task)",
    "sentiment": "positive or negative product/film reviews (few-shot pool included)",
    "continue-list": "'continue this list' prompts (next item of a sequence)",
}


def builtin(name: str, seed: int = 0, count: int = 20) -> TaskSet:
    if name == "arithmetic":
        return _from_task("arithmetic", "arithmetic", count, seed, match="numeric", tolerance=0.0)
    if name == "multistep":
        items = _multistep(seed, "test", count)
        return TaskSet(name, items, _multistep(seed, "train", 8), BUILTIN[name])
    if name == "facts":
        return _facts_set(seed, count)
    if name == "json":
        return _json_set(seed, count)
    file = {"factsheet": "set_factsheet.jsonl", "sentiment": "set_sentiment.jsonl",
            "continue-list": "set_continue_list.jsonl"}[name]  # fmt: skip
    return _bundled(name, file, BUILTIN[name])


def load_taskset(ref: str, seed: int = 0, n: int | None = None) -> TaskSet:
    """A built-in set by name or a JSONL file by path; the first `n` test items if given."""
    if ref in BUILTIN:
        ts = builtin(ref, seed, count=max(n or 20, 1))
    elif ref.endswith(".jsonl") or Path(ref).expanduser().exists():
        ts = load_jsonl(Path(ref).expanduser())
    else:
        raise UserError(
            f"unknown task set {ref!r}: use one of {', '.join(BUILTIN)} or a path to a .jsonl file"
        )
    if n is not None:
        if n < 1:
            raise UserError(f"--n is {n}: ask for at least one task")
        ts.items = ts.items[:n]
    return ts


def factsheet_documents() -> list[dict]:
    """The bundled US state fact sheet (engines/data/factsheet.jsonl): id, title, text."""
    return [json.loads(line) for line in _data("factsheet.jsonl").splitlines() if line.strip()]
