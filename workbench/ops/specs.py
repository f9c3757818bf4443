"""Job specs for the front ends: load one, list pipelines and presets, validate a form.

    spec = load(Path("job.toml"), preset=None, overrides=["train.lr=3e-4"])
    names = launchable_pipelines()        # what Launch offers
    spec = from_form({"pipeline": "echo", "steps": 3})

Every mistake comes back as an OpError whose message names the file, the field and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.ops.errors import user_errors


def load(path: Path | None, *, preset: str | None = None, overrides: list[str] | None = None):
    """Read, override and validate a spec file or a shipped preset."""
    from pipelines.registry import load_spec

    with user_errors():
        return load_spec(path, preset=preset, overrides=overrides or [])


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
