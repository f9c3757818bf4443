"""Tokenize and pack documents into flat token files, and draw B×T batches from a mixture.

`pack_source` streams documents through an `encode_batch` callable (see
engines.tokenizer.fast_encoder) in chunks and appends the ids, each document followed by the
end-of-text id, to `<name>.train.bin` (and `<name>.val.bin` for a held-out share of the
documents): memory stays flat however large the corpus is. With one worker process,
`threads` > 1 encodes that many chunks at once (tiktoken and tokenizers release the GIL while
they encode); the files are the same whatever the workers and threads.

`MixtureBatches` memory-maps one such file per source and draws rows by mixture weight with a
seeded numpy Generator. Every rank draws the same global batch and keeps its own slice, so
DDP on 2 ranks with B=4 sees exactly the rows one process with B=8 sees; its state_dict makes
a resumed run draw the very batches the uninterrupted one would have.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from engines.errors import UserError
from engines.vocab import token_dtype_name

EncodeBatch = Callable[[list[str]], list[list[int]]]
CHUNK_DOCS = 256


def token_dtype(vocab_size: int) -> np.dtype:
    """The numpy dtype of `engines.vocab.token_dtype_name`: uint16 when every id fits."""
    return np.dtype(token_dtype_name(vocab_size))


def is_val_doc(index: int, seed: int, val_fraction: float) -> bool:
    """Whether document `index` is held out: a hash of (seed, index), so the split is fixed."""
    if val_fraction <= 0:
        return False
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < val_fraction


def _chunks(docs: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(docs)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


_worker_encode: EncodeBatch | None = None  # set in each pool worker by _init_worker


def _init_worker(encode_batch: EncodeBatch) -> None:
    global _worker_encode
    _worker_encode = encode_batch


def _encode_in_worker(chunk: list[str]) -> list[list[int]]:
    assert _worker_encode is not None, "pool worker started without an encoder"
    return _worker_encode(chunk)


def _threaded(
    chunks: Iterator[list[str]], encode_batch: EncodeBatch, threads: int
) -> Iterator[tuple[list[str], list[list[int]]]]:
    """(chunk, ids) pairs in order: `threads` chunks are read, then encoded at once, one a
    thread, while this thread waits. Reading meanwhile was slower (8 MB, 2 cores: 7.5 against
    11.4 MB/s): a thread running Python holds the GIL that each encoder needs between two
    documents, and hands it over only every switch interval."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, thread_name_prefix="pack-encode") as pool:
        while group := list(itertools.islice(chunks, threads)):
            futures = [pool.submit(encode_batch, chunk) for chunk in group]
            yield from zip(group, [f.result() for f in futures], strict=True)


def _encoded(
    chunks: Iterator[list[str]], encode_batch: EncodeBatch, workers: int, threads: int = 1
) -> Iterator[tuple[list[str], list[list[int]]]]:
    """(chunk, ids) pairs in order; a process pool encodes `workers` chunks at a time, or
    with one worker, `threads` threads do."""
    if workers <= 1:
        if threads > 1:
            yield from _threaded(chunks, encode_batch, threads)
            return
        for chunk in chunks:
            yield chunk, encode_batch(chunk)
        return
    import multiprocessing as mp

    # fork hands the encoder to workers without pickling and needs no `__main__` guard;
    # the workers only tokenize, with tokenizers' own threads off.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with mp.get_context(method).Pool(workers, _init_worker, (encode_batch,)) as pool:
        while window := list(itertools.islice(chunks, 2 * workers)):  # bounded read-ahead
            yield from zip(window, pool.map(_encode_in_worker, window), strict=True)


def _flat(ids: list[list[int]], eot_id: int, dtype: np.dtype) -> np.ndarray:
    """All documents' ids concatenated, each followed by eot_id. A document's ids are a list
    of ints or a 1-D integer numpy array (fast_encoder(arrays=True): 40x quicker here)."""
    if ids and all(isinstance(d, np.ndarray) for d in ids):
        eot = np.array([eot_id], dtype=np.int64)
        flat = np.concatenate([part for d in ids for part in (d.astype(np.int64), eot)])
    else:
        flat = np.fromiter(
            itertools.chain.from_iterable(itertools.chain(d, (eot_id,)) for d in ids),
            dtype=np.int64,
            count=sum(map(len, ids)) + len(ids),
        )
    limit = np.iinfo(dtype).max
    assert flat.size == 0 or flat.max() <= limit, f"token id above {limit}: pack with uint32"
    return flat.astype(dtype)


