"""Conversations → token ids and the SFT loss mask: the one place masks come from.

The mask is 1 on the tokens of every assistant turn (its content and the template's
end-of-turn marker, so the model learns to stop) and 0 on system and user turns and on the
template's role headers. Spans come from rendering the chat template on growing prefixes
of the conversation, so any template that renders prefixes as prefixes works (ours,
ChatML/SmolLM2, Llama-3 style); the offsets of a fast tokenizer map spans to tokens.

    ids, mask = encode_conversation(tok, [{"role": "user", "content": "2+2?"},
                                          {"role": "assistant", "content": "4"}])
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engines.errors import UserError

ROLES = ("system", "user", "assistant")
PLAIN_TEMPLATE = (
    "{% for m in messages %}"
    "{{ m['role'] | capitalize }}: {{ m['content'] }}{{ eos_token if m['role'] == 'assistant' "
    "else '' }}\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant: {% endif %}"
)


@dataclass
class Encoded:
    ids: list[int]
    mask: list[int]  # 1 where the loss applies (assistant tokens)

    @property
    def n_target(self) -> int:
        return sum(self.mask)


def ensure_chat_template(tok) -> bool:
    """Give a tokenizer without a chat template (a base model) a plain one; True if added."""
    if getattr(tok, "chat_template", None):
        return False
    tok.chat_template = PLAIN_TEMPLATE
    return True


def _render(tok, messages: list[dict], add_generation_prompt: bool) -> str:
    return tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def assistant_spans(tok, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans of each assistant turn."""
    full = _render(tok, messages, add_generation_prompt=False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = _render(tok, messages[:i], add_generation_prompt=True) if i else ""
        after = _render(tok, messages[: i + 1], add_generation_prompt=False)
        if not (full.startswith(after) and after.startswith(before)):
            raise UserError(
                "this chat template does not render a conversation's prefixes as prefixes, "
                "so assistant tokens cannot be located; use a model with a standard template"
            )
        spans.append((len(before), len(after)))
    return full, spans


def encode_conversation(tok, messages: list[dict], max_len: int | None = None) -> Encoded:
    """Token ids of the rendered conversation and its assistant-token loss mask."""
    text, spans = assistant_spans(tok, messages)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    mask = [int(any(s <= start < e for s, e in spans)) for start, _ in offsets]
    if max_len is not None:
        ids, mask = ids[:max_len], mask[:max_len]
    return Encoded(ids, mask)


def validate_messages(messages: object, where: str) -> list[dict]:
    """Check a conversation's shape; errors name `where` (file:line)."""
    if not isinstance(messages, list) or not messages:
        raise UserError(f"{where}: 'messages' must be a non-empty list of {{role, content}}")
    for j, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise UserError(f"{where}: message {j} needs 'role' and 'content'")
        if m["role"] not in ROLES:
            raise UserError(
                f"{where}: message {j} has unknown role {m['role']!r}; use one of {ROLES}"
            )
        if not isinstance(m["content"], str):
            raise UserError(f"{where}: message {j} content must be a string")
    if not any(m["role"] == "assistant" for m in messages):
        raise UserError(f"{where}: the conversation has no assistant turn to learn from")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def record_to_messages(record: object, where: str) -> list[dict]:
    """A JSONL record in either common shape → messages."""
    if not isinstance(record, dict):
        raise UserError(f"{where}: expected a JSON object")
    if "messages" in record:
        return validate_messages(record["messages"], where)
    if "prompt" in record and "completion" in record:
        msgs = [
            {"role": "user", "content": record["prompt"]},
            {"role": "assistant", "content": record["completion"]},
        ]
        return validate_messages(msgs, where)
    keys = ", ".join(sorted(record)) or "none"
    raise UserError(
        f"{where}: missing field: expected 'messages' or 'prompt' + 'completion' (found: {keys})"
    )


def read_conversations(path: str | Path) -> Iterator[list[dict]]:
    """Conversations from a JSONL file; malformed lines are errors naming file and line."""
    path = Path(path)
    try:
        f = path.open(encoding="utf-8")
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
            yield record_to_messages(record, where)


END_OF_TURN = ("<|end|>", "<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|endoftext|>")


def end_of_turn_ids(tok) -> list[int]:
    """Ids that end an assistant turn for this tokenizer: its eos and any known turn marker."""
    vocab = tok.get_vocab()
    ids = {vocab[t] for t in END_OF_TURN if t in vocab}
    if tok.eos_token_id is not None:
        ids.add(tok.eos_token_id)
    return sorted(ids)


def set_turn_ends(model, tok) -> None:
    """Make generation stop at the end of an assistant turn (saved in generation_config)."""
    ends = end_of_turn_ids(tok)
    model.generation_config.eos_token_id = ends
    model.config.eos_token_id = ends[0] if len(ends) == 1 else ends
