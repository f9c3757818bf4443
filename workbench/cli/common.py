"""What the CLI verbs share: the refreshed store and running a job in this terminal."""

from __future__ import annotations

from typing import NoReturn

import typer

from workbench.ops.stores import refreshed_store

__all__ = ["execute_run", "offline_templates", "refreshed_store", "run_distributed_job"]


def execute_run(store, run_id: str, job, json_: bool, resume: bool = False) -> int:
    """Run a prepared run in this process, printing its events; return the exit code."""
    from pipelines.runner import execute
    from workbench.cli.progress import make_printer

    if not json_:
        typer.echo(f"run {run_id}  ({store.runs_dir / run_id})")
    outcome = execute(store, run_id, job, resume=resume, on_event=make_printer(json_))
    if outcome.status not in ("done", "cancelled") and not json_:
        typer.echo(f"error: run {run_id} {outcome.status}: {outcome.reason}", err=True)
    return outcome.exit_code


def run_distributed_job(job, json_: bool, parents: list[str]) -> NoReturn:
    """This process is one rank of a torchrun job: run it, then end the process at once
    (engines.distributed.leave says why)."""
    from pipelines.distributed import run_distributed
    from workbench.cli.progress import make_printer

    run_distributed(job, parents, make_printer(json_))


def offline_templates() -> str:
    """textual-serve's page templates without the web-font link: `tui --serve` works offline
    (the browser's own monospace font is used)."""
    import re
    import tempfile
    from pathlib import Path

    import textual_serve

    src = Path(textual_serve.__file__).parent / "templates"
    out = Path(tempfile.mkdtemp(prefix="workbench-serve-"))
    for page in src.glob("*.html"):
        text = re.sub(r"<link[^>]*https?://fonts\.[^>]*>", "", page.read_text())
        (out / page.name).write_text(text)
    return str(out)
