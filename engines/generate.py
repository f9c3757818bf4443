"""Text generation with a KV cache: streamed for one prompt, batched for many.

Our own loop around a Hugging Face causal LM's forward (not `model.generate`), so every step is
ours to see: per-token log-probs and entropy, stop strings, per-row stopping, and a logits
processor hook that constrained decoding (engines.constrained) plugs into.

    params = SamplingParams(max_new_tokens=64, temperature=0.7, seed=1, stop=["\\n\\n"])
    for piece in stream(model, tok, prompt, params):
        print(piece, end="", flush=True)
    outs = generate(model, tok, [p1, p2, p3], params)   # list[Generation]

Log-probs and entropies are of the model's own next-token distribution (temperature 1, before
top-k/top-p or any processor), so summing a completion's log-probs gives its log-likelihood.
`token_ids` hold every sampled token, the end-of-sequence token and the token that completed
a stop string included; `text` stops before either.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from engines import cpu_kernels
from engines.decoding import IncrementalDecoder, StopMatcher, sample_next
from engines.errors import UserError
from engines.llama_decode import LlamaStep


class LogitsProcessor(Protocol):
    """Rewrites next-token scores for the active rows (e.g. masks tokens a grammar forbids).

    rows: the original batch index of each active row; generated: each row's tokens so far;
    logits: (len(rows), V) float scores, returned (possibly in place) with the same shape.
    """

    def __call__(
        self, rows: Sequence[int], generated: Sequence[Sequence[int]], logits: torch.Tensor
    ) -> torch.Tensor: ...


@dataclass
class SamplingParams:
    """How to pick tokens and when to stop. temperature 0 means greedy; top_k 0 means off."""

    max_new_tokens: int = 128
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stop_at_eos: bool = True

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise UserError(f"max_new_tokens is {self.max_new_tokens}: set it to 1 or more")
        if self.temperature < 0:
            raise UserError(f"temperature is {self.temperature}: use 0 (greedy) or more")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top_p is {self.top_p}: set it in (0, 1]")
        if self.top_k < 0:
            raise UserError(f"top_k is {self.top_k}: use 0 (off) or a positive count")


@dataclass
class Generation:
    """One completion: its text, tokens, per-token log-prob and entropy, and why it ended."""

    text: str
    token_ids: list[int]
    logprobs: list[float]
    entropies: list[float]
    finish_reason: str  # "stop" | "eos" | "length"


class _Row:
    """One completion in progress: tokens, scores, text, and whether it has finished."""

    def __init__(self, tok: Any, stop: list[str], prompt_ids: list[int]) -> None:
        self.decoder = IncrementalDecoder(tok, context=prompt_ids)
        self.stops = StopMatcher(stop)
        self.token_ids: list[int] = []
        self.logprobs: list[float] = []
        self.entropies: list[float] = []
        self.text = ""
        self.emitted = 0
        self.finish_reason: str | None = None

    def push(self, token: int, logprob: float, entropy: float, is_eos: bool) -> str:
        """Record a token; return the text that is now safe to show (held back near a stop)."""
        self.token_ids.append(token)
        self.logprobs.append(logprob)
        self.entropies.append(entropy)
        if is_eos:
            self.finish_reason = "eos"
            return self._flush()
        self.text += self.decoder.push(token)
        cut = self.stops.find(self.text)
        if cut is not None:
            self.text, self.finish_reason = self.text[:cut], "stop"
            return self._flush()
        safe = self.stops.safe_length(self.text)
        piece, self.emitted = self.text[self.emitted : safe], max(self.emitted, safe)
        return piece

    def finish(self, reason: str) -> str:
        self.finish_reason = reason
        self.text += self.decoder.flush()
        cut = self.stops.find(self.text)
        if cut is not None:
            self.text, self.finish_reason = self.text[:cut], "stop"
        return self._flush()

    def _flush(self) -> str:
        piece, self.emitted = self.text[self.emitted :], len(self.text)
        return piece

    def result(self) -> Generation:
        return Generation(
            self.text, self.token_ids, self.logprobs, self.entropies, self.finish_reason or "length"
        )


def eos_ids(model: Any, tok: Any) -> set[int]:
    """End-of-sequence ids from the generation config, the model config and the tokenizer."""
    found: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config, tok):
        value = getattr(source, "eos_token_id", None)
        found |= set(value) if isinstance(value, (list, tuple)) else ({value} - {None})
    return found


def encode_prompt(tok: Any, prompt: str) -> list[int]:
    """Token ids with the tokenizer's special tokens, without a doubled BOS from a chat template."""
    ids = tok(prompt, add_special_tokens=True)["input_ids"]
    bos = getattr(tok, "bos_token_id", None)
    if bos is not None and len(ids) > 1 and ids[0] == bos and ids[1] == bos:
        ids = ids[1:]
    return ids


