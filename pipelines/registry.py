"""The pipeline registry: stage name -> module with a `Spec` and a `run(spec, ctx)`.

Importing a stage module is cheap (pydantic only); the module imports torch and engines
inside `run()`. A new stage plugs in by adding one line here.
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from pipelines.spec import JobSpec, SpecError, apply_overrides, preset_path, read_toml, validate

PIPELINES: dict[str, str] = {
    "echo": "pipelines.echo",
    "pretrain": "pipelines.pretrain",
    "sft": "pipelines.sft",
    "reward": "pipelines.reward",
    "grpo": "pipelines.grpo",
    "dpo": "pipelines.dpo",
    "ppo": "pipelines.ppo",
    "chain": "pipelines.chain",
}


def pipeline_module(name: str) -> ModuleType:
    if name not in PIPELINES:
        close = difflib.get_close_matches(name, list(PIPELINES), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"one of: {', '.join(PIPELINES)}"
        raise SpecError(f"unknown pipeline {name!r} — {hint}")
    return importlib.import_module(PIPELINES[name])


def spec_class(name: str) -> type[JobSpec]:
    return pipeline_module(name).Spec


def load_spec(
    path: Path | None = None, *, preset: str | None = None, overrides: list[str] | None = None
) -> JobSpec:
    """Read, override and validate a spec file or a shipped preset. Raises SpecError."""
    if path is None and preset is None:
        raise SpecError(
            "give a spec file (workbench run my.toml) or --preset NAME (see `workbench presets`)"
        )
    if path is not None and preset is not None:
        raise SpecError(f"give a spec file or --preset, not both (got {path} and {preset!r})")
    source = preset_path(preset) if preset else Path(path)
    data = apply_overrides(read_toml(source), overrides or [])
    return spec_from_dict(data, where=str(source), base_dir=source.parent)


def spec_from_dict(data: dict[str, Any], *, where: str, base_dir: Path | None = None) -> JobSpec:
    name = data.get("pipeline")
    if not isinstance(name, str):
        raise SpecError(
            f"{where}: missing field 'pipeline' — add e.g. pipeline = \"pretrain\" "
            f"(one of: {', '.join(PIPELINES)})"
        )
    try:
        spec_cls = spec_class(name)
    except SpecError as e:
        raise SpecError(f"{where}: field 'pipeline': {e}") from None
    spec = validate(spec_cls, data, where)
    check = getattr(spec, "check_files", None)
    if check is not None:
        check(base_dir or Path.cwd(), where)
    return spec


def preflight(job: JobSpec, store: Any = None) -> None:
    """The stage's cheap checks before its run exists (data, device, memory); SpecError."""
    from pipelines.sft_spec import check_qlora

    check_qlora(job)  # a [lora] section's 4-bit base (QLoRA): CUDA, bitsandbytes, no FSDP
    check = getattr(pipeline_module(job.pipeline), "preflight", None)
    if check is not None:
        check(job, store)
