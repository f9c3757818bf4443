"""Constrained output (JSON schema, regex, choice, any guidance grammar) as a logits processor.

Grammars are compiled by llguidance (the engine under guidance) and applied on our own
generation loop: before each token, every row's matcher computes which tokens may come next
and the rest are masked to -inf; the tokens a row sampled are fed back to its matcher on the
next call. Once a grammar is complete only end-of-sequence stays allowed, so the row ends.

    proc = json_schema_processor(tok, {"type": "object", "properties": {...}})
    out = generate(model, tok, [prompt], SamplingParams(temperature=0), logits_processor=proc)

(guidance 0.3.1 drives the model itself and crops the KV cache in a way transformers >= 5.18
rejects, so we use its grammar engine, not its model loop. A guidance grammar node works too:
`grammar_processor(tok, guidance.select(["yes", "no"]))`.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch

from engines.errors import UserError

# JSON written the way json.dumps writes it ('{"a": 1, "b": 2}'): free whitespace would let
# a small model stall in endless spaces, and these separators are what models see most.
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}

_LL_TOKENIZERS: dict[int, tuple[Any, Any]] = {}


def ll_tokenizer(tok: Any) -> Any:
    """The llguidance tokenizer for a fast HF tokenizer (built once per tokenizer, ~1 s)."""
    cached = _LL_TOKENIZERS.get(id(tok))
    if cached is not None and cached[0] is tok:
        return cached[1]
    import llguidance.hf

    try:
        lltok = llguidance.hf.from_tokenizer(tok)
    except ValueError as exc:
        raise UserError(
            f"constrained output needs a fast tokenizer (tokenizer.json); "
            f"{getattr(tok, 'name_or_path', 'this model')} has {type(tok).__name__}: {exc}"
        ) from exc
    _LL_TOKENIZERS[id(tok)] = (tok, lltok)
    return lltok


class GrammarProcessor:
    """Masks, per row, the tokens an llguidance grammar forbids (a generate() logits processor).

    One matcher per batch row, created on the first step; a call where no row has generated
    anything yet starts a fresh run, so one processor can serve several generate() calls.
    """

    def __init__(self, tok: Any, grammar: str, what: str) -> None:
        from llguidance import LLMatcher

        self.lltok = ll_tokenizer(tok)
        is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar, self.lltok)
        if is_error:
            raise UserError(f"invalid {what}: {messages[0]}")
        self.grammar, self.what = grammar, what
        self.matchers: dict[int, Any] = {}
        self.consumed: dict[int, int] = {}

    def _matcher(self, row: int) -> Any:
        from llguidance import LLMatcher

        if row not in self.matchers:
            self.matchers[row] = LLMatcher(self.lltok, self.grammar, log_level=0)
            self.consumed[row] = 0
        return self.matchers[row]

    def _advance(self, row: int, tokens: Sequence[int]) -> Any:
        matcher = self._matcher(row)
        new = list(tokens[self.consumed[row] :])
        if new and not matcher.consume_tokens(new):
            raise AssertionError(
                f"{self.what}: row {row} took a masked token: {matcher.get_error()}"
            )
        self.consumed[row] = len(tokens)
        return matcher

    def allowed(self, row: int, tokens: Sequence[int]) -> torch.Tensor:
        """Bool mask (V_tokenizer,) of the tokens that may follow `tokens` in this row."""
        bias = self._advance(row, tokens).compute_logit_bias()  # one byte per token: 0 or 200
        allowed = torch.frombuffer(bytearray(bias), dtype=torch.uint8) > 0
        if not allowed.any():  # finished and past end-of-sequence: only EOS makes sense
            allowed[self.lltok.eos_token] = True
        return allowed

    def __call__(
        self, rows: Sequence[int], generated: Sequence[Sequence[int]], logits: torch.Tensor
    ) -> torch.Tensor:
        if all(len(g) == 0 for g in generated):
            self.matchers.clear()
        V = logits.shape[-1]
        for i, (row, tokens) in enumerate(zip(rows, generated, strict=True)):
            allowed = self.allowed(row, tokens)[:V].to(logits.device)
            logits[i, : allowed.shape[0]].masked_fill_(~allowed, float("-inf"))
            logits[i, allowed.shape[0] :] = float("-inf")
        return logits


def grammar_processor(tok: Any, grammar: Any) -> GrammarProcessor:
    """A processor for an llguidance grammar string, or a guidance grammar node."""
    if hasattr(grammar, "ll_grammar"):
        grammar = grammar.ll_grammar()
    return GrammarProcessor(tok, grammar, "grammar")


def json_schema_processor(tok: Any, schema: dict) -> GrammarProcessor:
    """Output that parses as JSON and follows `schema` (JSON Schema as a dict)."""
    from llguidance import LLMatcher

    try:
        grammar = LLMatcher.grammar_from_json_schema(schema, overrides=JSON_OPTIONS)
    except ValueError as exc:
        raise UserError(f"invalid JSON schema: {exc}") from exc
    return GrammarProcessor(tok, grammar, "JSON schema")


def regex_processor(tok: Any, pattern: str) -> GrammarProcessor:
    """Output that matches the whole regular expression `pattern` (Rust regex syntax)."""
    from llguidance import LLMatcher

    return GrammarProcessor(tok, LLMatcher.grammar_from_regex(pattern), f"regex {pattern!r}")


def choice_processor(tok: Any, options: Sequence[str]) -> GrammarProcessor:
    """Output that is exactly one of `options`."""
    from llguidance import LLMatcher

    if not options or any(not isinstance(o, str) or not o for o in options):
        raise UserError(f"choice options must be non-empty strings, got {list(options)!r}")
    lark = "start: " + " | ".join(json.dumps(o) for o in options)
    return GrammarProcessor(tok, LLMatcher.grammar_from_lark(lark), "choice")
