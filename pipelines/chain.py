"""Chains: several stages in one command, each starting from the previous stage's model.

    workbench run --preset state-of-gpt-tiny     # pretrain → SFT → reward model → PPO

A chain spec lists stages; each names a preset (or a spec file) plus `--set`-style overrides.
In an override, `@NAME` stands for the model made by the earlier stage NAME, so
`"model.base=@pretrain"` starts SFT from the pretrained model. Every stage's model registers
as `<chain name>-<stage name>` unless the stage sets `output.model_name` itself.

Each stage is an ordinary run of its own (`workbench runs ls` shows it; its lineage comes from
the models it starts from, so base → SFT → RM → PPO), executed as a child process of the chain
run. The chain records which run each stage became (runs/<chain>/stages.json): `runs resume`
on a chain skips finished stages and resumes the interrupted one from its checkpoint.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipelines.spec import JobSpec, Section, SpecError
from store.events import Event, Metrics, Note, Progress, RunFinished, Table

__all__ = ["Spec", "preflight", "run"]
REF = re.compile(r"@([A-Za-z][\w-]*)")


class Stage(Section):
    name: str = Field(pattern=r"^[A-Za-z][\w-]*$", description="the stage's name (for @NAME)")
    preset: str | None = Field(None, description="a shipped preset to start from")
    spec: str | None = Field(None, description="or a spec file (relative to the chain's file)")
    set: list[str] = Field(default_factory=list, description="overrides, e.g. train.max_steps=50")

    @model_validator(mode="after")
    def _one_source(self) -> Stage:
        if (self.preset is None) == (self.spec is None):
            raise ValueError(f"stage {self.name!r}: give exactly one of preset or spec")
        return self


class Spec(JobSpec):
    pipeline: Literal["chain"] = "chain"
    stages: list[Stage] = Field(min_length=1, description="the stages, in order")

    @field_validator("stages")
    @classmethod
    def _refs_point_back(cls, stages: list[Stage]) -> list[Stage]:
        seen: list[str] = []
        for stage in stages:
            if stage.name in seen:
                raise ValueError(f"two stages are called {stage.name!r}")
            for ref in (m for item in stage.set for m in REF.findall(item)):
                if ref not in seen:
                    raise ValueError(f"stage {stage.name!r} refers to @{ref}, not an earlier stage")
            seen.append(stage.name)
        return stages

    def check_files(self, base_dir: Path, where: str) -> None:
        for stage in self.stages:
            if stage.spec:
                p = Path(stage.spec).expanduser()
                p = p if p.is_absolute() else base_dir / p
                if not p.exists():
                    raise SpecError(f"{where}: stage {stage.name!r}: spec file {p} does not exist")
                stage.spec = str(p.resolve())


def model_name(spec: Spec, stage: Stage) -> str:
    return f"{spec.name or 'chain'}-{stage.name}"


def stage_spec(spec: Spec, stage: Stage, names: dict[str, str]) -> JobSpec:
    """The stage's validated spec: its preset or file, `@NAME` replaced, model name set."""
    from pipelines.registry import load_spec

    sets = [REF.sub(lambda m: names.get(m[1], m[0]), item) for item in stage.set]
    if not any(s.startswith("output.model_name=") for s in sets):
        sets.append(f"output.model_name={model_name(spec, stage)}")
    path = Path(stage.spec) if stage.spec else None
    try:
        return load_spec(path, preset=stage.preset, overrides=sets)
    except SpecError as e:
        raise SpecError(f"stage {stage.name!r}: {e}") from None


def preflight(spec: Spec, store=None) -> None:
    """Every stage's spec validates (with its @NAME references filled in)."""
    names = {s.name: model_name(spec, s) for s in spec.stages}
    for stage in spec.stages:
        stage_spec(spec, stage, names)


def run(spec: Spec, ctx) -> Iterator[Event]:
    import time

    t0, done = time.monotonic(), _load_stages(ctx)
    names = {s.name: model_name(spec, s) for s in spec.stages}
    rows = []
    for i, stage in enumerate(spec.stages):
        yield Progress(step=i, total=len(spec.stages), phase="chain", message=stage.name)
        job = stage_spec(spec, stage, names)
        names[stage.name] = job.output.model_name
        child, status = yield from _run_stage(ctx, stage, job, done)
        rows.append({"stage": stage.name, "pipeline": job.pipeline, "run_id": child,
                     "model": names[stage.name], "status": status})  # fmt: skip
        if status != "done":
            yield Table(name="stages", rows=rows)
            yield RunFinished(status="cancelled" if status == "cancelled" else "failed",
                              reason=f"stage {stage.name!r} ({child}) ended {status}")  # fmt: skip
            return
    yield Table(name="stages", rows=rows)
    yield Metrics(step=len(spec.stages), values={"wall_s": time.monotonic() - t0}, split="info")
    chain = " → ".join(r["model"] for r in rows)
    yield Note(text=f"chain done in {time.monotonic() - t0:.0f} s: {chain}")


def _load_stages(ctx) -> dict[str, str]:
    path = ctx.run_dir / "stages.json"
    return json.loads(path.read_text()) if ctx.resume and path.exists() else {}


def _save_stages(ctx, done: dict[str, str]) -> None:
    tmp = ctx.run_dir / "stages.json.tmp"
    tmp.write_text(json.dumps(done, indent=1))
    tmp.replace(ctx.run_dir / "stages.json")


def _run_stage(ctx, stage: Stage, job: JobSpec, done: dict[str, str]):
    """Run (or resume, or skip) one stage as a child process; (child run id, its status)."""
    from pipelines.runner import prepare_run

    store, child = ctx.store, done.get(stage.name)
    status = _status(store, child) if child else None
    if status == "done":
        yield Note(text=f"stage {stage.name}: already done ({child})")
        return child, status
    resume = child is not None
    if not resume:
        child = prepare_run(store, job)
        done[stage.name] = child
        _save_stages(ctx, done)
    yield Note(text=f"stage {stage.name} ({job.pipeline}): run {child}"
                    + (" resumed" if resume else ""))  # fmt: skip
    status = yield from _wait(ctx, child, resume)
    return child, status


def _wait(ctx, child: str, resume: bool):
    """Run `workbench _exec CHILD` and wait; a stop request is passed on as SIGTERM."""
    import os
    import signal
    import subprocess
    import sys

    log = ctx.run_dir / f"{child}.log"
    cmd = [sys.executable, "-m", "workbench", "_exec", child] + (["--resume"] if resume else [])
    env = {**os.environ, "WORKBENCH_HOME": str(ctx.store.home), "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        ctx.store.set_process(child, proc.pid)
        signalled = False
        while proc.poll() is None:
            if ctx.should_stop() and not signalled:
                proc.send_signal(signal.SIGTERM)
                signalled = True
            try:
                proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
    yield Note(text=f"run {child} exited {proc.returncode} (log: {log})")
    return _status(ctx.store, child)


def _status(store, run_id: str) -> str:
    store.ingest(run_id)
    run = store.get_run(run_id)
    return run["status"] if run else "missing"
