"""Training losses and advantage estimators as small pure functions over tensors.

Shapes: B batch, T time, V vocabulary, K completions per prompt, G group size.
Masks are 1 where a position counts and 0 elsewhere (any numeric or bool dtype).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of `x` over positions where mask is 1 (0 when the mask is empty). -> ()"""
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def next_token_loss(logits: Tensor, targets: Tensor, ignore_index: int = -100) -> Tensor:
    """Mean cross-entropy of logits (B, T, V) against targets (B, T), skipping ignore_index. -> ()"""
    return F.cross_entropy(
        logits.flatten(0, 1).float(), targets.flatten(), ignore_index=ignore_index
    )


def token_logprobs(logits: Tensor, labels: Tensor) -> Tensor:
    """log p(label) at each position: logits (B, T, V), labels (B, T) -> (B, T).

    Labels below 0 (e.g. -100 padding) give 0; mask them out afterwards.
    """
    B, T, V = logits.shape
    nll = F.cross_entropy(
        logits.reshape(B * T, V).float(), labels.reshape(B * T).clamp_min(0), reduction="none"
    )
    return -nll.view(B, T)  # (B, T)


def masked_lm_loss(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """SFT loss: cross-entropy (B, T, V) vs (B, T), mean over positions where mask (B, T) is 1. -> ()"""
    return -masked_mean(token_logprobs(logits, targets), mask)


def sequence_logprobs(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Sum of log p(label) over masked positions: (B, T, V), (B, T), (B, T) -> (B,)."""
    return (token_logprobs(logits, labels) * mask.to(logits.dtype)).sum(-1)  # (B,)


def bradley_terry_loss(r_chosen: Tensor, r_rejected: Tensor) -> Tensor:
    """Reward-model loss -log σ(r_chosen - r_rejected), mean over (B,). -> ()"""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def ranked_bt_loss(rewards: Tensor, mask: Tensor | None = None) -> Tensor:
    """Bradley–Terry over all pairs of K ranked completions (B, K), best first. -> ()

    Each pair i < j contributes -log σ(r_i - r_j); `mask` (B, K) drops missing completions.
    """
    K = rewards.shape[1]
    i, j = torch.triu_indices(K, K, offset=1, device=rewards.device)  # (P,), (P,)
    losses = -F.logsigmoid(rewards[:, i] - rewards[:, j])  # (B, P)
    if mask is None:
        return losses.mean()
    pair_mask = mask[:, i].bool() & mask[:, j].bool()  # (B, P)
    return masked_mean(losses, pair_mask)


def dpo_loss(
    pol_chosen_logp: Tensor,
    pol_rejected_logp: Tensor,
    ref_chosen_logp: Tensor,
    ref_rejected_logp: Tensor,
    beta: float,
) -> tuple[Tensor, Tensor]:
    """DPO (Rafailov et al. 2023) over sequence log-probs (B,) each. -> (loss (), margins (B,))

    margins = β·[(π_c - ref_c) - (π_r - ref_r)], the implicit reward margin; loss = -log σ(margins).
    """
    chosen_reward = beta * (pol_chosen_logp - ref_chosen_logp)  # (B,)
    rejected_reward = beta * (pol_rejected_logp - ref_rejected_logp)  # (B,)
    margins = chosen_reward - rejected_reward  # (B,)
    return -F.logsigmoid(margins).mean(), margins.detach()


def ppo_policy_loss(
    logp: Tensor, old_logp: Tensor, adv: Tensor, mask: Tensor, clip: float
) -> tuple[Tensor, Tensor]:
    """PPO clipped surrogate over tokens (B, T). -> (loss (), clip fraction ())"""
    ratio = torch.exp(logp - old_logp)  # (B, T)
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_frac = masked_mean((clipped > unclipped).to(logp.dtype), mask)
    return loss, clip_frac.detach()


def ppo_value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip: float
) -> Tensor:
    """Clipped value loss ½·max((v - R)², (v_clip - R)²), masked mean over (B, T). -> ()"""
    v_clipped = old_values + (values - old_values).clamp(-clip, clip)  # (B, T)
    err = torch.maximum((values - returns) ** 2, (v_clipped - returns) ** 2)
    return 0.5 * masked_mean(err, mask)


@torch.no_grad()
def gae(
    rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over (B, T). -> (advantages (B, T), returns (B, T))

    Positions with mask 0 (after the end of a response) contribute no value and get 0.
    """
    mask = mask.to(values.dtype)
    T = rewards.shape[1]
    adv = torch.zeros_like(values)  # (B, T)
    last = torch.zeros_like(values[:, 0])  # (B,)
    for t in reversed(range(T)):
        next_mask = mask[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        next_value = values[:, t + 1] * next_mask if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * next_mask * last
        adv[:, t] = last * mask[:, t]
    return adv, (adv + values) * mask


def kl_penalty(logp: Tensor, ref_logp: Tensor, kind: str = "k1") -> Tensor:
    """Per-token KL(π‖ref) estimate from sampled-token log-probs (B, T). -> (B, T)

    k1 = logp - ref_logp (unbiased, can be negative); k3 = e^(ref-logp) - (ref-logp) - 1 (≥ 0).
    """
    if kind == "k1":
        return logp - ref_logp
    if kind == "k3":
        log_ratio = ref_logp - logp
        return torch.exp(log_ratio) - log_ratio - 1.0
    raise ValueError(f"kl_penalty: kind must be 'k1' or 'k3', got {kind!r}")


def grpo_advantages(rewards: Tensor, eps: float = 1e-6) -> Tensor:
    """Group-normalised rewards (r - mean) / (std + eps) over the last dim (..., G). -> (..., G)

    std is the sample standard deviation (G - 1 in the denominator), as in TRL.
    """
    mean = rewards.mean(-1, keepdim=True)
    std = rewards.std(-1, keepdim=True) if rewards.shape[-1] > 1 else torch.zeros_like(mean)
    return (rewards - mean) / (std + eps)


def rloo_advantages(rewards: Tensor) -> Tensor:
    """REINFORCE leave-one-out: r_i - mean of the other G-1 rewards, over the last dim. -> (..., G)"""
    G = rewards.shape[-1]
    assert G > 1, "rloo_advantages needs at least two samples per group"
    others_mean = (rewards.sum(-1, keepdim=True) - rewards) / (G - 1)
    return rewards - others_mean
