"""Data for the viewers: a pretrain run's packed batches and text split into tokens.

    rows, special, T = packed_batch(home, run_spec, batch=4)  # B windows of T tokens
    pieces, special = tokenize(store, "model:tiny", "Hello")    # [(id, text piece), ...]

The shards live in `<home>/cache/data/<data_key(spec)>/` (see pipelines.pretrain_data):
`manifest.json`, `tokenizer/` and `<source>.train.bin`, each document followed by end-of-text.
numpy and transformers are imported inside these functions, never when a front end starts.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from workbench.ops.errors import OpError, user_errors
from workbench.ops.refs import candidates, maybe_run

Piece = tuple[int, str]


def data_folder(home: Path, spec: dict[str, Any]) -> Path:
    from pipelines.pretrain_data import data_key
    from pipelines.registry import spec_class

    return Path(home) / "cache" / "data" / data_key(spec_class("pretrain").model_validate(spec))


@cache
def load_tok(path: str):
    from engines.tokenizer import load_tokenizer

    return load_tokenizer(path)


def pieces_of(tok: Any, ids: list[int]) -> list[Piece]:
    """Each id with the text it stands for (special tokens by name, partial UTF-8 escaped)."""
    from engines.tokenizer import token_bytes

    special = special_ids(tok)
    byte_level = type(tok.backend_tokenizer.decoder).__name__ == "ByteLevel"
    out = []
    for i in ids:
        if i in special:
            out.append((i, tok.convert_ids_to_tokens(i)))
        elif byte_level:
            out.append((i, token_bytes(tok, i).decode("utf-8", errors="backslashreplace")))
        else:
            out.append((i, tok.decode([i])))
    return out


def special_ids(tok: Any) -> set[int]:
    return set(tok.all_special_ids) | set(tok.added_tokens_decoder)


def packed_batch(
    home: Path, spec: dict[str, Any], batch: int = 4, seed: int = 0
) -> tuple[list[tuple[str, list[Piece]]], set[int], int]:
    """(B rows of (label, pieces), special ids, T): windows drawn by mixture weight."""
    import numpy as np

    root = data_folder(home, spec)
    manifest = root / "manifest.json"
    if not manifest.exists():
        raise OpError(f"no packed shards for this run yet (expected {manifest})")
    info = json.loads(manifest.read_text())
    tok = load_tok(str(root / "tokenizer"))
    model, train = spec.get("model") or {}, spec.get("train") or {}
    T = int(train.get("seq_len") or model.get("block_size") or 128)
    sources = [s for s in info["sources"] if (root / f"{s['source']}.train.bin").exists()]
    if not sources:
        raise OpError(f"{root} holds no *.train.bin shards")
    weights = np.array([s["weight"] for s in sources], dtype=float)
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(batch):
        src = sources[rng.choice(len(sources), p=weights / weights.sum())]["source"]
        tokens = np.memmap(root / f"{src}.train.bin", dtype=info["dtype"], mode="r")
        start = int(rng.integers(0, max(1, len(tokens) - T)))
        ids = [int(t) for t in tokens[start : start + T]]
        label = f"row {b} · {src} · tokens {start}–{start + len(ids)}"
        rows.append((label, pieces_of(tok, ids)))
    return rows, special_ids(tok), T


def tokenize(store: Any, ref: str, text: str) -> tuple[list[Piece], set[int]]:
    """`text` split by the tokenizer `ref` names (see refs.tokenizer_folder): pieces, specials."""
    with user_errors():
        tok = load_tok(str(tokenizer_folder(store, ref)))
        return pieces_of(tok, tok(text, add_special_tokens=False)["input_ids"]), special_ids(tok)


def train_tokenizer(job: Any, out: Path) -> str:
    """Train a pretrain spec's BPE tokenizer on a sample of its mixture; save it to `out`."""
    from engines.tokenizer import bytes_per_token, train_bpe
    from pipelines.pretrain_data import _tokenizer_sample

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise OpError(f"{out} exists and is not empty; choose another --out")
    with user_errors():
        texts = list(_tokenizer_sample(job))
        tok = train_bpe(texts, job.tokenizer.vocab_size)
    tok.save_pretrained(out)
    rate = bytes_per_token(tok, texts[:200])
    return f"saved {len(tok)}-token tokenizer to {out} ({rate:.2f} bytes/token on the sample)"


def tokenizer_folder(store: Any, ref: str) -> Path:
    """Where a reference's tokenizer lives: a model folder, a run's model / tokenizer / data."""
    for folder in candidates(store, ref, ("model", "tokenizer")):
        return folder
    run = maybe_run(store, ref)
    if run is not None:
        data_tok = _data_tokenizer(store, run)
        if data_tok is not None:
            return data_tok
        raise OpError(f"run {run['run_id']} has no tokenizer yet (no model, no packed data)")
    raise OpError(f"{ref!r} is not a registered model, a run or a tokenizer folder")


def _data_tokenizer(store: Any, run: dict[str, Any]) -> Path | None:
    """The tokenizer a pretrain run trained with its packed data (before it saved a model)."""
    try:
        folder = data_folder(store.home, run.get("spec") or {}) / "tokenizer"
    except Exception:  # noqa: BLE001 - not a pretrain spec: no data tokenizer
        return None
    return folder if folder.exists() else None