def _pad_id(tok: Any) -> int:
    for value in (tok.pad_token_id, tok.eos_token_id, 0):
        if value is not None:
            return int(value)
    return 0


def _encode_all(tok: Any, prompts: list[str]) -> list[list[int]]:
    encoded = [encode_prompt(tok, p) for p in prompts]
    if any(len(ids) == 0 for ids in encoded):
        raise UserError("a prompt encoded to zero tokens: give each prompt some text")
    return encoded


def _left_pad(tok: Any, encoded: list[list[int]], device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(len(ids) for ids in encoded)
    ids = torch.full((len(encoded), T), _pad_id(tok), dtype=torch.long)
    mask = torch.zeros((len(encoded), T), dtype=torch.long)
    for i, row in enumerate(encoded):
        ids[i, T - len(row) :] = torch.tensor(row)
        mask[i, T - len(row) :] = 1
    return ids.to(device), mask.to(device)  # (B, T), (B, T)


class _Batch:
    """The tensors of one decode: model, KV cache, attention mask, positions and active rows.

    Its methods run under inference mode (no_grad for an FSDP-sharded model, whose gathered
    weights must stay usable by autograd after it); the loop around them yields text outside
    it, so a paused stream() leaves no grad mode switched off in the caller's thread.
    """

    def __init__(self, model: Any, tok: Any, encoded: list[list[int]], params: SamplingParams):
        from transformers import DynamicCache

        names = inspect.signature(model.forward).parameters
        self.model, self.params = model, params
        self.cache_kw = "cache" if "cache" in names else "past_key_values"
        self.keep_last = "logits_to_keep" in names
        self.cache = DynamicCache(config=model.config)
        self.device = next(model.parameters()).device
        self.ids, self.mask = _left_pad(tok, encoded, self.device)  # (B, T), (B, T)
        self.pos = (self.mask.cumsum(-1) - 1).clamp(min=0)  # positions skipping the left padding
        self.gen = _generator(params.seed, self.device)
        self.active = list(range(len(encoded)))  # original row index of each batch row
        self.grad_off = torch.no_grad if _is_sharded(model) else torch.inference_mode
        self.cpu = self.device.type == "cpu" and not _is_sharded(model)
        if self.cpu:
            cpu_kernels.accelerate(model)  # the batch-1..8 matmuls at memory bandwidth
        # room for the prompt and up to 256 new tokens first; the step doubles it when needed
        self.capacity = self.ids.shape[1] + min(params.max_new_tokens, 256)
        self.step: LlamaStep | None = None  # the lean decode step, where the model fits it

    def _forward(self) -> torch.Tensor:
        kwargs = {self.cache_kw: self.cache, "use_cache": True}
        if self.keep_last:
            kwargs["logits_to_keep"] = 1
        out = self.model(
            input_ids=self.ids, attention_mask=self.mask, position_ids=self.pos, **kwargs
        )
        return out.logits[:, -1, :].float()  # (B, V)

    def prefill(self) -> torch.Tensor:
        with self.grad_off():
            logits = self._forward()
            if self.cpu:
                self.step = LlamaStep.after_prefill(self.model, self.cache, self.capacity)
                if self.step is not None:
                    self.cache = None  # its keys and values now live in the step's buffers
            return logits

    def pick(
        self, logits: torch.Tensor, processor: LogitsProcessor | None, rows: list[_Row]
    ) -> list[tuple[int, int, float, float]]:
        """(row, token, log-prob, entropy) for every active row."""
        with self.grad_off():
            return self._pick(logits, processor, rows)

    def _pick(
        self, logits: torch.Tensor, processor: LogitsProcessor | None, rows: list[_Row]
    ) -> list[tuple[int, int, float, float]]:
        scores = logits
        if processor is not None:
            scores = processor(
                self.active, [rows[r].token_ids for r in self.active], logits.clone()
            )
        p = self.params
        self.ids = sample_next(scores, p.temperature, p.top_k, p.top_p, self.gen)[:, None]  # (B, 1)
        logp, entropy = _step_scores(logits)
        chosen = logp.gather(-1, self.ids).squeeze(-1)
        return list(zip(self.active, self.ids[:, 0].tolist(), chosen.tolist(), entropy.tolist()))

    def advance(self, keep: list[int]) -> torch.Tensor:
        """Drop finished rows (by batch index) from the cache, then run the next position."""
        with self.grad_off():
            return self._advance(keep)

    def _advance(self, keep: list[int]) -> torch.Tensor:
        if len(keep) < len(self.active):
            index = torch.tensor(keep, device=self.device)
            if self.step is not None:
                self.step.select(index)
            else:
                self.cache.batch_select_indices(index)
            self.ids, self.mask, self.pos = self.ids[index], self.mask[index], self.pos[index]
            self.active = [self.active[i] for i in keep]
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(keep), 1))], dim=1)
        self.pos = self.pos[:, -1:] + 1
        if self.step is not None:
            return self.step(self.ids, self.pos, self.mask).float()
        return self._forward()


