"""`workbench data inspect` and `workbench tokenizer train|show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from workbench.cli.common import refreshed_store
from workbench.cli.tables import print_rows
from workbench.ops import OpError, specs

data_app = typer.Typer(help="Look at a data mixture before training on it.", no_args_is_help=True)
tokenizer_app = typer.Typer(
    help="Train a tokenizer or see how one splits text.", no_args_is_help=True
)


def _pretrain_spec(spec: Path | None, preset: str | None, overrides: list[str]):
    job = specs.load(spec, preset=preset, overrides=overrides)
    if job.pipeline != "pretrain":
        raise OpError(
            f"{spec or preset}: `data inspect` takes a pretrain spec, not {job.pipeline!r}"
        )
    return job


@data_app.command()
def inspect(
    spec: Annotated[Path | None, typer.Argument(help="a pretrain spec (TOML)")] = None,
    preset: Annotated[str | None, typer.Option(help="a shipped pretrain preset")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set")] = None,
    draws: Annotated[int, typer.Option(help="rows to draw when measuring shares")] = 4000,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Per source: documents, bytes, tokens, weight, drawn share, effective epochs."""
    from pipelines import pretrain
    from pipelines.runner import execute, prepare_run

    job = _pretrain_spec(spec, preset, set_ or [])
    store = refreshed_store()
    run_id = prepare_run(store, job, pipeline="data-inspect")
    out = execute(store, run_id, job, run_fn=lambda s, c: pretrain.inspect(s, c, draws))
    if out.status != "done":
        typer.echo(f"error: {out.reason or out.status}", err=True)
        raise typer.Exit(out.exit_code)
    rows = store.table(run_id, "mixture")
    cols = [
        "source",
        "docs",
        "bytes",
        "tokens",
        "bytes_per_token",
        "weight",
        "drawn_share",
        "epochs",
        "bad_utf8_docs",
    ]
    print_rows(
        cols,
        [tuple(r.get(c) for c in cols) for r in rows],
        style="json" if json_ else "table",
        title=f"mixture ({run_id})",
    )


@tokenizer_app.command()
def show(
    model: Annotated[str, typer.Argument(help="a registered model, run id or tokenizer folder")],
    text: str,
) -> None:
    """Print TEXT split into tokens with their ids."""
    from rich.console import Console
    from rich.text import Text

    from workbench.ops.data import tokenize

    pieces, _ = tokenize(refreshed_store(), model, text)
    colours = ["on #3b4252", "on #4c566a", "on #5e4b6b", "on #3f5e4b"]
    out = Text()
    for i, (_, piece) in enumerate(pieces):
        out.append(piece.replace("\n", "⏎\n"), style=colours[i % len(colours)])
    console = Console()
    console.print(out)
    console.print(" ".join(f"{tid}:{piece!r}" for tid, piece in pieces), markup=False)
    console.print(
        f"{len(pieces)} tokens, {len(text.encode()) / max(1, len(pieces)):.2f} bytes/token"
    )


@tokenizer_app.command()
def train(
    spec: Annotated[
        Path | None, typer.Argument(help="a pretrain spec: its sources and vocab")
    ] = None,
    preset: Annotated[str | None, typer.Option()] = None,
    set_: Annotated[list[str] | None, typer.Option("--set")] = None,
    out: Annotated[Path, typer.Option(help="folder to write the tokenizer to")] = Path("tokenizer"),
) -> None:
    """Train the spec's BPE tokenizer on a sample of its mixture and save it."""
    from workbench.ops.data import train_tokenizer

    job = _pretrain_spec(spec, preset, set_ or [])
    typer.echo(train_tokenizer(job, out))
