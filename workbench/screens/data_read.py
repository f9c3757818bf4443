"""Reading a pretrain run's data for the Data screen (called in worker threads).

    rows, eot = packed_batch(home, run_spec, batch=4)   # B windows of T tokens from the shards
    tok = tokenizer_for(store, "model:tiny")             # a model's or a run's tokenizer

The shards live in `<home>/cache/data/<data_key(spec)>/` (see pipelines.pretrain_data):
`manifest.json`, `tokenizer/` and `<source>.train.bin`, each document followed by end-of-text.
numpy and transformers are imported here, inside the worker, never at TUI start.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

Piece = tuple[int, str]


class DataNotFound(Exception):
    """The run's shards or tokenizer are not on disk (run never got that far, or was cleaned)."""


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
        raise DataNotFound(f"no packed shards for this run yet (expected {manifest})")
    info = json.loads(manifest.read_text())
    tok = load_tok(str(root / "tokenizer"))
    model, train = spec.get("model") or {}, spec.get("train") or {}
    T = int(train.get("seq_len") or model.get("block_size") or 128)
    sources = [s for s in info["sources"] if (root / f"{s['source']}.train.bin").exists()]
    if not sources:
        raise DataNotFound(f"{root} holds no *.train.bin shards")
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


def tokenizer_for(store: Any, ref: str) -> Any:
    """`model:NAME` (a registered model's folder) or `run:ID` (its model, else its data)."""
    kind, _, name = ref.partition(":")
    if kind == "model":
        model = store.get_model(name)
        if model is None:
            raise DataNotFound(f"no model {name!r} in the registry")
        return load_tok(model["path"])
    run = store.get_run(name)
    if run is None:
        raise DataNotFound(f"no run {name!r}")
    folder = Path(run["run_dir"] or store.run_dir(name)) / "model"
    if (folder / "tokenizer.json").exists():
        return load_tok(str(folder))
    tok_dir = data_folder(store.home, run.get("spec") or {}) / "tokenizer"
    if not tok_dir.exists():
        raise DataNotFound(f"run {name} has no tokenizer yet (no model, no {tok_dir})")
    return load_tok(str(tok_dir))
