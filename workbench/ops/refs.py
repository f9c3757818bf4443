"""Resolve what a user types for a run, a model or a tokenizer: one rule everywhere.

    run = find_run(store, "echo-2025")          # a run id, a unique id prefix or a run name
    folder = model_folder(store, "tiny")        # a registry name, a run (its model), a folder

A reference may say what it names with a prefix: `model:NAME`, `run:ID`. Without one, a
registered model wins over a run, and a run over a folder path — the rule of
`pipelines.model_refs`, which specs use, so a reference means the same everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.ops.errors import OpError, user_errors
from workbench.ops.stores import reading


def find_run(store: Any, ref: str) -> dict[str, Any]:
    """The run a reference names; OpError otherwise. In order: a run id, a unique id prefix,
    a run name or a preset's name (its newest run), a model (`name`, `name@N`: the run that
    made it)."""
    ref = ref.removeprefix("run:")
    with reading(store):
        run = store.get_run(ref)
        if run is not None:
            return run
        runs = store.list_runs()  # newest first
        model = store.get_model(ref) if ref else None
    by_id = [r for r in runs if r["run_id"].startswith(ref)] if ref else []
    if len(by_id) == 1:
        return by_id[0]
    named = [r for r in runs if ref and ref in (r.get("name"), _preset(r))]
    if named:
        return named[0]
    made = [r for r in runs if model and r["run_id"] == model.get("run_id")]
    if made:
        return made[0]
    hint = (f"{len(by_id)} run ids start with it; type more of the id" if by_id
            else "see `workbench runs ls`")  # fmt: skip
    raise OpError(f"no run {ref!r} — {hint}")


def _preset(run: dict[str, Any]) -> str | None:
    """The preset a run was started from, when its spec says so (its output model's name)."""
    spec = run.get("spec") or {}
    if isinstance(spec, str):
        return None
    output = spec.get("output") or {}
    return output.get("model_name") if isinstance(output, dict) else None


def find_model(store: Any, name: str) -> dict[str, Any]:
    """A registered model by name; OpError naming `workbench models ls` otherwise."""
    model = store.get_model(name.removeprefix("model:"))
    if model is None:
        raise OpError(f"no model {name!r} — see `workbench models ls`")
    return model


def model_folder(store: Any, ref: str) -> Path:
    """The HF folder a model reference names: a registered model (`name`, `name@N`), a run
    that made a model (its id, an id prefix or its name), or a folder path.

    The rule itself is the pipelines' (`pipelines.model_refs.resolve_model`, which a spec's
    `model.base` and `tokenizer.from_model` go through); this adds run prefixes and names.
    """
    from pipelines.model_refs import resolve_model

    kind, _, name = ref.partition(":")
    if kind not in ("model", "run"):
        kind, name = "", ref
    if kind != "model" and store.get_model(name) is None and (run := maybe_run(store, name)):
        name = run["run_id"]
    with user_errors():
        return resolve_model(store, name)


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
