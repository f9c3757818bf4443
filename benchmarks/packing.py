"""Pretraining's tokenize-and-pack step on a generated corpus: MB/s of text, where the time
goes, and whether memory stays flat as the corpus grows.

    .venv/bin/python benchmarks/packing.py                 # a 32 MB corpus (and an 8 MB one)
    .venv/bin/python benchmarks/packing.py --mb 4          # quicker
    .venv/bin/python benchmarks/packing.py --workers 1 2   # the pool sizes to time
    .venv/bin/python benchmarks/packing.py --variants 5    # also each speed-up, 5 rounds

The corpus is the standard library's .py files and synthetic stories, repeated to `--mb` MB of
text as a folder of files (a `folder` source), and the tokenizer a byte-level BPE trained here
(vocab 8192, as the pretrain-small preset). Each measurement runs in a fresh process doing
exactly what `pipelines.pretrain_data._pack` does for one source: `iter_documents` →
`pack_source(fast_encoder(tok, arrays=True), val_fraction=0.05)`, and reports its wall time,
its peak resident memory, and (in a separate timed run) the time spent reading documents,
encoding them and writing tokens. `packing_mb_s` is one process, one thread: as pretraining
packs by default; `--workers` and `--threads` time the opt-in process pool and threads. The reference, measured in the same run, is the encoder alone
on the same documents already in memory, one thread (`encode_only`): packing/encode_only near
1.0 means reading and writing cost little beside tokenizing. Peak memory at `--mb` against
`--mb / 4` should be about 1.0: packing streams.

`--variants` times, in one process with alternating rounds, packing as it was before the
speed-ups (tiktoken's `encode_ordinary_batch`, ids as lists, one thread) against each change
added in turn, as wall MB/s and as MB per CPU-second (steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VOCAB = 8192
SAMPLE_BYTES = 2_000_000  # the tokenizer's training sample
FILE_BYTES = 256 * 1024  # documents are grouped into files of about this size


def _documents() -> list[str]:
    """Distinct documents to repeat: stdlib modules and synthetic stories, shuffled."""
    from engines.sources import stdlib_files
    from engines.tasks import synthetic_documents

    docs = [p.read_text(encoding="utf-8", errors="replace") for p in stdlib_files()[:800]]
    docs += list(synthetic_documents("stories", 2000, seed=1))
    random.Random(0).shuffle(docs)
    return [d for d in docs if d]


def write_corpus(folder: Path, megabytes: float) -> int:
    """A folder of .txt files holding about `megabytes` MB of documents (one per file)."""
    folder.mkdir(parents=True, exist_ok=True)
    docs, target, written, i = _documents(), int(megabytes * 1e6), 0, 0
    while written < target:
        doc = docs[i % len(docs)]
        (folder / f"{i:07d}.txt").write_text(doc, encoding="utf-8")
        written, i = written + len(doc.encode("utf-8")), i + 1
    return written


def train_tokenizer(corpus: Path, out: Path) -> None:
    from engines.sources import iter_documents
    from engines.tokenizer import train_bpe

    sample, size = [], 0
    for doc in iter_documents("folder", path=corpus):
        sample.append(doc)
        size += len(doc.encode("utf-8"))
        if size >= SAMPLE_BYTES:
            break
    train_bpe(sample, VOCAB).save_pretrained(out)


class _Timed:
    """Wall time spent inside calls of a callable or `next()` of an iterator."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def calls(self, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed

    def iterate(self, it):
        it = iter(it)
        while True:
            start = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                self.seconds += time.perf_counter() - start
                return
            self.seconds += time.perf_counter() - start
            yield item


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (a process pool's workers)."""
    import resource

    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class _BatchEncoder:
    """The encoder before the speed-ups: tiktoken's encode_ordinary_batch, lists of ids."""

    def __init__(self, encoding) -> None:
        self.encoding = encoding

    def __call__(self, texts: list[str]) -> list[list[int]]:
        return self.encoding.encode_ordinary_batch(texts, num_threads=1)


def _pack(packing, docs, encode, tok, threads: int, workers: int = 1) -> dict:
    from engines.vocab import token_dtype_name

    with tempfile.TemporaryDirectory() as tmp:
        return packing.pack_source(
            docs, encode, tok.eos_token_id, Path(tmp) / "corpus",
            dtype=token_dtype_name(len(tok)), val_fraction=0.05, seed=0, workers=workers,
            threads=threads,
        )  # fmt: skip


def _variants(packing, corpus: str, tok, rounds: int) -> dict:
    """Each speed-up added in turn, alternating rounds in this process: best MB/s by wall
    time and by CPU time, for the same documents read from the folder each time."""
    from engines.sources import iter_documents
    from engines.tokenizer import TiktokenEncoder, _tiktoken_pattern

    pattern = _tiktoken_pattern(tok)
    lists, arrays = TiktokenEncoder(tok, pattern), TiktokenEncoder(tok, pattern, arrays=True)
    steps = {
        "before: encode_ordinary_batch, lists, 1 thread": (_BatchEncoder(lists.encoding), 1),
        "+ one encode_ordinary per text": (lists, 1),
        "+ numpy ids (encode_to_numpy)": (arrays, 1),
        "+ 2 encoding threads (opt-in: threads=2)": (arrays, 2),
        "numpy ids, 1 thread, again (drift check)": (arrays, 1),
    }
    nbytes = sum(len(d.encode("utf-8")) for d in iter_documents("folder", path=corpus))
    best: dict[str, list[float]] = {name: [0.0, 0.0] for name in steps}
    files: dict[str, bytes] = {}
    for _ in range(rounds):
        for name, (encode, threads) in steps.items():
            cpu, wall = _cpu_seconds(), time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                packed = packing.pack_source(
                    iter_documents("folder", path=corpus), encode, tok.eos_token_id,
                    Path(tmp) / "c", dtype="uint16", val_fraction=0.05, threads=threads,
                )  # fmt: skip
                files[name] = Path(packed["train_path"]).read_bytes()
            wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
            best[name] = [
                max(best[name][0], nbytes / wall / 1e6),
                max(best[name][1], nbytes / cpu / 1e6),
            ]
    assert len(set(files.values())) == 1, "a variant wrote other tokens"
    return {name: {"mb_s": w, "mb_cpu_s": c} for name, (w, c) in best.items()}


def child(kind: str, corpus: str, tokdir: str, workers: int) -> None:
    """One measurement in this process; prints one JSON line."""
    import resource

    from engines import packing
    from engines.sources import SourceStats, iter_documents
    from engines.tokenizer import fast_encoder, load_tokenizer

    tok = load_tokenizer(tokdir)
    start = time.perf_counter()
    encode = fast_encoder(tok, arrays=True)
    setup_s = time.perf_counter() - start
    stats = SourceStats()
    out: dict = {"kind": kind, "workers": workers, "setup_s": setup_s,
                 "encoder": type(encode).__name__}  # fmt: skip
    cpu = _cpu_seconds()
    if kind == "variants":
        out["variants"] = _variants(packing, corpus, tok, rounds=workers)
    elif kind == "encode_only":  # the reference: the documents already in memory, 1 thread
        docs = list(iter_documents("folder", path=corpus, stats=stats))
        chunk, cpu = packing.CHUNK_DOCS, _cpu_seconds()
        start = time.perf_counter()
        tokens = sum(sum(map(len, encode(docs[i : i + chunk]))) for i in range(0, len(docs), chunk))
        out |= {"seconds": time.perf_counter() - start, "tokens": tokens}
    elif kind == "split":  # one thread, each part timed
        read, enc, write = _Timed(), _Timed(), _Timed()
        packing._SplitWriter.write = write.calls(packing._SplitWriter.write)  # type: ignore[method-assign]
        docs = read.iterate(iter_documents("folder", path=corpus, stats=stats))
        start = time.perf_counter()
        packed = _pack(packing, docs, enc.calls(encode), tok, threads=1)
        out |= {"seconds": time.perf_counter() - start,
                "read_s": read.seconds, "encode_s": enc.seconds, "write_s": write.seconds}  # fmt: skip
    else:  # "pack": `workers` processes, as pretraining packs; "threads": `workers` threads
        docs = iter_documents("folder", path=corpus, stats=stats)
        start = time.perf_counter()
        if kind == "threads":
            packed = _pack(packing, docs, encode, tok, threads=workers)
        else:
            packed = _pack(packing, docs, encode, tok, threads=1, workers=workers)
        out |= {"seconds": time.perf_counter() - start,
                "tokens": packed["tokens_train"] + packed["tokens_val"]}  # fmt: skip
    out |= {"bytes": stats.bytes, "docs": stats.docs, "cpu_s": _cpu_seconds() - cpu,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip
    print(json.dumps(out))


def measure(kind: str, corpus: Path, tokdir: Path, workers: int = 1) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(corpus), str(tokdir), str(workers)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{kind} (workers {workers}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=32.0, help="corpus size in MB of text")
    ap.add_argument("--workers", type=int, nargs="+", default=[2],
                    help="process pool sizes to time beside one process")  # fmt: skip
    ap.add_argument("--threads", type=int, default=2, help="threads to time in one process")
    ap.add_argument("--variants", type=int, default=0, metavar="ROUNDS",
                    help="also time each speed-up in turn, best of ROUNDS (on the corpus/4)")  # fmt: skip
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument(
        "--child", nargs=4, metavar=("KIND", "CORPUS", "TOK", "W"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.child:
        kind, corpus, tokdir, workers = args.child
        child(kind, corpus, tokdir, int(workers))
        return
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        big, small, tokdir = Path(tmp) / "big", Path(tmp) / "small", Path(tmp) / "tokenizer"
        nbytes = write_corpus(big, args.mb)
        write_corpus(small, args.mb / 4)
        train_tokenizer(big, tokdir)
        ref = measure("encode_only", big, tokdir)
        runs = {"pack, 1 process (default)": measure("pack", big, tokdir, 1)}
        runs |= {f"pack, {w} processes": measure("pack", big, tokdir, w) for w in args.workers
                 if w > 1}  # fmt: skip
        if args.threads > 1:
            runs[f"pack, {args.threads} threads"] = measure("threads", big, tokdir, args.threads)
        split = measure("split", big, tokdir)
        quarter = measure("pack", small, tokdir, 1)
        variants = (
            measure("variants", small, tokdir, args.variants)["variants"] if args.variants else {}
        )
    figures = report(args, nbytes, load, ref, runs, split, quarter, variants)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


def report(args, nbytes: int, load: float, ref, runs, split, quarter, variants) -> dict:
    def mb_s(r: dict) -> float:
        return r["bytes"] / r["seconds"] / 1e6

    def mb_cpu_s(r: dict) -> float:
        return r["bytes"] / r["cpu_s"] / 1e6

    print(f"corpus {nbytes / 1e6:.1f} MB in {split['docs']} documents, encoder "
          f"{ref['encoder']}, {os.cpu_count()} CPUs, load average {load:.1f} at start")  # fmt: skip
    print(f"{'how':<30} {'seconds':>8} {'MB/s':>7} {'MB/cpu-s':>9} {'peak MB':>8}")
    rows = {"encode only, 1 thread (ref)": ref, **runs, "pack, 1 process, timed parts": split}
    for name, r in rows.items():
        print(f"{name:<30} {r['seconds']:>8.2f} {mb_s(r):>7.2f} {mb_cpu_s(r):>9.2f} "
              f"{r['peak_mb']:>8.0f}")  # fmt: skip
    parts = {k: split[f"{k}_s"] for k in ("read", "encode", "write")}
    other = split["seconds"] - sum(parts.values())
    shares = ", ".join(f"{k} {v / split['seconds']:.0%}" for k, v in parts.items())
    print(f"1 thread: {shares}, other {other / split['seconds']:.0%} "
          f"(of {split['seconds']:.2f} s); encoder set-up {split['setup_s']:.2f} s")  # fmt: skip
    one = runs["pack, 1 process (default)"]
    growth = one["peak_mb"] / quarter["peak_mb"]
    print(f"peak resident memory, {args.mb:g} MB vs {args.mb / 4:g} MB corpus: {growth:.2f}x "
          "(1.00 = flat)")  # fmt: skip
    print(f"packing MB/s (1 process) / encode only, 1 thread: {mb_s(one) / mb_s(ref):.2f}")
    for name, r in runs.items():
        if r is not one:
            print(f"{name} / 1 process: {mb_s(r) / mb_s(one):.2f}")
    if variants:
        first = next(iter(variants.values()))
        print(f"{f'variant (corpus/4, best of {args.variants})':<48} {'MB/s':>6} {'ratio':>6} {'MB/cpu-s':>9} "
              f"{'ratio':>6}")  # fmt: skip
        for name, v in variants.items():
            print(f"{name:<48} {v['mb_s']:>6.2f} {v['mb_s'] / first['mb_s']:>6.2f} "
                  f"{v['mb_cpu_s']:>9.2f} {v['mb_cpu_s'] / first['mb_cpu_s']:>6.2f}")  # fmt: skip
    figures = {
        "packing_mb_s": mb_s(one), "packing_mb_cpu_s": mb_cpu_s(one),
        "packing_vs_encode_only": mb_s(one) / mb_s(ref), "packing_memory_growth": growth,
        **{f"packing_{name.split(', ')[1].replace(' ', '_')}_vs_1": mb_s(r) / mb_s(one)
           for name, r in runs.items() if r is not one},
        **{f"packing_{k}_share": v / split["seconds"] for k, v in parts.items()},
    }  # fmt: skip
    if variants:
        first = next(iter(variants.values()))
        figures["packing_speedup_vs_before"] = (
            variants["+ numpy ids (encode_to_numpy)"]["mb_s"] / first["mb_s"]
        )
    return figures


if __name__ == "__main__":
    main()
