"""Decode against the physical limit: ms per token beside the weight-read floor and `generate`.

    .venv/bin/python benchmarks/decode_limits.py --model <home>/models/smollm2-135m-instruct
    .venv/bin/python benchmarks/decode_limits.py --model ... --json out.json --quick

In one run, alternating the sides and keeping the best of --repeats (a shared machine drifts):
- floor: the bytes a decode step must read (every weight once) over the read bandwidth
  measured now on a buffer of the same size (sum of a tensor far larger than the caches);
- ours: engines.generate greedy, batch 1, ms per new token (prefill taken out);
- transformers: `model.generate(do_sample=False)`, same prompt and length;
- batch 8: tokens/s of one 8-row greedy call over batch 1's;
- int8 / int4: the same decode after engines.quantize, the speed-up over fp32, and the floor
  ratio for the bytes that decode reads (the quantized layers, lm_head included; not the fp32
  embedding, of which a step reads one row);
- accuracy: 12 short questions (one-digit arithmetic, capitals), greedy, 24 tokens, checked by
  engines.tasks' checkers, for fp32, int8 and int4: the share right, its change from fp32, and
  the share of answers identical to fp32's (`--accuracy-tokens 0` leaves it out);
- prefill: time to first token for a ~1k-token prompt.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.decode import PROMPT, hf_generate
from engines import cpu_kernels
from engines.generate import SamplingParams, chat_prompt, generate
from engines.model_folders import load_causal_lm
from engines.quantize import quantize_model, weight_bytes
from engines.tasks import CHECKS

QUESTIONS = [  # (question, answer, engines.tasks checker): what a 135M assistant can get right
    ("What is 7 + 5?", "12", "number"), ("What is 9 - 4?", "5", "number"),
    ("What is 6 * 3?", "18", "number"), ("What is 8 + 8?", "16", "number"),
    ("What is 4 * 5?", "20", "number"), ("What is 15 - 7?", "8", "number"),
    ("What is the capital of France?", "Paris", "phrase"),
    ("What is the capital of Japan?", "Tokyo", "phrase"),
    ("What is the capital of Italy?", "Rome", "phrase"),
    ("What is the capital of Germany?", "Berlin", "phrase"),
    ("What is the capital of Spain?", "Madrid", "phrase"),
    ("What is the capital of Egypt?", "Cairo", "phrase"),
]  # fmt: skip


def best(fn, repeats: int, warm: bool = True) -> float:
    if warm:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def read_bandwidth(nbytes: int, repeats: int) -> float:
    """Bytes/s of one pass reading a fresh nbytes buffer (a sum: one read, no write)."""
    buf = torch.ones(nbytes // 4, dtype=torch.float32)
    return nbytes / best(lambda: buf.sum(), repeats)


def ours_step(model, tok, n: int, rows: int = 1):
    """A callable timing one greedy decode of n tokens (and its 1-token twin for the prefill)."""

    def run(k):
        params = SamplingParams(max_new_tokens=k, temperature=0, stop_at_eos=False)
        return lambda: generate(model, tok, [PROMPT] * rows, params)

    return run(n), run(1)


def theirs_step(model, tok, n: int):
    """transformers' generate on the same model, with torch's own matmuls (no CPU kernel)."""

    def run(k):
        def go():
            with cpu_kernels.disabled():
                return hf_generate(model, tok, [PROMPT], k, sample=False)

        return go

    return run(n), run(1)


def per_token(pair, n: int, repeats: int) -> float:
    """Seconds per new token: (time of n tokens - time of 1 token) / (n - 1)."""
    full, one = pair
    return (best(full, repeats, False) - best(one, repeats, False)) / (n - 1)


def alternate(pairs: dict, n: int, repeats: int, rounds: int = 2) -> dict[str, float]:
    """Per-token seconds for each side, alternating sides `rounds` times, best kept. A round
    whose n tokens took no longer than its 1 token (a busy machine stalled the short run) says
    nothing and is left out; a side with no other round is NaN."""
    out: dict[str, float] = {}
    for _ in range(rounds):
        for name, pair in pairs.items():
            t = per_token(pair, n, repeats)
            if t > 0:
                out[name] = min(out.get(name, t), t)
    return {name: out.get(name, float("nan")) for name in pairs}


def prefill_ttft(model, tok, repeats: int, target: int = 1000) -> tuple[float, int]:
    text = PROMPT * (target // max(1, len(tok(PROMPT)["input_ids"])) + 1)
    ids = tok(text)["input_ids"][:target]
    prompt = tok.decode(ids)
    params = SamplingParams(max_new_tokens=1, temperature=0, stop_at_eos=False)
    return best(lambda: generate(model, tok, [prompt], params), repeats), len(ids)


def answers(model, tok, tokens: int) -> list[str]:
    """Greedy answers to QUESTIONS, in one batch."""
    prompts = [
        chat_prompt(tok, [{"role": "user", "content": f"{q} Answer in one short sentence."}],
                    fallback=True)
        for q, _, _ in QUESTIONS
    ]  # fmt: skip
    params = SamplingParams(max_new_tokens=tokens, temperature=0)
    return [g.text for g in generate(model, tok, prompts, params)]


def accuracy(texts: list[str]) -> float:
    right = [CHECKS[kind](answer, text) for (_, answer, kind), text in zip(QUESTIONS, texts)]
    return sum(right) / len(QUESTIONS)


def show(res: dict) -> None:
    for k, v in res.items():
        print(f"{k:22s} {v:10.3f}", flush=True)


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer repeats (make bench)")
    ap.add_argument("--accuracy-tokens", type=int, default=24,
                    help="tokens per answer of the accuracy check (0: no check)")  # fmt: skip
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    n, reps = args.tokens, (2 if args.quick else args.repeats)
    model, tok = load_causal_lm(args.model, device="cpu")
    nbytes = weight_bytes(model)
    bw = max(read_bandwidth(nbytes, reps + 2) for _ in range(2))
    times = alternate({"ours": ours_step(model, tok, n), "hf": theirs_step(model, tok, n)}, n, reps)
    b8 = per_token(ours_step(model, tok, n, rows=8), n, reps)
    ttft, prompt_len = prefill_ttft(model, tok, reps)
    res = {
        "threads": torch.get_num_threads(), "weight_mb": nbytes / 1e6, "read_gb_s": bw / 1e9,
        "floor_ms": 1e3 * nbytes / bw, "ours_ms": 1e3 * times["ours"], "hf_ms": 1e3 * times["hf"],
        "batch8_ms_per_step": 1e3 * b8, "ttft_ms": 1e3 * ttft, "ttft_prompt_tokens": prompt_len,
    }  # fmt: skip
    res["floor_ratio"] = res["floor_ms"] / res["ours_ms"]  # share of the weight-read limit
    res["vs_generate"] = res["hf_ms"] / res["ours_ms"]  # > 1: ours is faster
    res["batch8_speedup"] = 8 * res["ours_ms"] / res["batch8_ms_per_step"]
    show(res)
    checking = args.accuracy_tokens > 0
    if checking:
        fp32 = answers(model, tok, args.accuracy_tokens)
        res["fp32_accuracy"] = accuracy(fp32)
    for kind in ("int8", "int4"):
        qmodel, _ = load_causal_lm(args.model, device="cpu")
        quantize_model(qmodel, kind)
        pair = ours_step(qmodel, tok, n)
        t = alternate({"q": pair, "fp32": ours_step(model, tok, n)}, n, reps, rounds=1)
        res[f"{kind}_ms"], res[f"{kind}_speedup"] = 1e3 * t["q"], t["fp32"] / t["q"]
        res[f"{kind}_weight_mb"] = weight_bytes(qmodel) / 1e6
        read = weight_bytes(qmodel) - qmodel.get_input_embeddings().weight.nbytes
        res[f"{kind}_read_mb"] = read / 1e6
        res[f"{kind}_floor_ratio"] = read / bw / t["q"]
        if checking:
            texts = answers(qmodel, tok, args.accuracy_tokens)
            res[f"{kind}_accuracy"] = accuracy(texts)
            res[f"{kind}_accuracy_delta"] = res[f"{kind}_accuracy"] - res["fp32_accuracy"]
            res[f"{kind}_same_as_fp32"] = sum(a == b for a, b in zip(texts, fp32)) / len(fp32)
        del qmodel
    show(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
