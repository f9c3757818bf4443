"""Turn the trainer core's records into store events (shared by every training stage)."""

from __future__ import annotations

from collections.abc import Generator

from store.events import Artifact, Event, Metrics, Progress, RunFinished, Sample


def trainer_events(
    trainer, ctx, phase: str = "train"
) -> Generator[Event, None, RunFinished | None]:
    """Yield events while the trainer runs; return a RunFinished when it ended early."""
    for rec in trainer.train(should_stop=ctx.should_stop, resume=ctx.resume):
        kind = rec["type"]
        if kind == "metrics":
            yield Metrics(step=rec["step"], values=rec["values"], split=rec.get("split", "train"))
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
