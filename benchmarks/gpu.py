"""GPU throughput of the workbench on a GPT-2-small-size model (124M), in under 3 minutes.

    .venv/bin/python benchmarks/gpu.py                  # on a machine with CUDA
    .venv/bin/python benchmarks/gpu.py --json out.json  # the figures as JSON as well
    .venv/bin/python benchmarks/gpu.py --smoke          # a tiny model on CPU: checks the script

Without a CUDA device it says so and exits 0 (nothing to measure). With one it
1. measures the bf16 matmul peak (8192² matmuls, best of 5 short trials: engines.perf);
2. trains the `pretrain-gpt2-124m` preset's shape (12 layers × 768 wide, 12 heads, context
   1024, vocabulary 50304: 124M parameters) with the workbench Trainer — bf16 autocast, fused
   AdamW, torch.compile — on random tokens, `--warmup` untimed steps (compilation) then
   `--steps` timed ones, and prints tokens/s and MFU against the measured peak (training FLOPs
   a token 6N + 12·L·H·Q·T, as the trainer counts them), and the peak memory next to the
   dry-run estimate (engines.memory);
3. decodes `--tokens` new tokens greedily with engines.generate (KV cache, bf16), one stream
   and a batch of 8, and prints tokens/s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NO_CUDA = "no CUDA device: nothing to measure"


class RandomBatches:
    """(x, y) of random token ids on the device; the state is the generator's."""

    def __init__(self, B: int, T: int, V: int, device) -> None:
        import torch

        self.B, self.T, self.V, self.device = B, T, V, device
        self.gen = torch.Generator(device=device).manual_seed(0)

    def next_batch(self):
        import torch

        w = torch.randint(0, self.V, (self.B, self.T + 1), generator=self.gen, device=self.device)
        return w[:, :-1], w[:, 1:]  # (B, T) each

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(size, device, *, batch: int, warmup: int, steps: int, compile_: bool, peak: float):
    """tokens/s, MFU and peak memory of the workbench Trainer over `steps` timed steps."""
    import torch

    from engines.memory import training_memory
    from engines.model import build_model, flops_per_token
    from engines.perf import mfu
    from engines.trainer import Trainer, causal_lm_loss
    from pipelines.spec import TrainSection
    from pipelines.train_events import train_config

    model = build_model(size, seed=0, eos_id=0)
    section = TrainSection(
        batch_size=batch, max_steps=warmup + steps, lr=6e-4, min_lr=6e-5, warmup_steps=10,
        eval_every=0, sample_every=0, checkpoint_every=0, log_every=warmup + steps,
        device=device.type, compile=compile_,
    )  # fmt: skip
    cfg = dataclasses.replace(train_config(section, seed=0), peak_flops=peak)
    batches = RandomBatches(batch, size.block_size, size.vocab_size, device)
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as ckpt:
        trainer = Trainer(model, cfg, train_batches=batches, loss_fn=causal_lm_loss, ckpt_root=ckpt)
        records = trainer.train()

        def advance(n: int) -> None:
            done = 0
            while done < n:
                done += next(records)["type"] == "progress"

        t0 = time.perf_counter()
        advance(warmup)  # compilation and the allocator's first steps
        sync(device)
        warm_s = time.perf_counter() - t0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        advance(steps)
        sync(device)
        elapsed = time.perf_counter() - start
        peak_mem = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        records.close()  # no final eval or checkpoint: they are not what is measured
    tokens_s = steps * batch * size.block_size / elapsed
    fpt = flops_per_token(size, size.block_size)
    estimate = training_memory(
        params=size.params, batch=batch, seq_len=size.block_size, n_layer=size.n_layer,
        n_embd=size.n_embd, vocab_size=size.vocab_size,
        activation_bytes=2 if device.type == "cuda" else 4,
    ).total  # fmt: skip
    return {
        "params": size.params,
        "batch": batch,
        "context": size.block_size,
        "warmup_s": warm_s,
        "train_tokens_s": tokens_s,
        "train_flops_per_token": fpt,
        "train_mfu": mfu(fpt, tokens_s, peak),
        "peak_memory_bytes": peak_mem,
        "estimate_bytes": estimate,
    }, trainer.model


