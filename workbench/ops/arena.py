"""The arena for both front ends: blind A/B votes, the leaderboard, rankings of K completions.

    left, right = blind_pair(["base", "sft"], seed=7)          # which model sits on which side
    cast_vote(store, "Hi!", left, right, "hello", "hey", "left")   # stored as a vote
    rows = leaderboard(store)        # Elo and counts from the SQL view, Bradley–Terry fitted here
    texts = sample_completions(store, "sft", "Tell a joke.", k=4)
    rank_completions(store, "Tell a joke.", texts, order=[2, 0, 3, 1])   # best first

Votes land in `votes` (winner a/b/tie/both_bad, model_a on the left) and rankings in
`comparisons` (completions best first, source "arena", `model` the one that sampled them):
the two forms the reward pipeline's `data.from_store = true` reads
(`pipelines.comparisons.store_rankings`). A match or ranking decoded with quantized weights
names its models `sft [int8]` (`ops.chat.quantize_label`): on the leaderboard a quantized
model is a contestant of its own.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import Any

from workbench.ops.chat import check_quantize, quantize_label
from workbench.ops.errors import OpError, user_errors
from workbench.ops.stores import reading

CHOICES = {"left": "a", "right": "b", "tie": "tie", "both_bad": "both_bad"}
SOURCE = "arena"
BT_ITERATIONS = 200
BT_PRIOR = 0.5  # a half win and a half loss against an average model: no score runs off to ∞

PROMPTS = (
    "Explain what a language model is to a ten-year-old.",
    "Write a haiku about the sea.",
    "What is 17 * 23? Answer with the number.",
    "Give three tips for writing clear code.",
    "Tell me a very short story about a fox.",
    "Translate 'good morning' into French and Spanish.",
)


def blind_pair(models: list[str], seed: int | None = None) -> tuple[str, str]:
    """Two different models in a random left/right order (the names stay hidden)."""
    distinct = list(dict.fromkeys(models))
    if len(distinct) < 2:
        raise OpError("the arena needs two different models: register or pull another one")
    left, right = random.Random(seed).sample(distinct, 2)
    return left, right


def cast_vote(
    store: Any, prompt: str, left: str, right: str, left_text: str, right_text: str,
    choice: str, voter: str | None = None, quantize: str = "none",
) -> str:  # fmt: skip
    """Store a vote (choice: left, right, tie or both_bad; quantize: the weights both models
    answered with, which labels them); a line saying who was who."""
    if choice not in CHOICES:
        raise OpError(f"unknown vote {choice!r}: use one of {', '.join(CHOICES)}")
    if left == right:
        raise OpError("a vote needs two different models")
    if not prompt.strip():
        raise OpError("a vote needs the prompt both models answered")
    check_quantize(quantize, "quantize")
    left, right = quantize_label(left, quantize), quantize_label(right, quantize)
    with user_errors():
        store.add_vote(prompt, left, right, left_text, right_text, CHOICES[choice], voter)
    return f"voted {choice.replace('_', ' ')}: left was {left}, right was {right}"


def leaderboard(store: Any) -> list[dict[str, Any]]:
    """One row per model, best Elo first: model, elo, bt, votes, wins, losses, ties, both_bad."""
    with reading(store):
        rows = store.leaderboard()
        pairs = store.vote_pairs()
    scores = bradley_terry(pairs)
    return [{**row, "bt": scores.get(row["model"])} for row in rows]


def bradley_terry(pairs: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Bradley–Terry strengths on the Elo scale (1000 = average) from `vote_pairs` rows.

    Minorisation–maximisation (Hunter 2004): p_i ← W_i / Σ_j n_ij / (p_i + p_j), ties as half
    a win each, plus a prior of a half win and half loss against a virtual model of strength 1;
    scores are 1000 + 400·log10(p_i) with p normalised to a geometric mean of 1.
    """
    wins: dict[str, float] = {}
    games: dict[tuple[str, str], float] = {}
    for p in pairs:
        a, b, tie = p["model_1"], p["model_2"], p["ties"] / 2
        wins[a] = wins.get(a, 0.0) + p["wins_1"] + tie
        wins[b] = wins.get(b, 0.0) + p["wins_2"] + tie
        games[(a, b)] = games.get((a, b), 0.0) + p["votes"]
    if not wins:
        return {}
    strength = dict.fromkeys(wins, 1.0)
    for _ in range(BT_ITERATIONS):
        strength = _bt_step(strength, wins, games)
    mean_log = sum(math.log(s) for s in strength.values()) / len(strength)
    return {m: 1000 + 400 * (math.log(s) - mean_log) / math.log(10) for m, s in strength.items()}


