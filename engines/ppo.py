"""PPO for language models (InstructGPT's stage 3): policy + value head, frozen reference,
frozen reward model.

Per rollout: B prompts → one sampled response each (engines.generate, seeded by the rollout
number) → old log-probs and values (policy), reference log-probs, the reward model's score at
the readout token. Per-token reward = −kl_coef·(log π − log π_ref), plus the score on the last
response token; GAE gives advantages (whitened) and returns. The rollout is then cut into
`epochs × B / minibatch` minibatches, one optimizer step each, with the clipped policy loss,
the clipped value loss and an entropy bonus (engines.losses).

`PPORollouts` is the trainer's batch source: its state (generator, rollout count and the
minibatches not yet used) goes into every checkpoint, so a resumed run continues mid-rollout
exactly where the uninterrupted one would be.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from transformers import PretrainedConfig

from engines.generate import SamplingParams
from engines.losses import gae, masked_mean, ppo_policy_loss, ppo_value_loss
from engines.reward_model import rewards_of, right_pad
from engines.rollout import Reference, Rollout, rollout, token_logps, whiten


class PolicyWithValue(nn.Module):
    """A causal LM and a scalar value head on its last hidden state: one forward for both.

    Built from the LM, or from its config (an empty one, as engines.distributed.plain_copy
    rebuilds a sharded model's class on the meta device); `config`, `generation_config` and
    `tie_weights` are the LM's."""

    def __init__(self, policy: nn.Module | PretrainedConfig) -> None:
        super().__init__()
        if not isinstance(policy, nn.Module):
            from transformers import AutoModelForCausalLM

            policy = AutoModelForCausalLM.from_config(policy)
        self.policy = policy
        self.value_head = nn.Linear(policy.config.hidden_size, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        out = self.policy(input_ids=input_ids, attention_mask=attention_mask,
                          output_hidden_states=True, use_cache=False)  # fmt: skip
        values = self.value_head(out.hidden_states[-1].float()).squeeze(-1)  # (N, T)
        return out.logits, values

    @property
    def config(self) -> PretrainedConfig:
        return self.policy.config

    @property
    def generation_config(self):
        return getattr(self.policy, "generation_config", None)

    @generation_config.setter
    def generation_config(self, value) -> None:
        self.policy.generation_config = value

    def tie_weights(self) -> None:
        self.policy.tie_weights()


@dataclass
class PPOConfig:
    kl_coef: float
    clip: float
    value_clip: float
    vf_coef: float
    ent_coef: float
    gamma: float
    lam: float
    epochs: int
    minibatch: int
    whiten_scores: bool = True


def last_token_rewards(score: Tensor, mask: Tensor) -> Tensor:
    """The score (N,) placed on each row's last masked position: -> (N, T)"""
    T = mask.shape[1]
    last = (mask * torch.arange(T, dtype=mask.dtype, device=mask.device)).argmax(-1)  # (N,)
    out = torch.zeros_like(mask)
    out[torch.arange(mask.shape[0], device=mask.device), last] = score
    return out * mask


def token_rewards(score: Tensor, kl: Tensor, mask: Tensor, cfg: PPOConfig) -> Tensor:
    """Per-token rewards (N, T): −kl_coef·KL everywhere, plus each row's score on its last token.

    A reward model's scores have an arbitrary offset and scale (its loss sees only differences),
    so with `whiten_scores` they are whitened over the rollout batch first: the KL leash and the
    value head then see the same units whatever reward model is used."""
    if cfg.whiten_scores:
        score = (score - score.mean()) / (score.std(correction=0) + 1e-6)
    return -cfg.kl_coef * kl + last_token_rewards(score, mask)


@torch.no_grad()
def rm_scores(rm, readout: int, ro: Rollout) -> Tensor:
    """The reward model's score of each rollout row (prompt + response + readout): (N,)"""
    rows = [p + c + [readout] for p, c in zip(ro.prompt_ids, ro.completion_ids)]
    ids, attn = right_pad(rows, int(rm.config.pad_token_id))
    device = next(rm.parameters()).device
    return rewards_of(rm, ids.to(device), attn.to(device)).to(ro.input_ids.device)


class PPORollouts:
    def __init__(self, model: PolicyWithValue, tok, reference: Reference, rm, *,
                 prompts: list[str], questions: list[str], batch_size: int,
                 params: SamplingParams, cfg: PPOConfig, seed: int) -> None:  # fmt: skip
        self.model, self.tok, self.reference, self.rm = model, tok, reference, rm
        self.readout = int(rm.config.readout_token_id)
        self.prompts, self.questions, self.B = prompts, questions, batch_size
        self.params, self.cfg, self.seed = params, cfg, seed
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.drawn, self.buffer, self.last = 0, [], []

    def next_batch(self) -> dict:
        if not self.buffer:
            self.buffer = self._rollout()
        return self.buffer.pop(0)

    def _rollout(self) -> list[dict]:
        idx = self.rng.integers(0, len(self.prompts), size=self.B)
        self.params.seed = self.seed * 1_000_003 + self.drawn
        self.drawn += 1
        ro = rollout(self.model.policy, self.tok, [self.prompts[i] for i in idx], self.params)
        data = self._score(ro)
        self.last = [{"prompt": self.questions[i], "completion": ro.texts[n],
                      "meta": {"reward": float(data["score"][n]), "rollout": self.drawn}}
                     for n, i in enumerate(idx[:2])]  # fmt: skip
        return self._minibatches(data)

    @torch.no_grad()
    def _score(self, ro: Rollout) -> dict:
        was = self.model.training
        self.model.eval()
        logits, values = self.model(ro.input_ids, ro.attention_mask)
        self.model.train(was)
        mask = ro.mask
        old_logp, _ = token_logps(None, ro.input_ids, ro.attention_mask, logits=logits)
        values = values[:, :-1] * mask  # (N, T-1)
        kl = (old_logp - self.reference.logps(ro.input_ids, ro.attention_mask)) * mask
        score = rm_scores(self.rm, self.readout, ro)  # (N,)
        rewards = token_rewards(score, kl, mask, self.cfg)
        adv, returns = gae(rewards, values, mask, self.cfg.gamma, self.cfg.lam)
        return {"input_ids": ro.input_ids, "attention_mask": ro.attention_mask, "mask": mask,
                "old_logp": old_logp * mask, "old_values": values, "returns": returns,
                "adv": whiten(adv, mask), "score": score, "kl_sum": kl.sum(-1)}  # fmt: skip

    def _minibatches(self, data: dict) -> list[dict]:
        stats = {"reward": data["score"].mean(), "kl": data["kl_sum"].mean(),
                 "response_length": data["mask"].sum(-1).mean()}  # fmt: skip
        keys = ("input_ids", "attention_mask", "mask", "old_logp", "old_values", "returns", "adv")
        out = []
        for _ in range(self.cfg.epochs):
            perm = torch.from_numpy(self.rng.permutation(self.B))
            for s in range(0, self.B, self.cfg.minibatch):
                rows = perm[s : s + self.cfg.minibatch]
                out.append({k: data[k][rows] for k in keys} | stats)
        return out

    def state_dict(self) -> dict:
        return {"bit_generator": self.rng.bit_generator.state, "drawn": self.drawn,
                "buffer": list(self.buffer)}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["bit_generator"]
        self.drawn, self.buffer = state["drawn"], list(state["buffer"])


def ppo_loss_fn(cfg: PPOConfig):
    """The trainer's loss_fn: clipped policy loss + vf_coef·clipped value loss − ent_coef·H."""

    def loss_fn(model, b: dict):
        logits, values = model(b["input_ids"], b["attention_mask"])
        logp, ent = token_logps(None, b["input_ids"], b["attention_mask"], logits=logits)
        mask = b["mask"]
        pg, clip_frac = ppo_policy_loss(logp, b["old_logp"], b["adv"], mask, cfg.clip)
        vf = ppo_value_loss(values[:, :-1], b["old_values"], b["returns"], mask, cfg.value_clip)
        entropy = masked_mean(ent, mask)
        loss = pg + cfg.vf_coef * vf - cfg.ent_coef * entropy
        extra = {"policy_loss": pg.detach(), "value_loss": vf.detach(), "clip_frac": clip_frac,
                 "entropy": entropy.detach(), "reward": b["reward"], "kl": b["kl"],
                 "response_length": b["response_length"]}  # fmt: skip
        return loss, extra

    return loss_fn


@torch.no_grad()
def heldout_reward(model: PolicyWithValue, tok, reference: Reference, rm, prompts: list[str],
                   params: SamplingParams) -> dict[str, float]:  # fmt: skip
    """Mean reward-model score and KL to the reference of sampled answers to held-out prompts."""
    ro = rollout(model.policy, tok, prompts, params)
    logp, _ = token_logps(model.policy, ro.input_ids, ro.attention_mask)
    kl = ((logp - reference.logps(ro.input_ids, ro.attention_mask)) * ro.mask).sum(-1)
    score = rm_scores(rm, int(rm.config.readout_token_id), ro)
    return {"heldout_reward": float(score.mean()), "heldout_kl": float(kl.mean()),
            "heldout_length": float(ro.lengths.mean())}  # fmt: skip
