"""`echo`: a pipeline with no model that emits metrics and samples on a timer.

It exercises the whole job plumbing (events, heartbeat, cancel, checkpoint, resume, crash
detection) in milliseconds, and is the smallest template for a new stage:

    workbench run --preset echo --set steps=20 --set interval_s=0.1
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator

from pydantic import Field

from pipelines.spec import JobSpec
from store.events import Artifact, Event, Metrics, Note, Progress, RunFinished, Sample


class Spec(JobSpec):
    pipeline: str = "echo"
    steps: int = Field(10, ge=1, description="how many steps to emit")
    interval_s: float = Field(0.05, ge=0, le=60, description="seconds between steps")
    sample_every: int = Field(5, ge=1)
    checkpoint_every: int = Field(5, ge=1)
    fail_at: int | None = Field(None, ge=0, description="raise an error at this step (tests)")
    nan_at: int | None = Field(None, ge=0, description="emit a NaN loss at this step (tests)")


def run(spec: Spec, ctx) -> Iterator[Event]:
    ckpt = ctx.checkpoint_dir / "echo.json"
    start = json.loads(ckpt.read_text())["step"] if ctx.resume and ckpt.exists() else 0
    step = start
    for step in range(start + 1, spec.steps + 1):
        time.sleep(spec.interval_s)
        if spec.fail_at == step:
            raise RuntimeError(f"echo: asked to fail at step {step}")
        loss = float("nan") if spec.nan_at == step else 4.0 * math.exp(-step / spec.steps)
        yield Metrics(step=step, values={"loss": loss, "lr": 1e-3})
        yield Progress(step=step, total=spec.steps)
        if not math.isfinite(loss):
            yield RunFinished(status="diverged", reason=f"loss is {loss} at step {step}")
            return
        if step % spec.sample_every == 0:
            yield Sample(step=step, prompt="echo", completion=f"step {step}")
        if step % spec.checkpoint_every == 0 or ctx.should_stop():
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            ckpt.write_text(json.dumps({"step": step}))
            yield Artifact(type="checkpoint", path=str(ckpt), step=step)
        if ctx.should_stop():
            return
    yield Note(text=f"echo ran to step {step}. Next: workbench runs show {ctx.run_id}")
