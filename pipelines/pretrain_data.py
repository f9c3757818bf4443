"""Data preparation for pretraining: tokenizer training and packed shards, cached.

The cache key covers the data spec, the tokenizer settings, the seed, the Python version (the
stdlib source) and every file the sources read: its path, size and modification time — or its
sha256 with `data.hash_content = true` (slower; survives a copy that changes mtimes). So an
edited data file gets new shards, and `workbench data inspect` and the run after it tokenize
once. Entries live in `<home>/cache/data/<key>/`.

Concurrent jobs on the same new data (a learning-rate sweep) share one build: the first takes
`<key>.lock` and builds into a private temporary folder, then renames it into place; the others
wait on the lock and reuse the result. `manifest.json` marks a complete entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import shutil
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.pretrain_spec import SourceSpec, Spec
from store.events import Event, Note, Progress


@dataclass
class PreparedData:
    root: Path
    key: str
    tokenizer: Any
    dtype: str
    sources: list[dict[str, Any]] = field(default_factory=list)  # per-source stats
    files: dict[str, list] = field(default_factory=dict)  # data_files() it was built from

    @property
    def weights(self) -> dict[str, float]:
        return {s["source"]: s["weight"] for s in self.sources}

    def paths(self, split: str) -> dict[str, Path]:
        return {s["source"]: self.root / f"{s['source']}.{split}.bin" for s in self.sources}

    def source_rows(self) -> list[dict[str, Any]]:
        return [dict(s) for s in self.sources]

    def report(self, drawn: dict[str, float], tokens_drawn: dict[str, int]) -> list[dict]:
        total_w = sum(self.weights.values())
        rows = []
        for s in self.sources:
            name = s["source"]
            rows.append(
                {
                    "source": name,
                    "docs": s["docs"],
                    "bytes": s["bytes"],
                    "tokens": s["tokens_train"],
                    "bytes_per_token": s["bytes_per_token"],
                    "weight": s["weight"] / total_w,
                    "drawn_share": drawn.get(name, 0.0),
                    "epochs": tokens_drawn.get(name, 0) / max(1, s["tokens_train"]),
                    "bad_utf8_docs": s["bad_utf8_docs"],
                }
            )
        return rows


def data_files(spec: Spec) -> dict[str, list]:
    """Every file the sources read → [size, mtime_ns] (or [size, sha256] with hash_content)."""
    from engines.files import sha256_file
    from engines.sources import source_files

    out: dict[str, list] = {}
    for src in spec.data.sources:
        for path in source_files(src.kind, path=src.path, glob=src.glob):
            st = path.stat()
            stamp = sha256_file(path) if spec.data.hash_content else st.st_mtime_ns
            out[str(path)] = [st.st_size, stamp]
    return out


def data_key(spec: Spec, files: dict[str, list] | None = None) -> str:
    """The cache key: the data spec, tokenizer settings, seed, Python version and `files`."""
    blob = json.dumps(
        {
            "data": spec.data.model_dump(mode="json", exclude={"workers"}),
            "tokenizer": spec.tokenizer.model_dump(mode="json"),
            "seed": spec.seed,
            "python": platform.python_version(),
            "files": data_files(spec) if files is None else files,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def files_diff(before: dict[str, list], now: dict[str, list]) -> list[str]:
    """What changed between two `data_files` results, one line per file."""
    lines = [f"{p}: removed" for p in before if p not in now]
    lines += [f"{p}: added" for p in now if p not in before]
    for p, (size, stamp) in before.items():
        if p in now and now[p] != [size, stamp]:
            what = f"size {size} → {now[p][0]} bytes" if now[p][0] != size else "content"
            lines.append(f"{p}: {what} changed")
    return lines


def documents(src: SourceSpec, seed: int, stats=None) -> Iterator[str]:
    from engines.sources import iter_documents

    return iter_documents(
        src.kind,
        path=src.path,
        glob=src.glob,
        text_field=src.text_field,
        name=src.generator,
        seed=seed,
        n_docs=src.max_docs,
        stats=stats,
    )


def prepare_data(
    spec: Spec, cache_root: Path, store, should_stop: Callable[[], bool] = lambda: False
) -> Generator[Event, None, PreparedData]:
    """Train (or reuse) the tokenizer and pack every source, once per `data_key`, safely
    shared between concurrent jobs (see the module docstring)."""
    from filelock import FileLock, Timeout

    files = data_files(spec)
    key = data_key(spec, files)
    root = cache_root / key
    cache_root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(cache_root / f"{key}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield Note(text=f"data: another job is preparing {root}; waiting to reuse it")
        lock.acquire()
    try:
        if not (root / "manifest.json").exists():
            yield from _build(spec, root, store, files, should_stop)
        else:
            yield Note(text=f"data: reusing tokenized shards in {root}")
    finally:
        lock.release()
    return _load(root, key)


def _load(root: Path, key: str) -> PreparedData:
    from engines.tokenizer import load_tokenizer

    info = json.loads((root / "manifest.json").read_text())
    tok = load_tokenizer(root / "tokenizer")
    return PreparedData(root, key, tok, info["dtype"], info["sources"], info.get("files", {}))


def _build(spec: Spec, root: Path, store, files: dict, should_stop) -> Generator[Event, None, None]:
    """Build into a private temporary folder and rename it into place (under the key's lock)."""
    from engines.vocab import token_dtype_name

    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}")
    tmp.mkdir(parents=True)
    try:
        tok = yield from _tokenizer(spec, tmp, store, should_stop)
        sources = yield from _pack(spec, tmp, tok, should_stop)
        manifest = {"dtype": token_dtype_name(len(tok)), "sources": sources, "files": files}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        shutil.rmtree(root, ignore_errors=True)  # an incomplete entry from an older version
        tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _stoppable(docs: Iterator[str], should_stop: Callable[[], bool]) -> Iterator[str]:
    """Documents until the job is asked to stop (then Cancelled, between two documents)."""
    from pipelines.runner import Cancelled

    for doc in docs:
        if should_stop():
            raise Cancelled("stopped during data preparation")
        yield doc


