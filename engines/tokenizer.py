"""Byte-level BPE tokenizers trained here, wrapped as transformers tokenizers.

A tokenizer trained by `train_bpe` is an ordinary `PreTrainedTokenizerFast`: it saves with
`save_pretrained`, loads with `AutoTokenizer` without this project, and carries the special
tokens for end-of-text, padding, chat roles and the reward readout, plus a Jinja chat template.

The pre-tokenizer splits text with a GPT-4-style regex, but numbers into single digits (so
arithmetic sees digits) before the byte-level mapping. `fast_encoder` rebuilds the same BPE
in tiktoken, which gives identical ids several times faster, for the packing hot path.

    tok = train_bpe(texts, vocab_size=4096)
    tok.save_pretrained("my-tok"); tok = load_tokenizer("my-tok")
    encode_batch = fast_encoder(tok); ids = encode_batch(["hello world"])
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from engines.errors import UserError
from engines.vocab import EOT, MIN_VOCAB, N_BYTES, PAD, SPECIAL_TOKENS

EncodeBatch = Callable[[list[str]], list[list[int]]]

# Words with an optional leading non-letter, single digits, punctuation runs, newlines, spaces.
SPLIT_PATTERN = (
    r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Role headers, then the content and <|end|>. The SFT loss mask comes from engines.chat
# (rendering growing prefixes), which works for this template and any standard one.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
    "{{ raise_exception('chat role must be system, user or assistant, not ' + message['role']) }}"
    "{%- endif -%}"
    "{{ '<|' + message['role'] + '|>\n' }}"
    "{{ message['content'] + '<|end|>' }}"
    "{{ '\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- endif -%}"
)


def _backend(vocab_size: int, min_frequency: int) -> tuple[Tokenizer, trainers.BpeTrainer]:
    """An untrained byte-level BPE tokenizer and its trainer."""
    # ignore_merges: a whole pre-token found in the vocab is one token, as tiktoken does.
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,  # first, so their ids are 0..6
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return tok, trainer


def train_bpe(
    texts: Iterable[str],
    vocab_size: int,
    *,
    min_frequency: int = 2,
    model_max_length: int = 2048,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts` (streamed) and wrap it as a transformers tokenizer."""
    if vocab_size < MIN_VOCAB:
        raise UserError(
            f"vocab_size {vocab_size} is too small: byte-level BPE needs at least {MIN_VOCAB} "
            f"({N_BYTES} bytes + {len(SPECIAL_TOKENS)} special tokens); "
            f"set tokenizer.vocab_size ≥ {MIN_VOCAB}"
        )
    backend, trainer = _backend(vocab_size, min_frequency)
    backend.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOT,
        bos_token=EOT,
        pad_token=PAD,
        additional_special_tokens=SPECIAL_TOKENS[2:],
        chat_template=CHAT_TEMPLATE,
        model_max_length=model_max_length,
    )


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """A tokenizer from a local folder (ours or any transformers one); never the network."""
    folder = Path(path).expanduser()
    if (
        not (folder / "tokenizer.json").is_file()
        and not (folder / "tokenizer_config.json").is_file()
    ):
        raise UserError(
            f"no tokenizer in {folder}: expected tokenizer.json there; "
            "train one with `workbench tokenizer train` or point to a model folder"
        )
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as err:
        raise UserError(f"could not load the tokenizer in {folder}: {err}") from err


# ---------------------------------------------------------------- inspecting tokens


@cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level map inverted: printable stand-in character → byte."""
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    visible += range(ord("®"), ord("ÿ") + 1)
    chars, extra = {b: chr(b) for b in visible}, 0
    for b in range(N_BYTES):
        if b not in chars:
            chars[b], extra = chr(N_BYTES + extra), extra + 1
    return {ch: b for b, ch in chars.items()}


def _is_byte_level(tok: PreTrainedTokenizerFast) -> bool:
    return type(tok.backend_tokenizer.decoder).__name__ == "ByteLevel"


def token_bytes(tok: PreTrainedTokenizerFast, token_id: int) -> bytes:
    """The bytes one (non-special) token of a byte-level tokenizer stands for."""
    table = _byte_decoder()
    return bytes(table[ch] for ch in tok.convert_ids_to_tokens(token_id))


def token_pieces(tok: PreTrainedTokenizerFast, text: str) -> list[tuple[int, str]]:
    """Each token id of `text` with the text it covers; partial UTF-8 shown as \\xNN escapes."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    special = set(tok.all_special_ids) | set(tok.added_tokens_decoder)
    byte_level = _is_byte_level(tok)
    pieces = []
    for i in ids:
        if i in special:
            piece = tok.convert_ids_to_tokens(i)
        elif byte_level:
            piece = token_bytes(tok, i).decode("utf-8", errors="backslashreplace")
        else:
            piece = tok.decode([i])
        pieces.append((i, piece))
    return pieces


def bytes_per_token(tok: PreTrainedTokenizerFast, texts: Iterable[str]) -> float:
    """UTF-8 bytes per token over `texts` (higher is better compression); 0.0 for no tokens."""
    texts = list(texts)
    n_tokens = sum(map(len, HFEncoder(tok)(texts)))
    return sum(len(t.encode("utf-8")) for t in texts) / n_tokens if n_tokens else 0.0