def _is_sharded(model: Any) -> bool:
    """An FSDP2 module: its forward gathers weights that autograd uses again later."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _generator(seed: int | None, device: Any) -> torch.Generator | None:
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(seed)


def _step_scores(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs (B, V) and entropies (B,) of the raw next-token distribution."""
    logp = torch.log_softmax(logits, dim=-1)
    entropy = -(logp.exp() * logp.clamp(min=-1e30)).sum(-1)
    return logp, entropy


def _decode(
    model: Any,
    tok: Any,
    encoded: list[list[int]],
    params: SamplingParams,
    processor: LogitsProcessor | None,
    rows: list[_Row],
) -> Iterator[tuple[int, str]]:
    """The loop: prefill, then one token per active row per step; yields (row, text piece)."""
    batch, eos = _Batch(model, tok, encoded, params), eos_ids(model, tok)
    logits = batch.prefill()
    for step in range(params.max_new_tokens):
        for r, t, lp, h in batch.pick(logits, processor, rows):
            piece = rows[r].push(t, lp, h, params.stop_at_eos and t in eos)
            if piece:
                yield r, piece
        keep = [i for i, r in enumerate(batch.active) if rows[r].finish_reason is None]
        if not keep or step == params.max_new_tokens - 1:
            break
        logits = batch.advance(keep)
    for r in batch.active:
        if rows[r].finish_reason is None:
            piece = rows[r].finish("length")
            if piece:
                yield r, piece


def _check_prompts(prompts: Any) -> list[str]:
    if isinstance(prompts, str):
        raise UserError("generate() takes a list of prompts: wrap a single prompt in a list")
    if not prompts:
        raise UserError("generate() got no prompts: pass at least one")
    return list(prompts)


def generate(
    model: Any,
    tok: Any,
    prompts: list[str],
    params: SamplingParams,
    *,
    logits_processor: LogitsProcessor | None = None,
    on_piece: Callable[[int, str], None] | None = None,
) -> list[Generation]:
    """Complete every prompt in one left-padded batch; each row stops on its own.

    `on_piece(row, text)` (optional) sees the text of every row as it arrives."""
    encoded = _encode_all(tok, _check_prompts(prompts))
    rows = [_Row(tok, params.stop, ids) for ids in encoded]
    for r, piece in _decode(model, tok, encoded, params, logits_processor, rows):
        if on_piece is not None:
            on_piece(r, piece)
    return [row.result() for row in rows]


def stream(
    model: Any,
    tok: Any,
    prompt: str,
    params: SamplingParams,
    *,
    logits_processor: LogitsProcessor | None = None,
) -> Iterator[str]:
    """Yield text pieces of one completion as tokens arrive (whole characters only)."""
    encoded = _encode_all(tok, [prompt])
    rows = [_Row(tok, params.stop, encoded[0])]
    for _, piece in _decode(model, tok, encoded, params, logits_processor, rows):
        yield piece


def chat_prompt(
    tok: Any, messages: list[dict], add_generation_prompt: bool = True, *, fallback: bool = False
) -> str:
    """The prompt text for `messages` from the tokenizer's chat template.

    A tokenizer without one (a base model) is a UserError unless `fallback` is set, which gives
    a plain "User: ...\\nAssistant:" transcript instead.
    """
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    if not fallback:
        name = getattr(tok, "name_or_path", "") or "this tokenizer"
        raise UserError(
            f"{name} has no chat template (a base model?): use a few-shot prompt, pick an "
            "assistant model, or pass fallback=True for a plain 'User:/Assistant:' format"
        )
    return plain_transcript(messages, add_generation_prompt)


def plain_transcript(messages: list[dict], add_generation_prompt: bool = True) -> str:
    """ "System: …\\nUser: …\\nAssistant: …" lines, ending with "Assistant:" when asked."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    if add_generation_prompt:
        lines.append("Assistant:")
    return "\n".join(lines)
