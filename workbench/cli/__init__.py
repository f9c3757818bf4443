"""`workbench`: the headless command line, the same verbs locally or over SSH.

    workbench run --preset pretrain-tiny        # a job in this terminal
    workbench run spec.toml --detach            # a job that outlives the terminal
    workbench runs ls / show ID / logs ID -f / stop ID / resume ID
    workbench sql "select * from run_summary"

Each verb parses its arguments, calls one function of `workbench.ops` and prints the result.
A mistake a user can fix is an `OpError` (or an engine's `UserError`, a spec's `SpecError`, the
store's `StoreError`); `main` turns every one of them, from any verb, into `error: …` on
stderr and exit code 2. Nothing heavy is imported at start: torch, transformers
and textual load inside the verbs that need them, so `workbench --help` answers at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from workbench.cli.common import execute_run, refreshed_store, run_distributed_job
from workbench.ops import runs as run_ops
from workbench.ops import specs

app = typer.Typer(
    help="GPT Workbench: pretrain, fine-tune, align, prompt and compare GPTs; one DuckDB store.",
    no_args_is_help=False,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"gpt-workbench {version('gpt-workbench')}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
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
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="print memory per rank, compute and wall time; start nothing"
        ),
    ] = False,
    nproc: Annotated[
        int | None,
        typer.Option(help="--dry-run: processes the job will run as (default: torchrun's, 1)"),
    ] = None,
    mfu: Annotated[
        float | None, typer.Option(help="--dry-run: the MFU to assume for the wall time")
    ] = None,
) -> None:
    """Start a job: validate the spec, create the run, train / evaluate, record everything."""
    job = specs.load(spec, preset=preset, overrides=set_ or [])
    if dry_run:
        raise typer.Exit(_dry_run(job, json_, nproc, mfu))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        run_distributed_job(job, json_, parent or [])
    store = refreshed_store()
    run_id, pid = run_ops.start(store, job, parents=parent or [], detach=detach)
    if detach:
        typer.echo(f"started {run_id} (pid {pid}); follow with: workbench runs logs {run_id} -f")
        return
    raise typer.Exit(execute_run(store, run_id, job, json_))


def _dry_run(job, json_: bool, nproc: int | None, mfu: float | None) -> int:
    """Print the estimate; a job that does not fit is refused (exit 2) after it."""
    import json

    from workbench.ops import estimate
    from workbench.ops.errors import OpError

    est = estimate.dry_run(refreshed_store(), job, nproc=nproc, mfu=mfu)
    if json_:
        typer.echo(json.dumps(estimate.as_json(est)))
    else:
        for line in estimate.report(est):
            typer.echo(line)
    if est.refusal:
        raise OpError(est.refusal)
    return 0


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
    vertical: Annotated[
        bool, typer.Option("--vertical", "--wide", help="one `column: value` line per cell")
    ] = False,
    write: Annotated[bool, typer.Option("--write", help="allow statements that change it")] = False,
) -> None:
    """Run one SQL statement against the store and print the result.

    Read-only unless --write (then the schema is checked after, and a statement that broke it
    is rolled back). Off a terminal the table is tab-separated; on one, lines overflow
    rather than cut cells.
    """
    from workbench.cli.tables import print_rows
    from workbench.ops.stores import run_sql

    columns, rows = run_sql(refreshed_store(), query, write=write)
    style = "csv" if csv else "json" if json_ else "vertical" if vertical else "table"
    print_rows(columns, rows, style=style)


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

        from workbench.cli.common import offline_templates

        command = f"{sys.executable} -m workbench tui"
        Server(command, host=host, port=port, templates_path=offline_templates()).serve()
        return
    from workbench.tui.app import WorkbenchApp

    WorkbenchApp().run()


def _register_subcommands() -> None:
    from workbench.cli import data, models, runs
    from workbench.cli.doctor import store_app

    app.add_typer(runs.app, name="runs")
    app.add_typer(models.app, name="models")
    app.add_typer(data.data_app, name="data")
    app.add_typer(data.tokenizer_app, name="tokenizer")
    app.add_typer(store_app, name="store")
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
    """The console script: every verb's user-fixable error becomes `error: …` and exit 2."""
    from workbench.ops.errors import as_op_error

    # transformers' own "Loading weights" bars: every verb and the TUI show their own progress
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        app()
    except Exception as e:
        error = as_op_error(e)
        if error is None:
            raise
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
