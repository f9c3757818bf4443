"""What every training stage shares: its spec's train section → TrainConfig, each process's
rows of one global batch (`RankRows`), and the trainer core's records → store events."""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from pathlib import Path

from store.events import Artifact, Event, Metrics, Progress, RunFinished, Sample


def train_config(train, seed: int, cache_dir: Path | None = None):
    """An engines TrainConfig from a spec's `train` section (fields matched by name): the
    section declares every default and range, the trainer takes the validated values."""
    from engines.trainer import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in train.model_dump().items() if k in names}
    peak_cache = str(cache_dir / "peak_flops.json") if cache_dir is not None else None
    return TrainConfig(**values, seed=seed, peak_cache=peak_cache)


class RankRows:
    """This process's rows of one global batch. `batches` draws the whole global batch (the
    same on every process: one seed), and each tensor of it is `blocks` blocks of rows (DPO's
    chosen rows then its rejected rows: 2), of which this process keeps its 1/`world_size`
    of each. The position is global, so a checkpoint resumes with another number of
    processes (engines.trainer); with one process this is `batches` itself."""

    def __init__(self, batches, rank: int, world_size: int, blocks: int = 1) -> None:
        self.batches, self.rank, self.world, self.blocks = batches, rank, world_size, blocks

    def next_batch(self) -> dict:
        return {k: self._mine(v) for k, v in self.batches.next_batch().items()}

    def _mine(self, t):
        import torch

        parts = t.chunk(self.blocks)  # each (world · rows, ...)
        assert all(len(p) % self.world == 0 for p in parts), f"{t.shape} over {self.world}"
        return torch.cat([p.chunk(self.world)[self.rank] for p in parts])

    def state_dict(self) -> dict:
        return self.batches.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.batches.load_state_dict(state)


class StepRows:
    """This process's micro-batches of a global batch drawn once per optimizer step: GRPO's
    rollouts, which every process samples whole with one seed (so each runs the same sharded
    forwards, and together they sample what one process would) and splits into `world ·
    accum` parts of whole rows. Micro-batch k of rank r is part k · world + r, as when a
    stream is drawn micro-batch by micro-batch (RankRows); 0-d tensors (batch means) are left
    whole. The position is global and only ever saved between steps."""

    def __init__(self, batches, rank: int, world_size: int, accum: int = 1) -> None:
        self.batches, self.rank, self.world, self.accum = batches, rank, world_size, accum
        self.drawn: dict | None = None
        self.micro = 0

    def next_batch(self) -> dict:
        if self.micro == 0:
            self.drawn = self.batches.next_batch()
        part = self.micro * self.world + self.rank
        self.micro = (self.micro + 1) % self.accum
        return {k: self._part(v, part) for k, v in self.drawn.items()}

    def _part(self, t, part: int):
        n = self.world * self.accum
        if t.dim() == 0:
            return t
        assert len(t) % n == 0, f"{tuple(t.shape)} over {n} parts"
        return t.chunk(n)[part]

    def state_dict(self) -> dict:
        return self.batches.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.batches.load_state_dict(state)
        self.drawn, self.micro = None, 0


def trainer_events(
    trainer, ctx, phase: str = "train"
) -> Generator[Event, None, RunFinished | None]:
    """Yield events while the trainer runs; return a RunFinished when it ended early."""
    for rec in trainer.train(should_stop=ctx.should_stop, resume=ctx.resume):
        kind = rec["type"]
        if kind == "metrics":
            split = rec.get("split", "train")
            yield Metrics(step=rec["step"], values=rec["values"], split=split)
        elif kind == "progress":
            yield Progress(step=rec["step"], total=rec["total"], phase=phase)
        elif kind == "sample":
            if rec.get("metrics"):
                yield Metrics(step=rec["step"], values=rec["metrics"], split="eval")
            yield Sample(
                step=rec["step"],
                prompt=rec["prompt"],
                completion=rec["completion"],
                meta=rec.get("meta", {}),
            )
        elif kind == "checkpoint":
            yield Artifact(type="checkpoint", path=str(rec["path"]), step=rec["step"])
        elif kind == "diverged":
            return RunFinished(status="diverged", reason=rec.get("reason"))
        elif kind == "stopped":
            return RunFinished(status="cancelled", reason=f"stopped at step {rec['step']}")
    return None


def publish_model(ctx, model, tok, *, spec, kind: str, card: dict, meta: dict):
    """Save `runs/<id>/model` (weights, tokenizer, generation config, workbench.json with the
    resolved spec and the registry record) and yield the model artifact. The artifact carries
    every registry field, so whoever ingests the events can register the model; the runner
    also registers it directly when the run is done (both are idempotent upserts).

    A base model is registered with `chat_template = False` whatever its tokenizer carries
    (front ends default to plain completion for it); an assistant with True."""
    import json

    from transformers.utils import logging as hf_logging

    from engines.model import count_params
    from store.records import MODEL_KINDS

    assert kind in MODEL_KINDS, f"model kind {kind!r} is not one of {MODEL_KINDS}"
    hf_logging.disable_progress_bar()
    out = ctx.run_dir / "model"
    yield Progress(step=0, total=3, phase="export", message="weights")
    model.save_pretrained(out, safe_serialization=True)
    yield Progress(step=1, total=3, phase="export", message="tokenizer")
    tok.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    chat_tuned = kind == "assistant"
    record = {
        "name": spec.output.model_name or ctx.run_id,
        "kind": kind,
        "source": "trained",
        "run_id": ctx.run_id,
        "params": count_params(model),
        "architecture": type(model).__name__,
        "chat_template": chat_tuned and bool(tok.chat_template),
        "chat_tuned": chat_tuned,
        "tokenizer_has_chat_template": bool(tok.chat_template),
        **meta,
    }
    made = {
        "made_by": f"gpt-workbench {spec.pipeline}",
        "run_id": ctx.run_id,
        "spec": spec.model_dump(mode="json"),
        "registry": {**record, "path": str(out)},
        **card,
    }
    yield Progress(step=2, total=3, phase="export", message="model card")
    (out / "workbench.json").write_text(json.dumps(made, indent=2))
    yield Progress(step=3, total=3, phase="export")
    yield Artifact(type="model", path=str(out), meta=record)
