"""Time per token with and without a JSON-schema constraint: same model, prompt and sampling.

    .venv/bin/python benchmarks/constrained.py --model ~/.workbench/models/smollm2-135m-instruct
    .venv/bin/python benchmarks/constrained.py --model … --repeats 5 --threads 1

Greedy decoding of the lab's JSON extraction prompt (chat template when the model has one).
The free run decodes --tokens tokens (end-of-sequence ignored); the constrained run follows
the lab's bounded person schema until the grammar completes. Per-token time excludes the
prefill: (time of the run − time of a 1-token run) / (tokens − 1), best of --repeats.
Goal: constrained / free ≤ 1.0×; floor ≤ 1.3×. It also checks that every constrained output
parses and validates.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engines.answers import schema_errors
from engines.constrained import json_schema_processor
from engines.generate import SamplingParams, chat_prompt, generate
from engines.model_folders import load_causal_lm
from pipelines.prompting.constrained import bounded_schema
from pipelines.prompting.tasksets import PERSON_SCHEMA, load_taskset


def timed(model, tok, prompt: str, tokens: int, proc, eos: bool) -> tuple[float, object]:
    params = SamplingParams(max_new_tokens=tokens, temperature=0, stop_at_eos=eos)
    start = time.perf_counter()
    out = generate(model, tok, [prompt], params, logits_processor=proc)[0]
    return time.perf_counter() - start, out


def per_token(model, tok, prompt: str, tokens: int, proc, eos: bool, repeats: int):
    """Best per-token decode time (prefill excluded), the token count and the last output."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t1, _ = timed(model, tok, prompt, 1, proc, eos)
        tn, out = timed(model, tok, prompt, tokens, proc, eos)
        n = len(out.token_ids)
        best = min(best, (tn - t1) / max(n - 1, 1))
    return best, len(out.token_ids), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a model folder")
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tok = load_causal_lm(args.model, device="cpu")
    question = load_taskset("json", n=1).items[0].question
    prompt = question
    if getattr(tok, "chat_template", None):
        prompt = chat_prompt(tok, [{"role": "user", "content": question}])
    schema = bounded_schema(PERSON_SCHEMA)
    proc = json_schema_processor(tok, schema)
    timed(model, tok, prompt, 4, None, False)  # warm up
    free, n_free, _ = per_token(model, tok, prompt, args.tokens, None, False, args.repeats)
    cons, n_cons, out = per_token(model, tok, prompt, 128, proc, True, args.repeats)
    value = json.loads(out.text)
    assert not schema_errors(value, schema), schema_errors(value, schema)
    print(f"model: {args.model}")
    print(f"free        {free * 1000:7.2f} ms/token ({n_free} tokens)")
    print(f"constrained {cons * 1000:7.2f} ms/token ({n_cons} tokens): {out.text}")
    print(f"ratio constrained/free: {cons / free:.2f}x (goal <= 1.0x, floor <= 1.3x)")


if __name__ == "__main__":
    main()
