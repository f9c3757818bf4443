"""Data preparation for pretraining: tokenizer training and packed shards, cached by content.

The same (sources, tokenizer settings, seed) always map to the same folder under
`<home>/cache/data/<key>/`, so `workbench data inspect` and the run that follows it tokenize
once. `manifest.json` is written last: a folder without it is incomplete and is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Generator, Iterator
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


def data_key(spec: Spec) -> str:
    blob = json.dumps(
        {
            "data": spec.data.model_dump(mode="json", exclude={"workers"}),
            "tokenizer": spec.tokenizer.model_dump(mode="json"),
            "seed": spec.seed,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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


def prepare_data(spec: Spec, cache_root: Path, store) -> Generator[Event, None, PreparedData]:
    """Train (or reuse) the tokenizer and pack every source; cached by `data_key`."""
    from engines.tokenizer import load_tokenizer

    key = data_key(spec)
    root = cache_root / key
    manifest = root / "manifest.json"
    if manifest.exists():
        info = json.loads(manifest.read_text())
        yield Note(text=f"data: reusing tokenized shards in {root}")
        return PreparedData(
            root, key, load_tokenizer(root / "tokenizer"), info["dtype"], info["sources"]
        )
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    tok = yield from _tokenizer(spec, root, store)
    sources = yield from _pack(spec, root, tok)
    dtype = "uint16" if len(tok) < 65535 else "uint32"
    manifest.write_text(json.dumps({"dtype": dtype, "sources": sources}, indent=2))
    return PreparedData(root, key, tok, dtype, sources)


def _tokenizer(spec: Spec, root: Path, store) -> Generator[Event, None, Any]:
    from engines.tokenizer import load_tokenizer, train_bpe

    if spec.tokenizer.from_model:
        path = _model_path(spec.tokenizer.from_model, store)
        tok = load_tokenizer(path)
        yield Note(text=f"tokenizer: reusing {path} ({len(tok)} tokens)")
    else:
        yield Progress(step=0, total=1, phase="tokenizer")
        texts = list(_tokenizer_sample(spec))
        nbytes = sum(len(t.encode()) for t in texts)
        tok = train_bpe(texts, spec.tokenizer.vocab_size)
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
    model = store.get_model(ref)
    return Path(model["path"]) if model else Path(ref)


def _pack(spec: Spec, root: Path, tok) -> Generator[Event, None, list[dict]]:
    from engines.packing import pack_source
    from engines.sources import SourceStats
    from engines.tokenizer import fast_encoder

    encode = fast_encoder(tok)
    dtype = "uint16" if len(tok) < 65535 else "uint32"
    labels = _unique_labels(spec.data.sources)
    rows = []
    for i, (src, label) in enumerate(zip(spec.data.sources, labels)):
        yield Progress(step=i, total=len(labels), phase="packing", message=label)
        stats = SourceStats()
        packed = pack_source(
            documents(src, spec.seed, stats),
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
    return rows


def _unique_labels(sources: list[SourceSpec]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for s in sources:
        label = s.label
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label}-{seen[label]}")
    return out
