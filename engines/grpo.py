"""GRPO: group-normalised advantages on verifiable rewards (DeepSeekMath, Shao et al. 2024).

Each step samples G completions for each of B task prompts from the current policy, rewards
each 1 if the task's checker accepts it and 0 otherwise, and normalises rewards within each
group (engines.losses.grpo_advantages). One gradient step per batch, so the PPO ratio is 1 and
the clipped surrogate reduces to −A·log π; an optional k3 KL term keeps it near the reference.

`GroupRollouts` is a trainer batch source (next_batch / state_dict / load_state_dict): the
rollout happens inside next_batch with the live policy, seeded by the step, so a resumed run
draws exactly what the uninterrupted one would have.
"""

from __future__ import annotations

import numpy as np
import torch

from engines.generate import SamplingParams
from engines.losses import grpo_advantages, kl_penalty, masked_mean, ppo_policy_loss
from engines.rollout import Reference, rollout, token_logps


class GroupRollouts:
    def __init__(self, policy, tok, examples: list, *, checkers: dict, prompts: list[str],
                 batch_size: int, group: int, params: SamplingParams, seed: int,
                 reference: Reference | None) -> None:  # fmt: skip
        self.policy, self.tok, self.examples, self.prompts = policy, tok, examples, prompts
        self.checkers, self.B, self.G, self.params = checkers, batch_size, group, params
        self.reference, self.seed, self.drawn = reference, seed, 0
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.last: list[dict] = []  # the latest rollout's samples, for the run's Sample events

    def next_batch(self) -> dict:
        idx = self.rng.integers(0, len(self.examples), size=self.B)
        prompts = [self.prompts[i] for i in idx for _ in range(self.G)]
        self.params.seed = self.seed * 1_000_003 + self.drawn
        self.drawn += 1
        ro = rollout(self.policy, self.tok, prompts, self.params)
        rewards = torch.tensor([float(self._check(idx[n // self.G], t))
                                for n, t in enumerate(ro.texts)])  # fmt: skip  # (B·G,)
        adv = grpo_advantages(rewards.view(self.B, self.G)).flatten()  # (B·G,)
        self._keep_samples(idx, ro.texts, rewards)
        batch = {"input_ids": ro.input_ids, "attention_mask": ro.attention_mask, "mask": ro.mask,
                 "adv": adv, "reward": rewards.mean(), "length": ro.lengths.mean()}  # fmt: skip
        if self.reference is not None:
            batch["ref_logp"] = self.reference.logps(ro.input_ids, ro.attention_mask)
        return batch

    def _check(self, i: int, text: str) -> bool:
        ex = self.examples[i]
        return self.checkers[ex[0]].check(ex[1], text)

    def _keep_samples(self, idx, texts: list[str], rewards: torch.Tensor) -> None:
        self.last = [{"prompt": self.examples[idx[0]][1].prompt, "completion": texts[g],
                      "meta": {"reward": float(rewards[g]), "rollout": self.drawn}}
                     for g in range(min(2, self.G))]  # fmt: skip

    def state_dict(self) -> dict:
        return {"bit_generator": self.rng.bit_generator.state, "drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["bit_generator"]
        self.drawn = state["drawn"]


def grpo_loss(kl_coef: float, clip: float = 0.2):
    """The trainer's loss_fn: −A·ratio (clipped) over completion tokens + kl_coef·KL (k3)."""

    def loss_fn(model, batch: dict):
        logp, entropy = token_logps(model, batch["input_ids"], batch["attention_mask"])  # (N, T-1)
        mask = batch["mask"]
        adv = batch["adv"][:, None].expand_as(logp)  # (N, T-1)
        loss, _ = ppo_policy_loss(logp, logp.detach(), adv, mask, clip)
        extra = {"reward": batch["reward"], "response_length": batch["length"],
                 "entropy": masked_mean(entropy.detach(), mask)}  # fmt: skip
        if "ref_logp" in batch:
            kl = masked_mean(kl_penalty(logp, batch["ref_logp"], "k3"), mask)
            loss = loss + kl_coef * kl
            extra["kl"] = kl.detach()
        return loss, extra

    return loss_fn
