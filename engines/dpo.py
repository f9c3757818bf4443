"""DPO (Rafailov et al. 2023): preference pairs straight into the policy, no reward model.

A pair is (prompt, chosen, rejected), each side encoded as the chat-formatted prompt + the
completion + end of turn, scored by the sum of its completion-token log-probs. The frozen
reference is the SFT model (engines.rollout.Reference). The implicit reward of a completion
is β·(log π − log π_ref); its accuracy counts pairs whose chosen side is rewarded more (a tie,
as at the start when π = π_ref, counts one half).
"""

from __future__ import annotations

import numpy as np
import torch

from engines.losses import dpo_loss
from engines.reward_model import prompt_text, turn_end_id
from engines.rollout import Reference, pad_id, sequence_tensors, token_logps


def encode_side(tok, prompt: str, completion: str, max_len: int) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids + end of turn), the completion cut to fit max_len."""
    from engines.generate import encode_prompt

    p = encode_prompt(tok, prompt_text(tok, prompt))
    end = turn_end_id(tok)
    c = tok(completion, add_special_tokens=False)["input_ids"] + ([end] if end is not None else [])
    return p, c[: max(1, max_len - len(p))]


def encode_pairs(tok, pairs: list[tuple[str, str, str]], max_len: int) -> list[tuple]:
    return [(encode_side(tok, p, c, max_len), encode_side(tok, p, r, max_len)) for p, c, r in pairs]


def collate_pairs(pairs: list[tuple], pad: int) -> dict[str, torch.Tensor]:
    """Chosen rows then rejected rows: input_ids (2B, T), attention_mask, mask (2B, T-1)."""
    sides = [pair[0] for pair in pairs] + [pair[1] for pair in pairs]
    ids, attn, mask = sequence_tensors([s[0] for s in sides], [s[1] for s in sides], pad)
    return {"input_ids": ids, "attention_mask": attn, "mask": mask}


class PairBatches:
    """B pairs a batch, drawn with a seeded generator (resumable)."""

    def __init__(self, encoded: list[tuple], batch_size: int, *, pad: int, seed: int) -> None:
        self.encoded, self.B, self.pad = encoded, batch_size, pad
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def next_batch(self) -> dict[str, torch.Tensor]:
        idx = self.rng.integers(0, len(self.encoded), size=self.B)
        return collate_pairs([self.encoded[i] for i in idx], self.pad)

    def state_dict(self) -> dict:
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["bit_generator"]


def sequence_logps(model, batch: dict) -> torch.Tensor:
    """Sum of completion-token log-probs per row: (2B,)."""
    logp, _ = token_logps(model, batch["input_ids"], batch["attention_mask"])  # (2B, T-1)
    return (logp * batch["mask"]).sum(-1)


def pair_metrics(margins: torch.Tensor, pol: torch.Tensor) -> dict[str, torch.Tensor]:
    """Implicit-reward accuracy (ties ½) and margin from margins (B,); the policy's own
    preference accuracy from its sequence log-probs (2B,)."""
    B = margins.shape[0]
    acc = (margins > 0).float() + 0.5 * (margins == 0).float()
    return {"reward_accuracy": acc.mean(), "margin": margins.mean(),
            "logp_accuracy": (pol[:B] > pol[B:]).float().mean()}  # fmt: skip


def dpo_loss_fn(reference: Reference, beta: float):
    """The trainer's loss_fn for a collated pair batch."""

    def loss_fn(model, batch: dict):
        pol = sequence_logps(model, batch)  # (2B,)
        with torch.no_grad():
            logp = reference.logps(batch["input_ids"], batch["attention_mask"])
            ref = (logp * batch["mask"]).sum(-1)  # (2B,)
        B = pol.shape[0] // 2
        loss, margins = dpo_loss(pol[:B], pol[B:], ref[:B], ref[B:], beta)
        return loss, pair_metrics(margins, pol.detach())

    return loss_fn


@torch.no_grad()
def heldout(model, tok, reference: Reference, encoded: list[tuple], beta: float, batch: int = 8):
    """Means of pair_metrics over every held-out pair (None without pairs)."""
    if not encoded:
        return None
    was, sums, fn = model.training, {}, dpo_loss_fn(reference, beta)
    model.eval()
    for i in range(0, len(encoded), batch):
        chunk = encoded[i : i + batch]
        device = next(model.parameters()).device
        rows = {k: v.to(device) for k, v in collate_pairs(chunk, pad_id(tok)).items()}
        _, values = fn(model, rows)
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(chunk)
    model.train(was)
    return {k: v / len(encoded) for k, v in sums.items()}
