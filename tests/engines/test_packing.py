"""Packing token files and drawing mixture batches: separators, splits, shares, resume, ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engines.errors import UserError
from engines.packing import MixtureBatches, mixture_report, pack_source, token_dtype

torch.set_num_threads(1)
EOT = 0


def byte_ids(texts: list[str]) -> list[list[int]]:
    """A stand-in tokenizer: one id per UTF-8 byte, shifted past the special ids."""
    return [[b + 7 for b in t.encode()] for t in texts]


def read(path: str | Path, dtype=np.uint16) -> list[int]:
    return np.fromfile(path, dtype=dtype).tolist()


def split_docs(tokens: list[int]) -> list[str]:
    docs, cur = [], []
    for t in tokens:
        if t == EOT:
            docs.append(bytes(b - 7 for b in cur).decode())
            cur = []
        else:
            cur.append(t)
    assert not cur, "the file must end with an end-of-text token"
    return docs


DOCS = [f"document number {i} " + "x" * (i % 7) for i in range(300)]


def test_eot_after_every_document(tmp_path):
    stats = pack_source(["ab", "c", "", "dé"], byte_ids, EOT, tmp_path / "s")
    tokens = read(tmp_path / "s.train.bin")
    assert tokens == [104, 105, EOT, 106, EOT, EOT, 107, 202, 176, EOT]
    assert stats["docs"] == 4 and stats["bytes"] == 6 and stats["tokens_train"] == 10
    assert stats["val_path"] is None and not (tmp_path / "s.val.bin").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "s.train.bin"]  # no .tmp left behind


def test_val_split_is_by_document_and_deterministic(tmp_path):
    a = pack_source(DOCS, byte_ids, EOT, tmp_path / "a", val_fraction=0.2, seed=1, chunk_docs=16)
    b = pack_source(iter(DOCS), byte_ids, EOT, tmp_path / "b", val_fraction=0.2, seed=1)
    c = pack_source(DOCS, byte_ids, EOT, tmp_path / "c", val_fraction=0.2, seed=2)
    train, val = split_docs(read(a["train_path"])), split_docs(read(a["val_path"]))
    assert sorted(train + val) == sorted(DOCS) and not set(train) & set(val)
    assert 30 < len(val) < 90 and a["docs_val"] == len(val) and a["docs_train"] == len(train)
    assert a["tokens_train"] + a["tokens_val"] == sum(len(d.encode()) + 1 for d in DOCS)
    # same seed, other chunking and a generator: the same files; another seed: another split
    assert read(b["val_path"]) == read(a["val_path"])
    assert read(c["val_path"]) != read(a["val_path"])


def test_dtype(tmp_path):
    assert token_dtype(50_000) == np.uint16 and token_dtype(70_000) == np.uint32
    big = lambda texts: [[70_000, 1] for _ in texts]
    stats = pack_source(["x"], big, EOT, tmp_path / "w", dtype="uint32")
    assert stats["dtype"] == "uint32"
    assert read(tmp_path / "w.train.bin", np.uint32) == [70_000, 1, EOT]
    with pytest.raises(AssertionError, match="uint32"):
        pack_source(["x"], big, EOT, tmp_path / "n", dtype=np.uint16)
    assert not (tmp_path / "n.train.bin").exists() and not list(tmp_path.glob("*.tmp"))


def test_worker_pool_gives_the_same_file(tmp_path):
    one = pack_source(DOCS, byte_ids, EOT, tmp_path / "one", chunk_docs=32)
    two = pack_source(DOCS, byte_ids, EOT, tmp_path / "two", chunk_docs=32, workers=2)
    assert read(two["train_path"]) == read(one["train_path"])
    assert two["docs"] == one["docs"] == len(DOCS)


def test_real_tokenizer_round_trip(tmp_path):
    from engines.tokenizer import fast_encoder, train_bpe

    docs = ["Once upon a time, a fox.", "def f(x):\n    return x", "naïve — ok <|end|>"]
    tok = train_bpe(docs * 5, 300)
    stats = pack_source(docs, fast_encoder(tok), tok.eos_token_id, tmp_path / "t")
    tokens = read(stats["train_path"])
    assert tokens.count(tok.eos_token_id) == 3 and tokens[-1] == tok.eos_token_id
    assert tok.decode(tokens) == "<|endoftext|>".join(docs) + "<|endoftext|>"


# ---------------------------------------------------------------- MixtureBatches


@pytest.fixture
def two_sources(tmp_path) -> dict[str, Path]:
    """Source a holds tokens 0..4999 in order, source b holds 10000..12999."""
    paths = {"a": tmp_path / "a.bin", "b": tmp_path / "b.bin"}
    np.arange(5000, dtype=np.uint16).tofile(paths["a"])
    np.arange(10000, 13000, dtype=np.uint16).tofile(paths["b"])
    return paths


def mixture(paths, B=8, T=16, **kw) -> MixtureBatches:
    return MixtureBatches(paths, {"a": 0.8, "b": 0.2}, B, T, seed=kw.pop("seed", 0), **kw)


def test_batch_shapes_and_shift(two_sources):
    x, y = mixture(two_sources).next_batch()
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(y, x + 1)  # every row is one contiguous window of its source


def test_drawn_shares_follow_weights(two_sources):
    mb = mixture(two_sources)
    from_b = 0
    for _ in range(250):  # 2000 rows
        x, _ = mb.next_batch()
        from_b += int((x[:, 0] >= 10000).sum())
    shares = mb.drawn_shares()
    assert abs(shares["a"] - 0.8) < 0.02 and abs(shares["b"] - 0.2) < 0.02
    assert mb.rows_drawn["b"] == from_b and sum(mb.rows_drawn.values()) == 2000
    assert mb.tokens_drawn["a"] == mb.rows_drawn["a"] * 16


def test_state_dict_resume_continues_exactly(two_sources):
    mb = mixture(two_sources, seed=3)
    for _ in range(5):
        mb.next_batch()
    state = mb.state_dict()
    expected = [mb.next_batch() for _ in range(3)]
    resumed = mixture(two_sources, seed=999)
    resumed.load_state_dict(state)
    for (x, y), (rx, ry) in zip(expected, [resumed.next_batch() for _ in range(3)], strict=True):
        assert torch.equal(x, rx) and torch.equal(y, ry)
    assert resumed.rows_drawn == mb.rows_drawn and resumed.tokens_drawn == mb.tokens_drawn
    other = MixtureBatches({"b": two_sources["b"]}, {"b": 1.0}, 8, 16)
    with pytest.raises(UserError, match="same sources"):
        other.load_state_dict(state)


def test_ranks_slice_the_single_process_global_batch(two_sources):
    single = mixture(two_sources, B=8, seed=5)
    ranks = [mixture(two_sources, B=4, seed=5, rank=r, world_size=2) for r in (0, 1)]
    for _ in range(4):
        x, y = single.next_batch()
        parts = [mb.next_batch() for mb in ranks]
        assert torch.equal(torch.cat([p[0] for p in parts]), x)
        assert torch.equal(torch.cat([p[1] for p in parts]), y)
    assert ranks[0].rows_drawn == ranks[1].rows_drawn == single.rows_drawn


def test_mixture_user_errors(two_sources, tmp_path):
    short = tmp_path / "short.bin"
    np.arange(10, dtype=np.uint16).tofile(short)
    with pytest.raises(UserError, match=r"source 'short' has 10 tokens.*block_size below 10"):
        MixtureBatches({"short": short}, {"short": 1}, 2, 16)
    with pytest.raises(UserError, match=r"weight of source 'b' is 0.*> 0"):
        MixtureBatches(two_sources, {"a": 1, "b": 0}, 2, 16)
    with pytest.raises(UserError, match="one weight per source"):
        MixtureBatches(two_sources, {"a": 1}, 2, 16)
    with pytest.raises(UserError, match="does not exist"):
        MixtureBatches({"a": tmp_path / "nope.bin"}, {"a": 1}, 2, 16)


def test_weights_are_normalised(two_sources):
    a = MixtureBatches(two_sources, {"a": 8, "b": 2}, 4, 8, seed=1)
    b = MixtureBatches(two_sources, {"a": 0.8, "b": 0.2}, 4, 8, seed=1)
    assert torch.equal(a.next_batch()[0], b.next_batch()[0])


def test_mixture_report():
    stats = {"a": {"docs": 10, "bytes": 100, "tokens_train": 50}, "b": {"docs": 1, "tokens": 20}}
    rows = mixture_report(stats, {"a": 3, "b": 1}, {"a": 75, "b": 25})
    assert rows[0] == {
        "source": "a",
        "docs": 10,
        "bytes": 100,
        "tokens": 50,
        "weight": 0.75,
        "drawn_share": 0.75,
        "epochs": 1.5,
    }
    assert rows[1]["tokens"] == 20 and rows[1]["epochs"] == 1.25