def _bt_step(
    strength: dict[str, float], wins: dict[str, float], games: dict[tuple[str, str], float]
) -> dict[str, float]:
    denom = {m: 2 * BT_PRIOR / (s + 1.0) for m, s in strength.items()}
    for (a, b), n in games.items():
        both = strength[a] + strength[b]
        denom[a] += n / both
        denom[b] += n / both
    return {m: (wins[m] + BT_PRIOR) / denom[m] for m in strength}


def sample_completions(
    store: Any, ref: str, prompt: str, k: int = 4, sampling: Any = None
) -> list[str]:
    """K different completions of one prompt by one model (a batch, temperature ≥ 0.7)."""
    from workbench.ops.chat import DEFAULTS
    from workbench.ops.compare import generate_batch

    if not 2 <= k <= 16:
        raise OpError(f"rank between 2 and 16 completions, not {k}")
    sampling = sampling or DEFAULTS
    sampling = sampling.with_(temperature=max(sampling.temperature, 0.7))
    texts = generate_batch(store, ref, prompt, k, sampling)
    return [t.strip() for t in texts]


def rank_completions(
    store: Any, prompt: str, completions: list[str], order: list[int], run_id: str | None = None,
    model: str | None = None, quantize: str = "none",
) -> str:  # fmt: skip
    """Store completions as a comparison, best first by `order` (indices into completions),
    with the model that sampled them (`sft [int8]` when quantized)."""
    from pipelines.comparisons import strict

    check_quantize(quantize, "quantize")
    if sorted(order) != list(range(len(completions))):
        raise OpError(
            f"rank every completion once: got order {order} for {len(completions)} completions"
        )
    ranked = [completions[i].strip() for i in order]
    with user_errors():
        strict(ranked, "ranking")
        comparison_id = store.add_comparison(
            prompt, ranked, source=SOURCE, run_id=run_id,
            model=None if model is None else quantize_label(model, quantize),
        )  # fmt: skip
    return f"stored a ranking of {len(ranked)} completions ({comparison_id[:8]})"


def arena_view(store: Any) -> dict[str, Any]:
    """What the Arena screen shows, in one store transaction: the models that can answer
    (registry names), the leaderboard, and how many rankings the arena stored."""
    from workbench.ops.compare import GENERATING_KINDS

    with reading(store):
        models = [m["name"] for m in store.list_models(latest_only=True)
                  if m["kind"] in GENERATING_KINDS]  # fmt: skip
        board = leaderboard(store)
        rankings = len(store.list_comparisons(source=SOURCE))
    return {"models": models, "board": board, "rankings": rankings}


def parse_order(text: str, k: int) -> list[int]:
    """ "3 1 4 2" (1-based, best first; commas fine) → [2, 0, 3, 1]; OpError when it is not
    every number 1..k once."""
    words = text.replace(",", " ").split()
    try:
        order = [int(w) - 1 for w in words]
    except ValueError:
        raise OpError(f"type the completions' numbers best first, e.g. {_example(k)}") from None
    if sorted(order) != list(range(k)):
        raise OpError(f"name each of the {k} completions once, best first, e.g. {_example(k)}")
    return order


def _example(k: int) -> str:
    return " ".join(str(i) for i in range(k, 0, -1))