class _SplitWriter:
    """Appends encoded chunks to `<out>.train.bin` / `<out>.val.bin` (as .tmp until done)."""

    def __init__(
        self, out: Path, val_fraction: float, eot_id: int, dtype: np.dtype, seed: int
    ) -> None:
        self.eot_id, self.dtype, self.seed, self.val_fraction = eot_id, dtype, seed, val_fraction
        splits = ("train", "val") if val_fraction > 0 else ("train",)
        self.paths = {s: out.with_name(f"{out.name}.{s}.bin") for s in splits}
        self.files = {s: self._tmp(p).open("wb") for s, p in self.paths.items()}
        self.stats = {"docs": 0, "bytes": 0, "tokens_train": 0, "tokens_val": 0}
        self.stats |= {"docs_train": 0, "docs_val": 0}

    @staticmethod
    def _tmp(path: Path) -> Path:
        return path.with_name(path.name + ".tmp")

    def write(self, chunk: list[str], ids: list[list[int]]) -> None:
        first = self.stats["docs"]
        val = [is_val_doc(first + i, self.seed, self.val_fraction) for i in range(len(chunk))]
        for split, f in self.files.items():
            mine = [d for d, v in zip(ids, val, strict=True) if v == (split == "val")]
            arr = _flat(mine, self.eot_id, self.dtype)
            f.write(arr.tobytes())
            self.stats[f"tokens_{split}"] += int(arr.size)
            self.stats[f"docs_{split}"] += len(mine)
        self.stats["docs"] += len(chunk)
        self.stats["bytes"] += sum(len(d.encode("utf-8")) for d in chunk)

    def close(self, complete: bool) -> None:
        """Close the files; rename them into place only when the whole source was written."""
        for f in self.files.values():
            f.close()
        for p in self.paths.values():
            if complete:
                self._tmp(p).replace(p)
            else:
                self._tmp(p).unlink(missing_ok=True)


