"""Ranked comparisons for reward models and DPO: from JSONL, from the store, or generated.

JSONL records, one a line (either shape):

    {"prompt": "...", "completions": ["a", "b", "c"], "ranking": [2, 0, 1]}   # best first
    {"prompt": "...", "chosen": "good answer", "rejected": "bad answer"}

`ranking` may be left out when `completions` are already best first. The store gives ranked
sets (`comparisons`, best first) and blind A/B votes (`votes`: a or b wins; ties and
both-bad are skipped). The built-in generator samples K completions per prompt from a model on
the built-in tasks and ranks them as a labeller would: correct (the task's checker) first, then
by partial credit — how close the final answer is to the reference (`Task.credit`: a number's
orders of magnitude off, a word's similarity, JSON fields right) — and, among correct ones, by
similarity to the reference answer; texts that tie are merged into one. A stand-in for human
labellers; the task's reference answer joins the samples as a correct one and, with
`contrast` (off by default), a wrong answer made from it (`Task.wrong`) as a wrong one. The
generator may decode with quantized weights (`data.quantize = "int8"` or `"int4"`): a copy
loaded for sampling only, on the CPU; the model trained from is unchanged.

Every ranking is a strict order: equal texts, repeated indices or tie groups are errors.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipelines.spec import Section, SpecError


def _check_tasks(names: list[str]) -> list[str]:
    from engines.tasks import TASKS

    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise ValueError(
            f"task(s) {unknown} have no checker; built-in tasks with checkers: {', '.join(TASKS)}"
        )
    return names


class ComparisonData(Section):
    """Where rankings come from (any mix); held-out rankings measure pair accuracy."""

    path: str | None = Field(None, description="JSONL of rankings or chosen/rejected pairs")
    from_store: bool = Field(False, description="use the store's comparisons and A/B votes")
    tasks: list[str] = Field(default_factory=list, description="generate rankings on these tasks")
    n_prompts: int = Field(64, ge=1, description="generated prompts per task (training)")
    eval_prompts: int = Field(16, ge=1, description="generated held-out prompts per task")
    k: int = Field(4, ge=2, le=16, description="completions sampled per generated prompt")
    temperature: float = Field(1.0, ge=0, description="sampling temperature of the generator")
    max_new_tokens: int = Field(24, ge=1, description="tokens per generated completion")
    quantize: Literal["none", "int8", "int4"] = Field(
        "none",
        description="weights the generator samples with: none (the model's own), int8 or int4 "
        "(quantized copy on the CPU: faster decode, numbers change a little)",
    )
    contrast: bool = Field(
        False,
        description="add a wrong answer made from the reference (a number off a little, yes "
        "for no, two letters swapped) to every generated prompt, as the reference joins as a "
        "right one: a prompt the model always answers right still teaches right from wrong "
        "(held-out pair accuracy is also reported over the model's own samples alone)",
    )
    heldout_fraction: float = Field(0.2, ge=0, lt=1, description="share of file/store rankings")
    max_len: int = Field(192, ge=8, description="tokens per prompt + completion (longer cut)")

    _tasks = field_validator("tasks")(lambda cls, v: _check_tasks(v))

    @model_validator(mode="after")
    def _some_data(self) -> ComparisonData:
        if not (self.path or self.from_store or self.tasks):
            raise ValueError(
                'give data.path = "rankings.jsonl", data.from_store = true or '
                'data.tasks = ["arithmetic", ...]'
            )
        return self


def resolve_path(data: ComparisonData, base_dir: Path, where: str) -> None:
    """Make `data.path` absolute (relative to the spec file); a missing file is a SpecError."""
    if not data.path:
        return
    p = Path(data.path).expanduser()
    p = p if p.is_absolute() else base_dir / p
    if not p.exists():
        raise SpecError(f"{where}: field 'data.path': {p} does not exist")
    data.path = str(p.resolve())


# ---------------------------------------------------------------- JSONL


def read_rankings(path: str | Path) -> list:
    """Every ranking in a JSONL file; the first bad line is a SpecError naming file:line."""
    path, out = Path(path), []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                out.append(_record(_parse(line, f"{path}:{lineno}"), f"{path}:{lineno}"))
    if not out:
        raise SpecError(f"field 'data.path': {path} has no rankings")
    return out


def _parse(line: str, where: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise SpecError(f"{where}: not valid JSON ({e.msg})") from None
    if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
        raise SpecError(f"{where}: expected an object with a string 'prompt'")
    return record


def _record(record: dict, where: str):
    from engines.reward_model import Ranking

    if "chosen" in record or "rejected" in record:
        chosen, rejected = record.get("chosen"), record.get("rejected")
        if not isinstance(chosen, str) or not isinstance(rejected, str):
            raise SpecError(f"{where}: 'chosen' and 'rejected' must both be strings")
        return Ranking(record["prompt"], strict([chosen, rejected], where))
    completions = record.get("completions")
    if not isinstance(completions, list) or not all(isinstance(c, str) for c in completions):
        raise SpecError(
            f"{where}: expected 'completions' (a list of strings) with 'ranking', "
            "or 'chosen' + 'rejected'"
        )
    order = _ranking(record.get("ranking", list(range(len(completions)))), len(completions), where)
    return Ranking(record["prompt"], strict([completions[i] for i in order], where))


def _ranking(ranking: object, n: int, where: str) -> list[int]:
    if not isinstance(ranking, list) or not all(isinstance(i, int) for i in ranking):
        raise SpecError(
            f"{where}: 'ranking' must list completion indices best first, e.g. [2, 0, 1]; "
            "tie groups are not allowed (a strict order is needed)"
        )
    missing = [i for i in ranking if not 0 <= i < n]
    if missing:
        raise SpecError(
            f"{where}: 'ranking' names completion {missing[0]} but there are only {n} "
            f"(indices 0..{n - 1})"
        )
    if len(set(ranking)) != len(ranking):
        raise SpecError(f"{where}: 'ranking' repeats a completion (a tie): give a strict order")
    return ranking


def strict(completions: list[str], where: str) -> list[str]:
    """The completions, refused when fewer than two or when two are the same text (a tie)."""
    if len(completions) < 2:
        raise SpecError(f"{where}: a ranking needs at least two completions")
    if len(set(completions)) != len(completions):
        same = next(c for c in completions if completions.count(c) > 1)
        raise SpecError(
            f"{where}: two completions are the same text ({same[:40]!r}): chosen must differ "
            "from rejected, and a ranking needs a strict order"
        )
    return completions


# ---------------------------------------------------------------- the store


def store_rankings(store) -> tuple[list, int]:
    """(rankings from comparisons and decisive votes, votes skipped as tie/both bad)."""
    from engines.reward_model import Ranking

    out, skipped = [], 0
    for c in store.list_comparisons():
        completions = list(dict.fromkeys(c["completions"]))
        if len(completions) >= 2:
            out.append(Ranking(c["prompt"], completions))
    for v in store.list_votes():
        a, b = v["completion_a"], v["completion_b"]
        if v["winner"] not in ("a", "b") or not a or not b or a == b:
            skipped += 1
            continue
        out.append(Ranking(v["prompt"], [a, b] if v["winner"] == "a" else [b, a]))
    return out, skipped


# ---------------------------------------------------------------- split and pairs


def split_rankings(rankings: list, fraction: float, seed: int) -> tuple[list, list]:
    """(train, held out): a seeded shuffle, at least one held out when there are two or more."""
    import random

    order = list(range(len(rankings)))
    random.Random(seed).shuffle(order)
    k = round(len(order) * fraction)
    k = max(k, 1) if fraction > 0 and len(order) > 1 else k
    held = set(order[:k])
    train = [r for i, r in enumerate(rankings) if i not in held]
    return train, [r for i, r in enumerate(rankings) if i in held]


def pairs(rankings: list) -> list[tuple[str, str, str]]:
    """(prompt, better, worse) for every ordered pair of every ranking."""
    out = []
    for r in rankings:
        for i in range(len(r.completions)):
            for j in range(i + 1, len(r.completions)):
                out.append((r.prompt, r.completions[i], r.completions[j]))
    return out


# ---------------------------------------------------------------- the generator


def generate_rankings(model, tok, data: ComparisonData, *, split: str, seed: int):
    """Rankings made by sampling `k` completions per task prompt and checking them; a
    generator of (prompts done, total) after each chunk, returning the rankings."""
    from engines.tasks import get_task

    n = data.n_prompts if split == "train" else data.eval_prompts
    out, total = [], n * len(data.tasks)
    for t, name in enumerate(data.tasks):
        task = get_task(name)
        examples = task.examples(n, seed=seed, split=split)
        for i in range(0, len(examples), 8):
            chunk = examples[i : i + 8]
            out += _rank_chunk(model, tok, task, chunk, data, seed + i, empty=split == "train")
            yield t * n + min(i + 8, len(examples)), total
    return out


def _rank_chunk(model, tok, task, examples, data: ComparisonData, seed: int, *,
                empty: bool = False) -> list:  # fmt: skip
    """Rankings of `examples`: `k` samples each, the reference, and (`data.contrast`) a made
    wrong answer and, with `empty`, no answer at all (ranked last: a policy must not win by
    saying nothing); each ranking says which of its texts the model sampled."""
    from engines.generate import SamplingParams, generate
    from engines.reward_model import Ranking, prompt_text

    params = SamplingParams(
        max_new_tokens=data.max_new_tokens, temperature=data.temperature, seed=seed
    )
    prompts = [prompt_text(tok, ex.prompt) for ex in examples for _ in range(data.k)]
    gens = generate(model, tok, prompts, params)
    out = []
    rng = random.Random(seed)
    for e, ex in enumerate(examples):
        sampled = [g.text.strip() for g in gens[e * data.k : (e + 1) * data.k]]
        texts = sampled + [ex.answer]
        if data.contrast and (wrong := task.wrong(ex, rng)) is not None:
            texts.append(wrong)
        if data.contrast and empty:
            texts.append("")
        ranked = rank_by_checker(
            texts, lambda t, ex=ex: task.check(ex, t), lambda t, ex=ex: quality(task, ex, t)
        )
        if len(ranked) >= 2:
            out.append(Ranking(ex.prompt, ranked, [task.check(ex, t) for t in ranked],
                               [t in sampled for t in ranked]))  # fmt: skip
    return out


def quality(task, example, text: str) -> tuple[float, float]:
    """(partial credit of the final answer, similarity to the reference when correct, else 0).

    Among wrong answers only the answer's closeness counts: two wrong answers equally far off tie
    (and are merged) rather than be ordered by how their wording happens to resemble the reference.
    """
    from engines.tasks import similarity

    right = task.check(example, text)
    return task.credit(example, text), similarity(text, example.answer) if right else 0.0


def rank_by_checker(texts: list[str], is_correct, credit=None, places: int = 2) -> list[str]:
    """Correct first, then higher `credit` (a number or a tuple of numbers, compared rounded to
    `places` decimals); texts with the same key tie and the first stands for them all, so the
    order is strict. Without `credit`, shorter counts as better."""
    keyed = {}
    for t in texts:
        if not t.strip():  # no answer at all: below every answer, right or wrong
            keyed.setdefault((True, True), t)
            continue
        score = credit(t) if credit else -len(t)
        score = score if isinstance(score, tuple) else (score,)
        keyed.setdefault((not is_correct(t), False, *(-round(x, places) for x in score)), t)
    return [keyed[k] for k in sorted(keyed)]
