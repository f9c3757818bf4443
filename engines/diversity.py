"""How varied a model's answers to one prompt are: distinct-n, token entropy, distinct answers.

    gens = generate(model, tok, [prompt] * 50, SamplingParams(temperature=1.0, seed=0))
    diversity([g.text for g in gens], [g.entropies for g in gens])
    # {"distinct_1": 0.41, "distinct_2": 0.77, "entropy": 1.9, "distinct_answers": 0.62, ...}

distinct-n: unique word n-grams over all n-grams of all samples (Li et al. 2016);
entropy: mean next-token entropy (nats) of the model's own distribution at each sampled token;
distinct answers: unique (stripped, lower-cased) completions over samples.
"""

from __future__ import annotations


def ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def distinct_n(texts: list[str], n: int) -> float:
    """Unique word n-grams / all word n-grams over `texts` (0 when there are none)."""
    grams = [g for t in texts for g in ngrams(t.split(), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def mean_entropy(entropies: list[list[float]]) -> float:
    flat = [h for row in entropies for h in row]
    return sum(flat) / len(flat) if flat else 0.0


def diversity(texts: list[str], entropies: list[list[float]]) -> dict[str, float]:
    answers = {t.strip().lower() for t in texts}
    lengths = [len(row) for row in entropies]
    return {
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "entropy": mean_entropy(entropies),
        "distinct_answers": len(answers) / max(1, len(texts)),
        "mean_tokens": sum(lengths) / max(1, len(lengths)),
    }
