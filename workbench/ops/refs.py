"""Resolve what a user types for a run, a model or a tokenizer: one rule everywhere.

    run = find_run(store, "echo-2025")          # a run id, a unique id prefix or a run name
    folder = model_folder(store, "tiny")        # a registry name, a run (its model), a folder

A reference may say what it names with a prefix: `model:NAME`, `run:ID`. Without one, a
registered model wins over a run, and a run over a folder path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.ops.errors import OpError
from workbench.ops.stores import reading


def find_run(store: Any, ref: str) -> dict[str, Any]:
    """The run a reference names (id, unique id prefix, or unique name); OpError otherwise."""
    ref = ref.removeprefix("run:")
    with reading(store):
        run = store.get_run(ref)
        if run is not None:
            return run
        runs = store.list_runs()
    matches = [r for r in runs if r["run_id"].startswith(ref)] or [
        r for r in runs if r.get("name") == ref
    ]
    if len(matches) == 1:
        return matches[0]
    hint = f"{len(matches)} runs match it" if matches else "see `workbench runs ls`"
    raise OpError(f"no run {ref!r} — {hint}")


def find_model(store: Any, name: str) -> dict[str, Any]:
    """A registered model by name; OpError naming `workbench models ls` otherwise."""
    model = store.get_model(name.removeprefix("model:"))
    if model is None:
        raise OpError(f"no model {name!r} — see `workbench models ls`")
    return model


def model_folder(store: Any, ref: str) -> Path:
    """The HF folder a model reference names: registered model, a run's model, or a path."""
    for folder in candidates(store, ref, ("model",)):
        return folder
    raise OpError(
        f"model {ref!r} is not a registered model, a run with a model, or a folder — "
        "see `workbench models ls`"
    )


def candidates(store: Any, ref: str, subfolders: tuple[str, ...]):
    kind, _, name = ref.partition(":")
    if kind not in ("model", "run"):
        kind, name = "", ref
    if kind in ("", "model") and (model := store.get_model(name)):
        yield Path(model["path"])
        return
    if kind in ("", "run") and (run := maybe_run(store, ref)):
        for sub in subfolders:
            if (run_folder(store, run) / sub).exists():
                yield run_folder(store, run) / sub
        return
    path = Path(name).expanduser()
    if not kind and path.exists():
        yield path.resolve()


def maybe_run(store: Any, ref: str) -> dict[str, Any] | None:
    if ref.startswith("model:"):
        return None
    try:
        return find_run(store, ref)
    except OpError:
        return None


def run_folder(store: Any, run: dict[str, Any]) -> Path:
    return Path(run.get("run_dir") or store.run_dir(run["run_id"]))
