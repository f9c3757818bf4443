"""Helpers shared by the CLI verbs: errors with exit code 2, the store, starting jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import NoReturn

import typer


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def open_store():
    from store import Store, StoreError

    try:
        store = Store()
        store.refresh()
        return store
    except StoreError as e:
        fail(str(e))


def execute_run(store, run_id: str, job, json_: bool, resume: bool = False) -> int:
    from pipelines.runner import execute
    from workbench.progress import make_printer

    if not json_:
        typer.echo(f"run {run_id}  ({store.runs_dir / run_id})")
    outcome = execute(store, run_id, job, resume=resume, on_event=make_printer(json_))
    if outcome.status not in ("done", "cancelled") and not json_:
        typer.echo(f"error: run {run_id} {outcome.status}: {outcome.reason}", err=True)
    return outcome.exit_code


def run_distributed_job(job, json_: bool, parents: list[str]) -> int:
    from pipelines.distributed import run_distributed
    from workbench.progress import make_printer

    return run_distributed(job, parents, make_printer(json_)).exit_code


def spawn_detached(store, run_id: str, resume: bool = False) -> int:
    """Start `workbench _exec RUN_ID` in its own session, output to the run folder."""
    run_dir = store.runs_dir / run_id
    cmd = [sys.executable, "-m", "workbench", "_exec", run_id] + (["--resume"] if resume else [])
    with open(run_dir / "stdout.log", "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    store.set_process(run_id, proc.pid)  # a job that dies before it starts shows as crashed
    return proc.pid
