"""An experiment: one strategy on one model over one task set, scored and timed.

    exp = run_experiment(adapter, "cot", load_taskset("arithmetic", n=10), Options(seed=0))
    exp.accuracy, exp.tokens_in, exp.tokens_out, exp.latency_s, exp.metrics, exp.transcripts
    exp.quantize     # the adapter's weights (load_adapter(folder, quantize="int8")), in summary()

Items run in batches; each transcript keeps the question, the reference, the output, whether
it matched, the steps (thoughts, tool calls, votes, retrieved chunks) and the tokens spent.
`metrics` adds what a strategy measures beyond accuracy: JSON parse/valid shares on tasks
with a JSON answer, self-consistency agreement, retrieval hit rate and MRR.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engines.answers import is_match, schema_errors
from engines.tasks import extract_json
from pipelines.prompting.adapter import Adapter
from pipelines.prompting.core import Options, Result
from pipelines.prompting.registry import strategy
from pipelines.prompting.tasksets import Item, TaskSet

BATCH = 8


@dataclass
class Experiment:
    model: str
    strategy: str
    task: str
    n: int
    accuracy: float
    tokens_in: int
    tokens_out: int
    latency_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    transcripts: list[dict[str, Any]] = field(default_factory=list)
    quantize: str = "none"  # the adapter's weights: none, int8 or int4

    def summary(self) -> dict[str, Any]:
        keys = ("model", "quantize", "strategy", "task", "n", "accuracy", "tokens_in",
                "tokens_out")  # fmt: skip
        return {**{k: getattr(self, k) for k in keys}, "latency_s": self.latency_s, **self.metrics}


def score(item: Item, result: Result) -> bool:
    return is_match(item.answer, result.output, item.match, item.tolerance)


def transcript(item: Item, result: Result, correct: bool) -> dict[str, Any]:
    return {
        "id": item.id, "question": item.question, "reference": item.answer, "match": item.match,
        "output": result.output, "correct": correct, "steps": result.steps,
        "tokens_in": result.tokens_in, "tokens_out": result.tokens_out, **result.extra,
    }  # fmt: skip


def json_figures(items: list[Item], results: list[Result]) -> dict[str, float]:
    """Shares of outputs holding a JSON object that parses, and that follows the schema."""
    pairs = [(i, r) for i, r in zip(items, results, strict=True) if i.match == "json"]
    if not pairs:
        return {}
    parsed = [(i, _json_of(r.output)) for i, r in pairs]
    ok = [o is not None for _, o in parsed]
    valid = [o is not None and not schema_errors(o, i.schema or {}) for i, o in parsed]
    return {"parse_rate": sum(ok) / len(ok), "valid_rate": sum(valid) / len(valid)}


def _json_of(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return extract_json(text)


def retrieval_figures(items: list[Item], results: list[Result]) -> dict[str, float]:
    """Hit rate (a source document among the retrieved) and MRR over items with sources."""
    ranks = []
    for item, result in zip(items, results, strict=True):
        retrieved = result.extra.get("retrieved")
        if retrieved is None or not item.sources:
            continue
        hit = [k for k, doc in enumerate(retrieved, 1) if doc in item.sources]
        ranks.append(hit[0] if hit else None)
    if not ranks:
        return {}
    hit_rate = sum(r is not None for r in ranks) / len(ranks)
    return {"hit_rate": hit_rate, "mrr": sum(1 / r for r in ranks if r) / len(ranks)}


def agreement(results: list[Result]) -> dict[str, float]:
    values = [r.extra["agreement"] for r in results if "agreement" in r.extra]
    return {"agreement": sum(values) / len(values)} if values else {}


def run_experiment(
    adapter: Adapter, name: str, tasks: TaskSet, opts: Options,
    on_progress: Callable[[int, int], None] | None = None,
) -> Experiment:  # fmt: skip
    """Run strategy `name` over every item of `tasks`; the scored, timed Experiment."""
    fn = strategy(name)
    opts.shot_pool = opts.shot_pool or tasks.shots
    results: list[Result] = []
    start = time.monotonic()
    for at in range(0, len(tasks.items), BATCH):
        results += fn(adapter, tasks.items[at : at + BATCH], opts)
        if on_progress is not None:
            on_progress(len(results), len(tasks.items))
    latency = time.monotonic() - start
    correct = [score(i, r) for i, r in zip(tasks.items, results, strict=True)]
    metrics = {
        **json_figures(tasks.items, results), **agreement(results),
        **retrieval_figures(tasks.items, results),
    }  # fmt: skip
    return Experiment(
        adapter.name, name, tasks.name, len(results), sum(correct) / len(results),
        sum(r.tokens_in for r in results), sum(r.tokens_out for r in results), latency, metrics,
        [transcript(i, r, c) for i, r, c in zip(tasks.items, results, correct, strict=True)],
        getattr(adapter, "quantize", "none"),
    )  # fmt: skip