# ---------------------------------------------------------------- fast batch encoding


class HFEncoder:
    """encode_batch over the tokenizer's own backend; special-token strings count as text."""

    def __init__(self, tok: PreTrainedTokenizerFast) -> None:
        self.backend = Tokenizer.from_str(tok.backend_tokenizer.to_str())
        self.backend.encode_special_tokens = True

    def __call__(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.backend.encode_batch(texts, add_special_tokens=False)]


class TiktokenEncoder:
    """encode_batch through tiktoken built from the same vocab, merges and split regex.

    Each text is one `encode_ordinary` call, which releases the GIL (threads encoding other
    chunks run meanwhile); `encode_ordinary_batch` would start a thread pool per call, which
    cost a quarter more CPU here. With `arrays=True` each text's ids come back as a uint32
    numpy array straight from tiktoken's buffer (no Python int per token), for packing.
    """

    def __init__(self, tok: PreTrainedTokenizerFast, pattern: str, arrays: bool = False) -> None:
        import tiktoken

        table = _byte_decoder()
        added = {t.content for t in tok.backend_tokenizer.get_added_tokens_decoder().values()}
        vocab = tok.backend_tokenizer.get_vocab(with_added_tokens=False)
        ranks = {bytes(table[ch] for ch in t): i for t, i in vocab.items() if t not in added}
        specials = {t: tok.convert_tokens_to_ids(t) for t in added}
        self.encoding = tiktoken.Encoding(
            "workbench-bpe", pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials
        )
        self.arrays = arrays

    def __call__(self, texts: list[str]) -> list[list[int]]:
        if self.arrays:  # no special token is allowed: each is ordinary text, as below
            to_numpy = self.encoding.encode_to_numpy
            return [to_numpy(t, allowed_special=set(), disallowed_special=()) for t in texts]
        encode = self.encoding.encode_ordinary
        return [encode(t) for t in texts]


def _tiktoken_pattern(tok: PreTrainedTokenizerFast) -> str | None:
    """The split regex when the backend is a plain Split + ByteLevel BPE, else None."""
    spec = json.loads(tok.backend_tokenizer.to_str())
    pre, model = spec.get("pre_tokenizer") or {}, spec["model"]
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    plain_bpe = model["type"] == "BPE" and not model.get("continuing_subword_prefix")
    if spec.get("normalizer") or not plain_bpe or model.get("end_of_word_suffix"):
        return None
    if len(steps) == 1 and steps[0].get("type") == "ByteLevel" and steps[0].get("use_regex"):
        if steps[0].get("add_prefix_space"):
            return None
        return r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    split_ok = len(steps) == 2 and steps[0].get("type") == "Split"
    byte_ok = split_ok and steps[1].get("type") == "ByteLevel" and not steps[1].get("use_regex")
    if not byte_ok or steps[0].get("behavior") != "Isolated" or steps[0].get("invert"):
        return None
    return steps[0]["pattern"].get("Regex")


# Varied text on which tiktoken must match the backend before it is trusted.
PROBE_TEXTS = [
    "Hello, world! It's a fine day; we'll see. DON'T SHOUT.",
    "def f(x):\n    return x ** 2  # square\n\n\tif y != 3:\n\t\tpass\r\n",
    "Ünïcödé: naïve café, 日本語のテキスト, Привет мир, مرحبا, 🤖🚀👍🏽 emoji",
    "    leading spaces, trailing spaces    \n\n\n\n   \t \u00a0 \u2028 end",
    "12345 + 678 = 13023; 3.14159; 1,000,000; 0x1F; 2024-06-01",
    "<|endoftext|> <|user|> special-looking strings stay ordinary text <|end|>",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbb ---------- ==========",
]


def fast_encoder(
    tok: PreTrainedTokenizerFast, probe: Iterable[str] = (), *, arrays: bool = False
) -> EncodeBatch:
    """A picklable `encode_batch(list[str]) -> list[list[int]]` with the tokenizer's ids.

    Special-token strings inside the text are encoded as ordinary text (a document that
    contains "<|endoftext|>" must not end early). Uses tiktoken when the tokenizer is a plain
    byte-level BPE and tiktoken reproduces the backend's ids on PROBE_TEXTS plus `probe`;
    otherwise (other tokenizer families, or any mismatch) the tokenizer's own batch encode.
    `arrays=True`: the tiktoken encoder gives each text's ids as a uint32 numpy array (what
    `engines.packing.pack_source` writes fastest); the fallback still gives lists.
    """
    hf = HFEncoder(tok)
    pattern = _tiktoken_pattern(tok) if _is_byte_level(tok) else None
    if pattern is None:
        return hf
    try:
        fast = TiktokenEncoder(tok, pattern, arrays=arrays)
    except (ValueError, KeyError, ImportError):
        return hf  # a regex tiktoken cannot compile, or a token that is not byte-level
    texts = PROBE_TEXTS + list(probe)
    same = [list(map(int, ids)) for ids in fast(texts)] == hf(texts)
    return fast if same else hf
