"""What the RL stages (PPO, GRPO) and DPO share: sequences as tensors, per-token log-probs
under a policy or a frozen reference, and rollouts through engines.generate.

Layout: each row is prompt ids + completion ids, right-padded to T. Per-token quantities are
"label-aligned": position t of a (N, T-1) tensor scores token t+1 (the logits at t predict it),
and `mask` (N, T-1) is 1 where that token belongs to the completion.

    batch = rollout(policy, tok, prompts, SamplingParams(max_new_tokens=16, seed=3))
    logp, entropy = token_logps(policy, batch.input_ids, batch.attention_mask)  # (N, T-1) each
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from engines.generate import SamplingParams, encode_prompt, generate
from engines.lm_loss import next_token_stats
from engines.losses import token_logprobs


@dataclass
class Rollout:
    """Sampled completions of chat-formatted prompts, as tensors and as text."""

    input_ids: Tensor  # (N, T)
    attention_mask: Tensor  # (N, T)
    mask: Tensor  # (N, T-1) float, 1 on completion tokens (label-aligned)
    texts: list[str]
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]

    @property
    def lengths(self) -> Tensor:
        return self.mask.sum(-1)  # (N,)


def pad_id(tok) -> int:
    for value in (tok.pad_token_id, tok.eos_token_id, 0):
        if value is not None:
            return int(value)
    return 0


def sequence_tensors(
    prompts: list[list[int]], completions: list[list[int]], pad: int
) -> tuple[Tensor, Tensor, Tensor]:
    """(input_ids (N, T), attention_mask (N, T), completion mask (N, T-1)), right-padded."""
    rows = [p + c for p, c in zip(prompts, completions)]
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad, dtype=torch.long)
    attn = torch.zeros((len(rows), T), dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.float32)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        ids[i, : len(p) + len(c)] = torch.tensor(p + c)
        attn[i, : len(p) + len(c)] = 1
        mask[i, len(p) : len(p) + len(c)] = 1.0
    return ids, attn, mask[:, 1:]


def entropy_of(logits: Tensor) -> Tensor:
    """Entropy of each next-token distribution: (..., V) -> (...)"""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def token_logps(model, ids: Tensor, attn: Tensor, logits: Tensor | None = None):
    """(log p of each next token (N, T-1), entropy of each next-token distribution (N, T-1)).

    Without gradients, a model whose output layer fuses is read chunk by chunk
    (`engines.lm_loss.next_token_stats`): the (N, T, V) logits never exist whole."""
    if logits is None and not torch.is_grad_enabled():
        stats = next_token_stats(model, ids, attn)
        if stats is not None:
            return stats
    if logits is None:
        logits = model(input_ids=ids, attention_mask=attn, use_cache=False).logits  # (N, T, V)
    logits = logits[:, :-1]
    return token_logprobs(logits, ids[:, 1:]), entropy_of(logits)


@torch.no_grad()
def rollout(model, tok, prompts: list[str], params: SamplingParams) -> Rollout:
    """Sample one completion per (chat-formatted) prompt; the model is left in its mode."""
    was_training = model.training
    model.eval()
    try:
        gens = generate(model, tok, prompts, params)
    finally:
        model.train(was_training)
    prompt_ids = [encode_prompt(tok, p) for p in prompts]
    completion_ids = [g.token_ids or [pad_id(tok)] for g in gens]
    device = next(model.parameters()).device
    tensors = sequence_tensors(prompt_ids, completion_ids, pad_id(tok))
    ids, attn, mask = (t.to(device) for t in tensors)
    return Rollout(ids, attn, mask, [g.text for g in gens], prompt_ids, completion_ids)


class Reference:
    """The frozen reference policy: a LoRA policy with its adapter switched off, or a frozen
    copy of a fully fine-tuned one taken before training starts."""

    def __init__(self, policy: nn.Module, lora: bool) -> None:
        self.policy = policy
        self.copy = None if lora else frozen_copy(policy)

    @torch.no_grad()
    def logps(self, ids: Tensor, attn: Tensor) -> Tensor:
        """Log-probs of each next token under the reference (N, T-1)."""
        model = self.copy if self.copy is not None else self.policy
        switch = self.policy.disable_adapter() if self.copy is None else nullcontext()
        device = next(model.parameters()).device
        with switch:
            return token_logps(model, ids.to(device), attn.to(device))[0].to(ids.device)

    def to(self, device) -> Reference:
        if self.copy is not None:
            self.copy.to(device)
        return self


def frozen_copy(model: nn.Module) -> nn.Module:
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def whiten(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(x - mean) / std over the masked positions; masked-out positions become 0. (N, T)"""
    n = mask.sum().clamp_min(1.0)
    mean = (x * mask).sum() / n
    var = (((x - mean) * mask) ** 2).sum() / n
    return (x - mean) * torch.rsqrt(var + eps) * mask
