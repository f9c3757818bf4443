"""Small pieces of the generation loop: token choice, incremental detokenising, stop strings.

Kept apart from engines.generate so each can be tested by hand:

    sample_next(logits, temperature=0.0, top_k=0, top_p=1.0, generator=None)  # greedy ids (B,)
    dec = IncrementalDecoder(tok, context=prompt_ids); dec.push(token_id) -> new text
    StopMatcher(["\\n\\n"]).find(text) -> index of the first stop string, or None
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

CONTEXT_TOKENS = 4  # prompt tokens kept as decoding context (a first token keeps its space)


def sample_next(
    logits: torch.Tensor,
    temperature: float,
    top_k: int,
    top_p: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Next token id per row (B,) from scores (B, V): greedy at temperature 0, else sampled."""
    if temperature == 0:
        return logits.argmax(-1)
    scores = logits / temperature
    if 0 < top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[:, -1:]  # (B, 1)
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1.0:
        scores = _top_p(scores, top_p)
    probs = torch.softmax(scores, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _top_p(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of top tokens whose probability reaches top_p (at least one)."""
    sorted_scores, order = scores.sort(dim=-1, descending=True)  # (B, V)
    probs = sorted_scores.softmax(-1)
    drop = probs.cumsum(-1) - probs > top_p  # mass before this token already reaches top_p
    sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
    return torch.full_like(scores, float("-inf")).scatter(-1, order, sorted_scores)


class IncrementalDecoder:
    """Turns tokens into text as they arrive, never splitting a multi-byte character.

    Decodes a short window twice per token (with and without the new token) and emits the
    difference once it no longer ends in U+FFFD; prompt context keeps a first token's space.
    """

    def __init__(self, tok: Any, context: Sequence[int] = ()) -> None:
        self.tok = tok
        self.ids = list(context)[-CONTEXT_TOKENS:]
        self.prefix = 0
        self.read = len(self.ids)

    def _text(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def push(self, token: int) -> str:
        """Add a token; return the text it completes ("" while a character is still partial)."""
        self.ids.append(token)
        before = self._text(self.ids[self.prefix : self.read])
        after = self._text(self.ids[self.prefix :])
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return after[len(before) :]

    def flush(self) -> str:
        """Whatever is still held back (a trailing partial character comes out as U+FFFD)."""
        if self.read == len(self.ids):
            return ""
        before = self._text(self.ids[self.prefix : self.read])
        after = self._text(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return after[len(before) :]


class StopMatcher:
    """Finds stop strings in generated text, and how much text is safe to show meanwhile."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]

    def find(self, text: str) -> int | None:
        """Index where the earliest stop string starts, or None."""
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        return min(hits) if hits else None

    def safe_length(self, text: str) -> int:
        """Length of the prefix of `text` that cannot turn into the start of a stop string."""
        held = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), held, -1):
                if text.endswith(stop[:n]):
                    held = n
                    break
        return len(text) - held
