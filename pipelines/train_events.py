"""What every training stage shares: its spec's train section → TrainConfig, and the trainer
core's records → store events."""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from pathlib import Path

from store.events import Artifact, Event, Metrics, Note, Progress, RunFinished, Sample


def train_config(train, seed: int, cache_dir: Path):
    """An engines TrainConfig from a spec's `train` section (fields matched by name)."""
    from engines.trainer import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in train.model_dump().items() if k in names}
    return TrainConfig(**values, seed=seed, peak_cache=str(cache_dir / "peak_flops.json"))


def _named(values: dict[str, float], split: str) -> dict[str, float]:
    """Metric names are unique across splits in the store: validation loss is `val_loss`."""
    if split != "val":
        return values
    return {k if k.startswith("val_") else f"val_{k}": v for k, v in values.items()}


def trainer_events(
    trainer, ctx, phase: str = "train"
) -> Generator[Event, None, RunFinished | None]:
    """Yield events while the trainer runs; return a RunFinished when it ended early."""
    for rec in trainer.train(should_stop=ctx.should_stop, resume=ctx.resume):
        kind = rec["type"]
        if kind == "metrics":
            split = rec.get("split", "train")
            yield Metrics(step=rec["step"], values=_named(rec["values"], split), split=split)
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
    resolved spec) and yield the model artifact the runner registers when the run is done."""
    import json

    from transformers.utils import logging as hf_logging

    from engines.model import count_params

    hf_logging.disable_progress_bar()
    yield Note(text="saving the model")
    out = ctx.run_dir / "model"
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    made = {
        "made_by": f"gpt-workbench {spec.pipeline}",
        "run_id": ctx.run_id,
        "spec": spec.model_dump(mode="json"),
        **card,
    }
    (out / "workbench.json").write_text(json.dumps(made, indent=2))
    yield Artifact(
        type="model",
        path=str(out),
        meta={
            "name": spec.output.model_name or ctx.run_id,
            "kind": kind,
            "params": count_params(model),
            "architecture": type(model).__name__,
            "chat_template": bool(tok.chat_template),
            **meta,
        },
    )
