"""Evaluations both front ends call: the diversity of several models' answers to one prompt.

    rows = diversity(store, ["base", "sft", "ppo"], "Tell me a story.", n=50)

Each model answers the prompt `n` times (temperature 1, a fixed seed) as a chat turn when it
has a chat template, else as plain text; the figures (engines.diversity) are stored as a
prompt experiment (strategy "diversity") with a few samples, and returned one row per model.
"""

from __future__ import annotations

import time
from typing import Any

from workbench.ops.chat import Sampling, quantize_label
from workbench.ops.errors import user_errors
from workbench.ops.refs import model_folder

METRICS = ("distinct_1", "distinct_2", "entropy", "distinct_answers", "mean_tokens")


def diversity(
    store: Any, refs: list[str], prompt: str, *, n: int = 50, max_new_tokens: int = 48,
    temperature: float = 1.0, seed: int = 0, quantize: str = "none",
) -> list[dict[str, Any]]:  # fmt: skip
    """One row per model: its name and every METRICS figure (each model's weights quantized
    as `quantize` says: none, int8 or int4; the row's model then reads e.g. `sft [int8]`)."""
    Sampling(max_new_tokens=max_new_tokens, temperature=temperature, quantize=quantize).check()
    rows = []
    for ref in refs:
        folder = model_folder(store, ref)
        with user_errors():
            t0 = time.monotonic()
            figures, texts = _sample(folder, prompt, n, max_new_tokens, temperature, seed,
                                     quantize)  # fmt: skip
            elapsed = time.monotonic() - t0
        stored = figures | ({"quantize": quantize} if quantize != "none" else {})
        store.add_prompt_experiment(
            ref, "diversity", prompt, n, None, tokens=int(figures["mean_tokens"] * n),
            latency_s=elapsed, transcripts=[{"metrics": stored}] + texts[:10],
        )  # fmt: skip
        rows.append({"model": quantize_label(ref, quantize), **figures})
    return rows


def _sample(folder, prompt: str, n: int, max_new_tokens: int, temperature: float, seed: int,
            quantize: str):  # fmt: skip
    import torch

    from engines.diversity import diversity as figures_of
    from engines.generate import SamplingParams, chat_prompt, generate
    from engines.model_folders import load_causal_lm

    model, tok = load_causal_lm(folder, device="cpu", quantize=quantize)
    text = prompt
    if getattr(tok, "chat_template", None):
        text = chat_prompt(tok, [{"role": "user", "content": prompt}])
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    with torch.no_grad():
        gens = generate(model, tok, [text] * n, params)
    texts = [g.text for g in gens]
    return figures_of(texts, [g.entropies for g in gens]), texts
