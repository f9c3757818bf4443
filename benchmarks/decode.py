"""Decode speed of engines.generate next to transformers' own `generate` (ratios, not absolutes).

    .venv/bin/python benchmarks/decode.py                       # ~10M-param random Llama, fp32 CPU
    .venv/bin/python benchmarks/decode.py --model ~/.workbench/models/smollm2-135m-instruct

1. single stream: our greedy decode vs `model.generate(do_sample=False)`, same prompt and length
   (goal: ours/HF tokens per second >= 0.9);
2. batching: one batched sampling call of 8 rows vs 8 sequential single-row calls
   (goal: sequential time / batched time >= 3);
3. with --json: time per token of greedy JSON-schema constrained output vs free text.
Every run decodes exactly --tokens new tokens (end-of-sequence ignored); best of --repeats.
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engines.generate import SamplingParams, generate
from engines.model_folders import load_causal_lm

PROMPT = "def fibonacci(n):\n    # return the n-th Fibonacci number\n"


def stdlib_text(limit: int = 400_000) -> str:
    """A few hundred KB of Python standard library source to train the default tokenizer on."""
    text, root = [], Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.glob("*.py")):
        text.append(path.read_text(errors="ignore"))
        if sum(map(len, text)) > limit:
            break
    return "".join(text)


def default_model(vocab: int = 8192) -> tuple[object, object]:
    """A random ~10M-parameter Llama with a byte-level BPE trained on stdlib code."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator([stdlib_text()], trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>")
    tok.pad_token = tok.eos_token
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=384, intermediate_size=1024, num_hidden_layers=4,
        num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=1024,
        tie_word_embeddings=True, eos_token_id=0, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval(), tok


def best_times(a, b, repeats: int) -> tuple[float, float]:
    """Best wall time of `a` and of `b`, run alternately (a busy shared machine drifts)."""
    a(), b()  # warm-up: first-call allocations, lazy inits
    ta, tb = [], []
    for _ in range(repeats):
        for fn, times in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return min(ta), min(tb)


def hf_generate(model, tok, prompts: list[str], n: int, sample: bool, seed: int = 0) -> None:
    enc = tok(prompts, return_tensors="pt", padding=True, padding_side="left").to(model.device)
    torch.manual_seed(seed)
    with torch.inference_mode():
        model.generate(
            **enc, max_new_tokens=n, min_new_tokens=n, do_sample=sample, top_k=0, top_p=1.0,
            temperature=1.0, pad_token_id=tok.pad_token_id or 0,
        )  # fmt: skip


def single_stream(model, tok, n: int, repeats: int) -> tuple[float, float]:
    greedy = SamplingParams(max_new_tokens=n, temperature=0, stop_at_eos=False)
    ours, theirs = best_times(
        lambda: generate(model, tok, [PROMPT], greedy),
        lambda: hf_generate(model, tok, [PROMPT], n, sample=False),
        repeats,
    )
    return n / ours, n / theirs


def batch_vs_sequential(model, tok, n: int, repeats: int, rows: int = 8) -> tuple[float, float]:
    params = SamplingParams(max_new_tokens=n, temperature=1.0, seed=0, stop_at_eos=False)
    return best_times(
        lambda: generate(model, tok, [PROMPT] * rows, params),
        lambda: [generate(model, tok, [PROMPT], params) for _ in range(rows)],
        repeats,
    )


def constrained_vs_free(model, tok, n: int, repeats: int) -> tuple[float, float]:
    """Seconds per token: free greedy text vs greedy JSON under a schema (llguidance mask)."""
    from engines.constrained import json_schema_processor

    schema = {"type": "object", "properties": {"name": {"type": "string"}, "tags": {
        "type": "array", "items": {"type": "string"}}}, "required": ["name", "tags"]}  # fmt: skip
    proc = json_schema_processor(tok, schema)
    params = SamplingParams(max_new_tokens=n, temperature=0)
    runs: dict[str, list[int]] = {"free": [], "json": []}

    def run(name, processor):
        runs[name].append(
            len(generate(model, tok, [PROMPT], params, logits_processor=processor)[0].token_ids)
        )

    free, json_ = best_times(lambda: run("free", None), lambda: run("json", proc), repeats)
    return free / runs["free"][-1], json_ / runs["json"][-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="an HF model folder (default: random ~10M Llama)")
    ap.add_argument("--tokens", type=int, default=64, help="new tokens per run")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument(
        "--json", action="store_true", help="also time JSON-schema constrained decoding"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tok = load_causal_lm(args.model) if args.model else default_model()
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {args.model or 'random Llama'} ({params / 1e6:.1f}M params, {model.dtype}, "
          f"{model.device}, {torch.get_num_threads()} threads), {args.tokens} new tokens")  # fmt: skip
    ours, theirs = single_stream(model, tok, args.tokens, args.repeats)
    print(f"single stream  ours {ours:8.1f} tok/s   transformers {theirs:8.1f} tok/s   "
          f"ratio {ours / theirs:.2f}  (goal >= 0.9)")  # fmt: skip
    batched, sequential = batch_vs_sequential(model, tok, args.tokens, args.repeats)
    print(f"sampling x8    batched {batched:6.2f} s   sequential {sequential:6.2f} s   "
          f"ratio {sequential / batched:.2f}  (goal >= 3)")  # fmt: skip
    if args.json:
        free, constrained = constrained_vs_free(model, tok, args.tokens, args.repeats)
        print(f"json schema    free {free * 1e3:6.1f} ms/tok   constrained {constrained * 1e3:6.1f} "
              f"ms/tok   speed ratio {free / constrained:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
