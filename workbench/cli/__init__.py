"""`workbench`: the headless command line, the same verbs locally or over SSH.

    workbench run --preset pretrain-tiny        # a job in this terminal
    workbench run spec.toml --detach            # a job that outlives the terminal
    workbench runs ls / show ID / logs ID -f / stop ID / resume ID
    workbench sql "select * from run_summary"

Each verb parses its arguments, calls one function of `workbench.ops` and prints the result.
A mistake a user can fix is an `OpError`; `main` turns every one of them, from any verb, into
`error: …` on stderr and exit code 2. Nothing heavy is imported at start: torch, transformers
and textual load inside the verbs that need them, so `workbench --help` answers at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from workbench.cli.common import execute_run, refreshed_store, run_distributed_job
from workbench.ops import OpError, specs
from workbench.ops import runs as run_ops

app = typer.Typer(
    help="GPT Workbench: pretrain, fine-tune, align, prompt and compare GPTs; one DuckDB store.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def main_callback(ctx: typer.Context) -> None:
    """With no verb on a terminal, open the TUI."""
    if ctx.invoked_subcommand is None:
        if sys.stdin.isatty() and sys.stdout.isatty():
            tui()
        else:
            typer.echo(ctx.get_help())


@app.command()
def run(
    spec: Annotated[Path | None, typer.Argument(help="a job spec (TOML)")] = None,
    preset: Annotated[
        str | None, typer.Option(help="a shipped spec: see `workbench presets`")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override a field: --set train.lr=3e-4")
    ] = None,
    detach: Annotated[bool, typer.Option(help="run in the background, detached (setsid)")] = False,
    json_: Annotated[bool, typer.Option("--json", help="print events as JSON lines")] = False,
    parent: Annotated[list[str] | None, typer.Option(help="a parent run id (lineage)")] = None,
) -> None:
    """Start a job: validate the spec, create the run, train / evaluate, record everything."""
    job = specs.load(spec, preset=preset, overrides=set_ or [])
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise typer.Exit(run_distributed_job(job, json_, parent or []))
    store = refreshed_store()
    run_id, pid = run_ops.start(store, job, parents=parent or [], detach=detach)
    if detach:
        typer.echo(f"started {run_id} (pid {pid}); follow with: workbench runs logs {run_id} -f")
        return
    raise typer.Exit(execute_run(store, run_id, job, json_))


@app.command("_exec", hidden=True)
def exec_run(run_id: str, resume: bool = False) -> None:
    """Run a prepared run (used by --detach, `runs resume` and the TUI)."""
    from pipelines.runner import load_run_spec
    from workbench.ops.errors import user_errors

    store = refreshed_store()
    with user_errors():
        job = load_run_spec(store, run_id)
    raise typer.Exit(execute_run(store, run_id, job, json_=False, resume=resume))


@app.command()
def presets() -> None:
    """List the job specs shipped with the workbench."""
    for name, pipeline, desc in specs.presets():
        typer.echo(f"{name:<24} {pipeline:<10} {desc}")


@app.command()
def sql(
    query: str,
    csv: Annotated[bool, typer.Option("--csv", help="print CSV")] = False,
    json_: Annotated[bool, typer.Option("--json", help="print JSON rows")] = False,
    write: Annotated[bool, typer.Option("--write", help="allow statements that change it")] = False,
) -> None:
    """Run a SQL query against the store and print the result (read-only unless --write)."""
    from workbench.cli.tables import print_rows
    from workbench.ops.stores import run_sql

    columns, rows = run_sql(refreshed_store(), query, write=write)
    print_rows(columns, rows, style="csv" if csv else "json" if json_ else "table")


@app.command()
def doctor() -> None:
    """Versions, device, paths and store health."""
    from workbench.cli.doctor import report

    raise typer.Exit(report())


@app.command()
def tui(
    serve: Annotated[bool, typer.Option(help="serve the TUI to a browser (textual-serve)")] = False,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Open the terminal UI (the default with no verb on a terminal)."""
    if serve:
        from textual_serve.server import Server

        Server(f"{sys.executable} -m workbench tui", host=host, port=port).serve()
        return
    from workbench.tui.app import WorkbenchApp

    WorkbenchApp().run()


def _register_subcommands() -> None:
    from workbench.cli import data, models, runs

    app.add_typer(runs.app, name="runs")
    app.add_typer(models.app, name="models")
    app.add_typer(data.data_app, name="data")
    app.add_typer(data.tokenizer_app, name="tokenizer")
    from workbench.cli import evaluate, reward  # reward models and evaluations (issue 11)

    app.add_typer(reward.app, name="reward")
    app.add_typer(evaluate.app, name="eval")
    from workbench.cli import prompt, rag  # the prompting lab and RAG indexes (issue 12)

    prompt.register_eval(evaluate.app)
    app.command("prompt")(prompt.prompt)
    app.add_typer(rag.app, name="rag")
    for name, fn in models.TOP_LEVEL.items():
        app.command(name)(fn)


_register_subcommands()


def main() -> None:
    """The console script: every verb's OpError becomes `error: …` and exit code 2."""
    try:
        app()
    except OpError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
