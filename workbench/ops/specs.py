"""Job specs for the front ends: load one, list pipelines and presets, validate a form.

    spec = load(Path("job.toml"), preset=None, overrides=["train.lr=3e-4"])
    names = launchable_pipelines()        # what Launch offers
    spec = from_form({"pipeline": "echo", "steps": 3})

Every mistake comes back as an OpError whose message names the file, the field and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.ops.errors import OpError, user_errors


def load(path: Path | None, *, preset: str | None = None, overrides: list[str] | None = None):
    """Read, override and validate a spec file or a shipped preset.

    A validation error lists every problem, one a line, each named by where the value came
    from: the `--set KEY=VALUE` that gave it, else the file.
    """
    from pipelines.registry import load_spec
    from pipelines.spec import SpecError

    overrides = overrides or []
    with user_errors():
        try:
            return load_spec(path, preset=preset, overrides=overrides)
        except SpecError as e:
            raise OpError(every_problem(path, preset, overrides) or str(e)) from e


def every_problem(path: Path | None, preset: str | None, overrides: list[str]) -> str | None:
    """All validation problems of a spec, one a line; None when it is not a validation error."""
    from pydantic import ValidationError

    from pipelines.registry import spec_class
    from pipelines.spec import apply_overrides, describe_error, preset_path, read_toml

    try:
        source = preset_path(preset) if preset else Path(path or "")
        data = apply_overrides(read_toml(source), overrides)
        spec_cls = spec_class(data.get("pipeline"))
        spec_cls.model_validate(data)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        lines = [describe_error(_origin(err["loc"], overrides, source), spec_cls, err)
                 for err in errors]  # fmt: skip
        head = f"{len(lines)} problems in the spec:\n  " if len(lines) > 1 else ""
        return head + "\n  ".join(lines)
    except Exception:  # noqa: BLE001 - not a validation error: the original message stands
        return None
    return None


def _origin(loc: tuple, overrides: list[str], source: Path) -> str:
    """`--set KEY=VALUE` when an override set the field at `loc` (or a section above it)."""
    path = [str(p) for p in loc]
    for item in reversed(overrides) if path else ():
        key = item.split("=", 1)[0].strip().split(".")
        if path[: len(key)] == key or key[: len(path)] == path:
            return f"--set {item}"
    return str(source)


def from_form(data: dict[str, Any]) -> Any:
    """Validate the Launch form's values with the pipeline's Spec."""
    from pipelines.registry import spec_from_dict

    with user_errors():
        return spec_from_dict(data, where="form")


def spec_class(pipeline: str) -> type:
    from pipelines.registry import spec_class as find

    with user_errors():
        return find(pipeline)


def launchable_pipelines() -> list[str]:
    """Pipelines whose module and Spec import (a stage still being written is left out)."""
    from pipelines.registry import PIPELINES

    names = []
    for name in PIPELINES:
        try:
            spec_class(name)
        except Exception:  # noqa: BLE001, S112 - a broken or missing stage is just not offered
            continue
        names.append(name)
    return names


def presets() -> list[tuple[str, str, str]]:
    """(name, pipeline, description) of every shipped preset."""
    from pipelines.spec import list_presets, preset_summary

    return [(name, *preset_summary(name)) for name in list_presets()]


def presets_for(pipeline: str) -> list[str]:
    return [name for name, p, _ in presets() if p == pipeline]


def preset_values(name: str) -> dict[str, Any]:
    from pipelines.spec import preset_path, read_toml

    with user_errors():
        return read_toml(preset_path(name))