def decode(model, device, *, tokens: int, vocab: int) -> dict:
    """Greedy decode tokens/s with engines.generate: one stream, then 8 rows at once."""
    import torch

    from engines.generate import SamplingParams, generate
    from engines.tokenizer import train_bpe

    texts = [f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(400)]
    tok = train_bpe(texts, min(vocab, 400))
    if device.type == "cuda":
        model = model.to(torch.bfloat16)
    model.eval()
    params = SamplingParams(max_new_tokens=tokens, temperature=0.0, stop_at_eos=False)
    out = {}
    for rows in (1, 8):
        prompts = ["def fibonacci(n):\n"] * rows
        generate(model, tok, prompts, dataclasses.replace(params, max_new_tokens=8))  # warm-up
        sync(device)
        start = time.perf_counter()
        gens = generate(model, tok, prompts, params)
        sync(device)
        elapsed = time.perf_counter() - start
        out[f"decode_tokens_s_batch{rows}"] = sum(len(g.token_ids) for g in gens) / elapsed
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (compile)")
    parser.add_argument("--batch", type=int, default=16, help="sequences of 1024 tokens a step")
    parser.add_argument("--tokens", type=int, default=256, help="new tokens decoded per row")
    parser.add_argument("--no-compile", action="store_true", help="eager mode (no torch.compile)")
    parser.add_argument("--smoke", action="store_true", help="a tiny model on CPU, fp32, eager")
    parser.add_argument("--json", type=Path, help="write the figures here as well")
    args = parser.parse_args(argv)

    import torch

    if not args.smoke and not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    from engines.model import ModelSize, describe
    from engines.perf import format_mfu, measure_peak_flops

    if args.smoke:
        device = torch.device("cpu")
        size = ModelSize(n_layer=2, n_head=2, n_embd=64, block_size=64, vocab_size=512)
        args.batch, args.steps, args.warmup, args.tokens = 2, 2, 1, 8
        args.no_compile = True
    else:
        device = torch.device("cuda", 0)
        size = ModelSize(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304)
    torch.manual_seed(0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (smoke run)"
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    peak = measure_peak_flops(device, dtype)
    print(f"device: {name}; torch {torch.__version__}")
    print(f"matmul peak ({str(dtype).removeprefix('torch.')}): {peak / 1e12:.3g} TFLOP/s")
    print(f"model: {describe(size)}")
    figures, model = train(
        size, device, batch=args.batch, warmup=args.warmup, steps=args.steps,
        compile_=not args.no_compile, peak=peak,
    )  # fmt: skip
    mode = ("bf16 autocast" if device.type == "cuda" else "fp32") + ", fused AdamW"
    mode += "" if args.no_compile else ", torch.compile"
    print(
        f"train ({mode}; batch {args.batch} × {size.block_size}): "
        f"{figures['train_tokens_s']:,.0f} tokens/s, MFU {format_mfu(figures['train_mfu'])} "
        f"(warm-up {figures['warmup_s']:.0f} s)"
    )
    if figures["peak_memory_bytes"] is not None:
        print(
            f"memory: peak allocated {figures['peak_memory_bytes'] / 2**30:.2f} GiB; dry-run "
            f"estimate (without the CUDA context) {figures['estimate_bytes'] / 2**30:.2f} GiB"
        )
    figures.update(decode(model, device, tokens=args.tokens, vocab=size.vocab_size))
    print(
        f"decode (greedy, {args.tokens} new tokens): "
        f"{figures['decode_tokens_s_batch1']:,.0f} tokens/s one stream, "
        f"{figures['decode_tokens_s_batch8']:,.0f} tokens/s batch of 8"
    )
    figures.update(device=name, peak_flops=peak)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
