"""A model reference in a spec → its folder: a registry name, a run id that made a model, or
a path. One rule for every stage (`sft model.base`, `tokenizer.from_model`, preflight)."""

from __future__ import annotations

from pathlib import Path

from pipelines.spec import SpecError


def resolve_model(store, ref: str) -> Path:
    """The folder `ref` names; a SpecError saying where to look when it names nothing."""
    model = store.get_model(ref) if store is not None else None
    if model:
        return Path(model["path"])
    run = store.get_run(ref) if store is not None else None
    if run and (Path(run["run_dir"]) / "model").exists():
        return Path(run["run_dir"]) / "model"
    path = Path(ref).expanduser()
    if path.exists():
        return path.resolve()
    from engines.hub import KNOWN_MODELS

    if ref in KNOWN_MODELS:
        raise SpecError(f"model {ref!r} is not pulled yet: workbench models pull {ref}")
    raise SpecError(
        f"model {ref!r} is not a registered model, a run with a model, or a folder — "
        "see `workbench models ls`"
    )
