"""Byte-level BPE: special-token ids, round trips, chat template, errors, tiktoken parity."""

from __future__ import annotations

import pickle
import re
import sysconfig
from pathlib import Path

import pytest

from engines.chat import encode_conversation
from engines.errors import UserError
from engines.tasks import synthetic_documents
from engines.tokenizer import (
    CHAT_TEMPLATE,
    PROBE_TEXTS,
    SPECIAL_TOKENS,
    HFEncoder,
    TiktokenEncoder,
    bytes_per_token,
    fast_encoder,
    load_tokenizer,
    token_pieces,
    train_bpe,
)

VARIED = [
    "Grüße aus Köln — naïve façade, 東京タワー, Ελληνικά, עברית, 🐍🔥 and 👩‍💻",
    "class Foo(Bar):\n    def __init__(self, x: int = 42) -> None:\n\t\tself.x = x  # set\n",
    "spaces:     five, tabs:\t\t\t, newlines:\n\n\n\r\n\r\n, mixed: \t \n \u3000 \u00a0end",
    "numbers 0 12 345 6789 3.14159 1e-9 0xDEADBEEF 1,234,567",
    "CAPS DON'T WON'T I'LL we're they've he'd she's it's",
    "<|endoftext|><|user|> hi <|end|> literal specials <|pad|>",
    "",
    " ",
    "x" * 300,
]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    stories = list(synthetic_documents("stories", 150, seed=0))
    tasks = list(synthetic_documents("tasks", 30, seed=0))
    return stories + tasks + VARIED[:3]


@pytest.fixture(scope="module")
def tok(corpus):
    return train_bpe(corpus, 500)


def test_special_tokens_have_ids_0_to_6(tok):
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(7))
    assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id == 0
    assert tok.pad_token == "<|pad|>" and tok.pad_token_id == 1
    assert tok.bos_token_id == 0
    assert len(tok) == 500
    assert tok("<|reward|>", add_special_tokens=False)["input_ids"] == [6]


@pytest.mark.parametrize("text", VARIED)
def test_round_trip(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text


def test_numbers_split_into_single_digits(tok):
    pieces = [p for _, p in token_pieces(tok, "12345")]
    assert pieces == list("12345")


def test_chat_template_renders(tok):
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert text == (
        "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n"
    )
    prompt = tok.apply_chat_template(msgs[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|user|>\nHi<|end|>\n<|assistant|>\n")
    enc = encode_conversation(tok, msgs)  # the one place SFT masks come from
    assert tok.decode([i for i, m in zip(enc.ids, enc.mask, strict=True) if m]) == "Hello!<|end|>\n"
    assert tok.chat_template == CHAT_TEMPLATE


def test_chat_template_rejects_unknown_role(tok):
    with pytest.raises(Exception, match="chat role must be"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_too_small_vocab_names_the_fix():
    with pytest.raises(UserError, match=r"vocab_size 200 is too small.*263.*tokenizer.vocab_size"):
        train_bpe(["hello"], 200)


def test_save_and_load(tok, tmp_path):
    tok.save_pretrained(tmp_path / "tok")
    again = load_tokenizer(tmp_path / "tok")
    text = "Once upon a time <|user|> 42"
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert again.chat_template == tok.chat_template
    assert again.pad_token_id == 1


def test_load_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=str(tmp_path / "nope")):
        load_tokenizer(tmp_path / "nope")


def test_token_pieces_cover_the_text(tok):
    text = "Once héllo 日本 <|user|> x"
    pieces = token_pieces(tok, text)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert [i for i, _ in pieces] == ids
    assert (3, "<|user|>") in pieces
    joined = "".join(p for _, p in pieces)
    assert joined.startswith("Once") and joined.endswith(" x")
    assert "\\x" in joined  # 日 and 本 are split into bytes by a 500-token vocab
    # whole characters come out as themselves, split UTF-8 bytes as \xNN escapes
    parts = re.split(r"\\x([0-9a-f]{2})", joined)
    raw = b"".join(bytes([int(p, 16)]) if k % 2 else p.encode() for k, p in enumerate(parts))
    assert raw.decode() == text


def test_bytes_per_token(tok, corpus):
    bpt = bytes_per_token(tok, corpus[:20])
    assert 1.0 < bpt < 10.0
    assert bytes_per_token(tok, []) == 0.0


def _stdlib_sample(n: int, skip: int) -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(root.glob("*.py"))[skip : skip + n]
    return [f.read_text(encoding="utf-8", errors="replace") for f in files]


def test_tiktoken_gives_identical_ids():
    train = _stdlib_sample(12, skip=0) + VARIED
    tok = train_bpe(train, 1500)
    encode = fast_encoder(tok)
    assert isinstance(encode, TiktokenEncoder), "tiktoken should reproduce our own BPE"
    held_out = _stdlib_sample(8, skip=40) + VARIED + PROBE_TEXTS
    held_out += list(synthetic_documents("tasks", 5)) + ["ab" * 500, "\n" * 40 + " " * 40]
    assert encode(held_out) == HFEncoder(tok)(held_out)
    # specials inside a document stay ordinary text (a document must not end early)
    assert 0 not in encode(["a <|endoftext|> b"])[0]
    # picklable, for the packing process pool
    assert pickle.loads(pickle.dumps(encode))(["hello"]) == encode(["hello"])


def test_fast_encoder_falls_back_for_other_tokenizers(tok):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    other = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    encode = fast_encoder(other)
    assert isinstance(encode, HFEncoder)
    assert encode(["A b"]) == [[1, 0]]