def pack_source(
    docs: Iterable[str],
    encode_batch: EncodeBatch,
    eot_id: int,
    out_path: str | os.PathLike,
    *,
    dtype: np.dtype | str = np.uint16,
    val_fraction: float = 0.0,
    seed: int = 0,
    workers: int = 1,
    chunk_docs: int = CHUNK_DOCS,
    threads: int = 1,
) -> dict:
    """Tokenize `docs` into `<out_path>.train.bin` (+ `.val.bin` when val_fraction > 0).

    `workers` > 1 encodes in a process pool; with one worker, `threads` threads encode. Both
    default to 1: on 2 shared cores neither paid (docs/performance.md). Returns counts (docs, bytes, tokens_train, tokens_val,
    docs_train, docs_val), the dtype name and the paths (val_path None without a
    validation split).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction {val_fraction} must be in [0, 1); e.g. 0.05")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = _SplitWriter(out, val_fraction, eot_id, np.dtype(dtype), seed)
    complete = False
    try:
        for chunk, ids in _encoded(_chunks(docs, chunk_docs), encode_batch, workers, threads):
            writer.write(chunk, ids)
        complete = True
    finally:
        writer.close(complete)
    val_path = str(writer.paths["val"]) if "val" in writer.paths else None
    return writer.stats | {
        "dtype": np.dtype(dtype).name,
        "train_path": str(writer.paths["train"]),
        "val_path": val_path,
    }


# ---------------------------------------------------------------- batches from a mixture


class MixtureBatches:
    """B×T next-token batches drawn from several packed token files by mixture weight."""

    def __init__(
        self,
        paths: dict[str, str | os.PathLike],
        weights: dict[str, float],
        batch_size: int,
        block_size: int,
        *,
        seed: int = 0,
        dtype: np.dtype | str = np.uint16,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        assert 0 <= rank < world_size, f"rank {rank} outside world of {world_size}"
        self.names = list(paths)
        self.B, self.T, self.rank, self.world_size = batch_size, block_size, rank, world_size
        self.probs = _normalised(weights, self.names)
        self.data = {n: _open_tokens(n, paths[n], np.dtype(dtype), block_size) for n in self.names}
        self.lens = np.array([len(self.data[n]) for n in self.names], dtype=np.int64)
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.rows_drawn = dict.fromkeys(self.names, 0)
        self.tokens_drawn = dict.fromkeys(self.names, 0)

    def _draw_global(self) -> tuple[np.ndarray, np.ndarray]:
        """Source index and start offset of every row of the global batch."""
        G = self.B * self.world_size
        src = self.rng.choice(len(self.names), size=G, p=self.probs)  # (G,)
        starts = self.rng.integers(0, self.lens[src] - self.T)  # (G,) window of T+1 fits
        for i in src:
            self.rows_drawn[self.names[i]] += 1
            self.tokens_drawn[self.names[i]] += self.T
        return src, starts

    def next_batch(
        self, device: str | torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's rows of the next global batch: x, y int64 of shape (B, T), y = x shifted."""
        src, starts = self._draw_global()
        mine = range(self.rank * self.B, (self.rank + 1) * self.B)
        rows = [self.data[self.names[src[r]]][starts[r] : starts[r] + self.T + 1] for r in mine]
        w = torch.from_numpy(np.stack(rows).astype(np.int64))  # (B, T+1)
        x, y = w[:, :-1], w[:, 1:]  # (B, T) each
        if device is not None and torch.device(device).type == "cuda":
            return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(
                device, non_blocking=True
            )
        return x.contiguous(), y.contiguous()

    def drawn_shares(self) -> dict[str, float]:
        """Share of all rows drawn so far that came from each source."""
        total = sum(self.rows_drawn.values())
        return {n: (self.rows_drawn[n] / total if total else 0.0) for n in self.names}

    def state_dict(self) -> dict:
        """Everything needed to continue the exact sequence of batches."""
        return {
            "names": list(self.names),
            "bit_generator": self.rng.bit_generator.state,
            "rows_drawn": dict(self.rows_drawn),
            "tokens_drawn": dict(self.tokens_drawn),
        }

    def load_state_dict(self, state: dict) -> None:
        if state["names"] != self.names:
            raise UserError(
                f"the saved data position is for sources {state['names']}, not {self.names}; "
                "resume with the same sources as the original run"
            )
        self.rng.bit_generator.state = state["bit_generator"]
        self.rows_drawn = dict(state["rows_drawn"])
        self.tokens_drawn = dict(state["tokens_drawn"])


def _normalised(weights: dict[str, float], names: list[str]) -> np.ndarray:
    missing = [n for n in names if n not in weights]
    if missing or set(weights) - set(names):
        raise UserError(
            f"mixture weights are for {sorted(weights)} but the sources are {names}; "
            "give exactly one weight per source"
        )
    for n in names:
        if not weights[n] > 0:
            raise UserError(f"mixture weight of source {n!r} is {weights[n]}; weights must be > 0")
    w = np.array([float(weights[n]) for n in names])
    return w / w.sum()


def _open_tokens(
    name: str, path: str | os.PathLike, dtype: np.dtype, block_size: int
) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"token file {p} of source {name!r} does not exist; pack the source first")
    n = p.stat().st_size // dtype.itemsize
    if n < block_size + 1:
        raise UserError(
            f"source {name!r} has {n} tokens, fewer than block_size + 1 = {block_size + 1}; "
            f"add text to it or set a block_size below {n}"
        )
    return np.memmap(p, dtype=dtype, mode="r")


def mixture_report(
    stats_per_source: dict[str, dict], weights: dict[str, float], drawn: dict[str, int]
) -> list[dict]:
    """One row per source: docs, bytes, tokens, weight, drawn_share, epochs seen.

    `drawn` is tokens drawn per source (MixtureBatches.tokens_drawn); tokens in a source are
    its `tokens_train` (as pack_source counts them) or `tokens`.
    """
    total_w = sum(weights.values()) or 1.0
    total_drawn = sum(drawn.values())
    rows = []
    for name, s in stats_per_source.items():
        tokens = int(s.get("tokens_train", s.get("tokens", 0)))
        got = drawn.get(name, 0)
        rows.append(
            {
                "source": name,
                "docs": int(s.get("docs", 0)),
                "bytes": int(s.get("bytes", 0)),
                "tokens": tokens,
                "weight": weights.get(name, 0.0) / total_w,
                "drawn_share": got / total_drawn if total_drawn else 0.0,
                "epochs": got / tokens if tokens else 0.0,
            }
        )
    return rows
