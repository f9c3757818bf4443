"""A tiny Llama and toy batch streams for the trainer, checkpoint and DDP tests."""

from __future__ import annotations

import dataclasses

import torch

from engines.model import ModelSize, build_model
from engines.trainer import TrainConfig
from pipelines.spec import TrainSection
from pipelines.train_events import train_config

TINY = ModelSize(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=64)


def tiny_model(seed: int = 0):
    return build_model(TINY, seed=seed, eos_id=0)


def tiny_config(**overrides) -> TrainConfig:
    base = {
        "max_steps": 6,
        "lr": 3e-3,
        "min_lr": 3e-4,
        "warmup_steps": 2,
        "weight_decay": 0.1,
        "grad_clip": 1.0,
        "eval_every": 0,
        "eval_batches": 2,
        "checkpoint_every": 0,
        "device": "cpu",
        "log_every": 1,
    }
    extra = {k: overrides.pop(k) for k in ("betas", "seed", "peak_flops") if k in overrides}
    cfg = train_config(TrainSection(**{**base, **overrides}), seed=extra.pop("seed", 0))
    return dataclasses.replace(cfg, **{"peak_flops": 1e12, **extra})


class ToyBatches:
    """Random (x, y) batches with y = x + 1 (mod V): learnable, and the state is an RNG.

    `rank`/`world` hand each process its rows of one global batch of `batch_size` rows.
    """

    def __init__(
        self, batch_size: int = 4, seed: int = 0, rank: int = 0, world: int = 1, fixed=False
    ):
        self.B, self.rank, self.world, self.fixed = batch_size, rank, world, fixed
        self.seed = seed
        self.gen = torch.Generator().manual_seed(seed)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fixed:
            self.gen.manual_seed(self.seed)
        x = torch.randint(0, TINY.vocab_size, (self.B, TINY.block_size), generator=self.gen)
        rows = slice(self.rank * self.B // self.world, (self.rank + 1) * self.B // self.world)
        x = x[rows]  # (B / world, T)
        return x, (x + 1) % TINY.vocab_size

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
