"""SFT encoding: the loss mask is 1 exactly on assistant tokens, checked position by position."""

from __future__ import annotations

import json

import pytest

from engines.chat import (
    encode_conversation,
    end_of_turn_ids,
    ensure_chat_template,
    read_conversations,
)
from engines.errors import UserError
from engines.tokenizer import train_bpe

CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And 3 + 3?"},
    {"role": "assistant", "content": "6"},
]


@pytest.fixture(scope="module")
def tok():
    text = ["What is 2 + 2? And 3 + 3? Be brief. The answer is 4 and 6."] * 20
    return train_bpe(text, 300)


def test_mask_marks_assistant_content_and_end_of_turn_only(tok):
    enc = encode_conversation(tok, CONV)
    pieces = [tok.decode([i]) for i in enc.ids]
    masked = "".join(p for p, m in zip(pieces, enc.mask) if m)
    unmasked = "".join(p for p, m in zip(pieces, enc.mask) if not m)
    # Our template: "<|role|>\n{content}<|end|>\n" per message.
    assert masked == "4<|end|>\n6<|end|>\n"
    assert "What is 2 + 2?" in unmasked and "<|assistant|>" in unmasked
    # position by position, against spans found by searching the rendered text
    text = tok.apply_chat_template(CONV, tokenize=False)
    spans = []
    for answer in ("4", "6"):
        turn = f"<|assistant|>\n{answer}<|end|>\n"
        at = text.index(turn)
        spans.append((at + len("<|assistant|>\n"), at + len(turn)))
    expected, pos = [], 0
    for p in pieces:
        expected.append(int(any(a <= pos < b for a, b in spans)))
        pos += len(p)
    assert pos == len(text)
    assert enc.mask == expected


def test_chatml_template_mask(tok):
    from tests.engines.tinylm import tiny_tokenizer

    t = tiny_tokenizer()
    enc = encode_conversation(t, CONV[1:3])
    masked = "".join(t.decode([i]) for i, m in zip(enc.ids, enc.mask) if m)
    assert masked == "4<|im_end|>\n"


def test_plain_template_for_base_models():
    from tests.engines.tinylm import tiny_tokenizer

    base = tiny_tokenizer.__wrapped__(chat_template=False)
    assert ensure_chat_template(base)
    enc = encode_conversation(base, CONV[1:3])
    masked = "".join(base.decode([i]) for i, m in zip(enc.ids, enc.mask) if m)
    assert masked.startswith("4") and base.eos_token in masked


def test_truncation_and_turn_ends(tok):
    enc = encode_conversation(tok, CONV, max_len=5)
    assert len(enc.ids) == 5 and enc.n_target == 0
    ends = end_of_turn_ids(tok)
    assert tok.convert_tokens_to_ids("<|end|>") in ends and tok.eos_token_id in ends


@pytest.mark.parametrize(
    "line,needle",
    [
        ("{not json", "not valid JSON"),
        ('{"messages": [{"role": "robot", "content": "hi"}]}', "unknown role 'robot'"),
        ('{"prompt": "hi"}', "missing field"),
        ('{"messages": [{"role": "user", "content": "hi"}]}', "no assistant turn"),
    ],
)
def test_bad_jsonl_names_file_and_line(tmp_path, line, needle):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n" + line + "\n")
    with pytest.raises(UserError) as err:
        list(read_conversations(path))
    assert f"{path}:2" in str(err.value) and needle in str(err.value)