def _tokenizer(spec: Spec, root: Path, store, should_stop) -> Generator[Event, None, Any]:
    from engines.tokenizer import load_tokenizer, train_bpe

    if spec.tokenizer.from_model:
        path = _model_path(spec.tokenizer.from_model, store)
        tok = load_tokenizer(path)
        yield Note(text=f"tokenizer: reusing {path} ({len(tok)} tokens)")
    else:
        yield Progress(step=0, total=2, phase="tokenizer", message="reading a sample")
        texts = list(_stoppable(_tokenizer_sample(spec), should_stop))
        nbytes = sum(len(t.encode()) for t in texts)
        yield Progress(step=1, total=2, phase="tokenizer", message=f"training on {nbytes:,} bytes")
        tok = train_bpe(texts, spec.tokenizer.vocab_size)
        yield Progress(step=2, total=2, phase="tokenizer")
        yield Note(
            text=f"tokenizer: trained byte-level BPE, {len(tok)} tokens on "
            f"{nbytes / 1e6:.1f} MB of the mixture"
        )
    tok.save_pretrained(root / "tokenizer")
    return tok


def _tokenizer_sample(spec: Spec) -> Iterator[str]:
    """Documents from every source in proportion to its weight, up to sample_bytes in all."""
    total_w = sum(s.weight for s in spec.data.sources)
    for src in spec.data.sources:
        budget = spec.tokenizer.sample_bytes * src.weight / total_w
        for doc in documents(src, spec.seed):
            yield doc
            budget -= len(doc.encode())
            if budget <= 0:
                break


def _model_path(ref: str, store) -> Path:
    from pipelines.model_refs import resolve_model

    return resolve_model(store, ref)


def _pack(spec: Spec, root: Path, tok, should_stop) -> Generator[Event, None, list[dict]]:
    from engines.packing import pack_source
    from engines.sources import SourceStats
    from engines.tokenizer import fast_encoder
    from engines.vocab import token_dtype_name

    encode = fast_encoder(tok, arrays=True)  # numpy ids: packing writes them fastest
    dtype = token_dtype_name(len(tok))
    labels = _unique_labels(spec.data.sources)
    rows = []
    for i, (src, label) in enumerate(zip(spec.data.sources, labels)):
        yield Progress(step=i, total=len(labels), phase="packing", message=label)
        stats = SourceStats()
        packed = pack_source(
            _stoppable(documents(src, spec.seed, stats), should_stop),
            encode,
            tok.eos_token_id,
            root / label,
            dtype=dtype,
            val_fraction=spec.data.val_fraction,
            seed=spec.seed,
            workers=spec.data.workers,
        )
        if stats.bad_utf8_docs:
            yield Note(
                level="warning",
                text=f"{label}: {stats.bad_utf8_docs} document(s) had "
                "bytes that are not UTF-8; they were replaced with U+FFFD",
            )
        tokens = packed["tokens_train"] + packed["tokens_val"]
        rows.append(
            {
                "source": label,
                "kind": src.kind,
                "weight": src.weight,
                "docs": packed["docs"],
                "bytes": packed["bytes"],
                "tokens_train": packed["tokens_train"],
                "tokens_val": packed["tokens_val"],
                "bad_utf8_docs": stats.bad_utf8_docs,
                "bytes_per_token": packed["bytes"] / max(1, tokens),
            }
        )
        yield Note(
            text=f"data: {label}: {packed['docs']} docs, {packed['bytes'] / 1e6:.2f} MB, "
            f"{tokens} tokens ({rows[-1]['bytes_per_token']:.2f} bytes/token)"
        )
    yield Progress(step=len(labels), total=len(labels), phase="packing")
    return rows


def _unique_labels(sources: list[SourceSpec]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for s in sources:
        label = s.label
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label}-{seen[label]}")
    return out
