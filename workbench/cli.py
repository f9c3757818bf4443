"""`workbench`: the headless command line, the same verbs locally or over SSH.

    workbench run --preset pretrain-tiny        # a job in this terminal
    workbench run spec.toml --detach            # a job that outlives the terminal
    workbench runs ls / show ID / logs ID -f / stop ID / resume ID
    workbench sql "select * from run_summary"

Nothing heavy is imported at start: torch, transformers and textual load inside the verbs
that need them, so `workbench --help` answers at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from workbench.common import execute_run, fail, open_store, run_distributed_job, spawn_detached

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
    from pipelines.registry import load_spec
    from pipelines.spec import SpecError

    try:
        job = load_spec(spec, preset=preset, overrides=set_ or [])
    except SpecError as e:
        fail(str(e))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        raise typer.Exit(run_distributed_job(job, json_, parent or []))
    store = open_store()
    from pipelines.runner import prepare_run

    run_id = prepare_run(store, job, parents=parent or [])
    if detach:
        pid = spawn_detached(store, run_id)
        typer.echo(f"started {run_id} (pid {pid}); follow with: workbench runs logs {run_id} -f")
        return
    raise typer.Exit(execute_run(store, run_id, job, json_))


@app.command("_exec", hidden=True)
def exec_run(run_id: str, resume: bool = False) -> None:
    """Run a prepared run (used by --detach, `runs resume` and the TUI)."""
    from pipelines.runner import load_run_spec
    from pipelines.spec import SpecError

    store = open_store()
    try:
        job = load_run_spec(store, run_id)
    except SpecError as e:
        fail(str(e))
    raise typer.Exit(execute_run(store, run_id, job, json_=False, resume=resume))


@app.command()
def presets() -> None:
    """List the job specs shipped with the workbench."""
    from pipelines.spec import list_presets, preset_summary

    for name in list_presets():
        pipeline, desc = preset_summary(name)
        typer.echo(f"{name:<24} {pipeline:<10} {desc}")


@app.command()
def sql(
    query: str,
    csv: Annotated[bool, typer.Option("--csv", help="print CSV")] = False,
    json_: Annotated[bool, typer.Option("--json", help="print JSON rows")] = False,
) -> None:
    """Run a SQL query against the store and print the result."""
    from workbench.tables import print_rows

    store = open_store()
    try:
        columns, rows = store.sql(query)
    except Exception as e:  # noqa: BLE001 - duckdb's own message names the problem
        fail(f"query failed: {e}")
    print_rows(columns, rows, style="csv" if csv else "json" if json_ else "table")


@app.command()
def doctor() -> None:
    """Versions, device, paths and store health."""
    from workbench.doctor import report

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
    from workbench.app import WorkbenchApp

    WorkbenchApp().run()


def _register_subcommands() -> None:
    from workbench import cli_data, cli_models, cli_runs

    app.add_typer(cli_runs.app, name="runs")
    app.add_typer(cli_models.app, name="models")
    app.add_typer(cli_data.data_app, name="data")
    app.add_typer(cli_data.tokenizer_app, name="tokenizer")
    for name, fn in cli_models.TOP_LEVEL.items():
        app.command(name)(fn)


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
