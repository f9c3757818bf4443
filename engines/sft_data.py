"""Batches of encoded conversations for SFT: padded, masked, resumable.

Each `next_batch()` draws B examples (per rank: this rank's slice of the global batch) with a
seeded numpy generator, right-pads them to the longest in the batch and returns
`{"input_ids", "attention_mask", "labels"}` where labels are -100 outside the loss mask.
"""

from __future__ import annotations

import numpy as np
import torch

from engines.chat import Encoded
from engines.errors import UserError

IGNORE = -100


class SFTBatches:
    def __init__(
        self,
        examples: list[Encoded],
        batch_size: int,
        *,
        pad_id: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        usable = [e for e in examples if e.n_target > 0]
        if not usable:
            raise UserError(
                f"none of the {len(examples)} examples has an assistant token left after "
                "truncation to the context: raise data.max_len or shorten the prompts"
            )
        self.examples, self.B, self.pad_id = usable, batch_size, pad_id
        self.rank, self.world_size = rank, world_size
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def __len__(self) -> int:
        return len(self.examples)

    def next_batch(self) -> dict[str, torch.Tensor]:
        G = self.B * self.world_size
        idx = self.rng.integers(0, len(self.examples), size=G)  # (G,)
        mine = idx[self.rank * self.B : (self.rank + 1) * self.B]
        return collate([self.examples[i] for i in mine], self.pad_id)

    def state_dict(self) -> dict:
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["bit_generator"]


def collate(batch: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    T = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), T), pad_id, dtype=torch.long)  # (B, T)
    labels = torch.full((len(batch), T), IGNORE, dtype=torch.long)  # (B, T)
    attn = torch.zeros((len(batch), T), dtype=torch.long)  # (B, T)
    for r, e in enumerate(batch):
        n = len(e.ids)
        ids[r, :n] = torch.tensor(e.ids)
        attn[r, :n] = 1
        m = torch.tensor(e.mask, dtype=torch.bool)
        labels[r, :n] = torch.where(m, torch.tensor(e.ids), torch.tensor(IGNORE))
    return {"input_ids": ids, "attention_mask": attn, "labels": labels}


def sft_loss(model, batch: dict[str, torch.Tensor]):
    """Mean cross-entropy over assistant tokens only (labels shifted by one)."""
    from engines.lm_loss import lm_loss, shift_labels

    targets = shift_labels(batch["labels"], IGNORE)  # (B, T)
    loss = lm_loss(
        model, batch["input_ids"], targets, attention_mask=batch["attention_mask"],
        ignore_index=IGNORE,
    )  # fmt: skip
    return loss, {}
