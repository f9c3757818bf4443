"""`workbench runs …`: list, inspect, follow, stop, resume and delete runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from workbench.common import fail, open_store
from workbench.tables import fmt, human_age, print_rows

app = typer.Typer(help="List, inspect, follow, stop, resume and delete runs.", no_args_is_help=True)


def _run_or_fail(store, run_id: str) -> dict:
    run = store.get_run(run_id)
    if run is None:
        matches = [r["run_id"] for r in store.list_runs() if r["run_id"].startswith(run_id)]
        if len(matches) == 1:
            return store.get_run(matches[0])
        hint = f"{len(matches)} runs start with it" if matches else "see `workbench runs ls`"
        fail(f"no run {run_id!r} — {hint}")
    return run


@app.command("ls")
def ls(
    status: Annotated[str | None, typer.Option(help="only runs with this status")] = None,
    pipeline: Annotated[str | None, typer.Option(help="only runs of this pipeline")] = None,
    limit: int = 50,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every run, newest first, with status, progress and its key metrics."""
    store = open_store()
    runs = store.list_runs(status=status, pipeline=pipeline, limit=limit)
    cols = ["run_id", "pipeline", "status", "step", "loss", "val_loss", "age"]
    rows = []
    for r in runs:
        m = store.latest_metrics(r["run_id"])
        step = f"{r.get('progress_step') or 0}/{r.get('progress_total') or '?'}"
        rows.append(
            (
                r["run_id"],
                r["pipeline"],
                r["status"],
                step,
                m.get("loss"),
                m.get("val_loss"),
                human_age(r.get("created_at")),
            )
        )
    print_rows(cols, rows, style="json" if json_ else "table")


@app.command()
def show(run_id: str, json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A run's spec, status, lineage, latest metrics, artifacts and newest samples."""
    store = open_store()
    run = _run_or_fail(store, run_id)
    rid = run["run_id"]
    info = {
        "run": {k: v for k, v in run.items() if k not in ("spec", "meta")},
        "latest_metrics": store.latest_metrics(rid),
        "artifacts": store.artifacts(rid),
        "children": [c["run_id"] for c in store.children(rid)],
        "samples": store.samples(rid)[-3:],
        "spec": run["spec"],
        "meta": run["meta"],
    }
    if json_:
        typer.echo(json.dumps(info, default=str, indent=2))
        return
    typer.echo(f"{rid}  [{run['status']}]  {run['pipeline']}  {run.get('reason') or ''}")
    typer.echo(f"  folder:   {run['run_dir']}")
    typer.echo(f"  parents:  {', '.join(run.get('parents') or []) or '-'}")
    typer.echo(f"  children: {', '.join(info['children']) or '-'}")
    for k, v in info["latest_metrics"].items():
        typer.echo(f"  {k:<16} {fmt(v)}")
    for a in info["artifacts"][-5:]:
        typer.echo(f"  {a['type']:<10} {a['path']}")
    for s in info["samples"]:
        typer.echo(f"  sample @{s['step']}: {(s['prompt'] + s['completion'])[:160]!r}")


@app.command()
def logs(
    run_id: str,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="keep printing as the run writes")
    ] = False,
    lines: Annotated[int, typer.Option("-n", help="how many lines from the end")] = 40,
) -> None:
    """The run's output log (stdout.log), or its events when it ran in a terminal."""
    store = open_store()
    run = _run_or_fail(store, run_id)
    path = Path(run["run_dir"]) / "stdout.log"
    if not path.exists():
        path = Path(run["run_dir"]) / "events.jsonl"
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f.readlines()[-lines:]:
            sys.stdout.write(line)
        while follow:
            line = f.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
                continue
            store.refresh()
            if store.get_run(run["run_id"])["status"] not in ("running", "queued"):
                break
            time.sleep(0.5)


@app.command()
def stop(
    run_id: str,
    now: Annotated[
        bool, typer.Option(help="kill at once (SIGKILL) instead of a clean stop")
    ] = False,
) -> None:
    """Ask a running job to finish its step, checkpoint and end as cancelled."""
    store = open_store()
    run = _run_or_fail(store, run_id)
    if run["status"] not in ("running", "queued") or not run.get("pid"):
        fail(f"run {run['run_id']} is {run['status']}, not running")
    if run.get("host") and run["host"] != socket.gethostname():
        fail(f"run {run['run_id']} runs on {run['host']}; stop it there")
    try:
        os.kill(run["pid"], signal.SIGKILL if now else signal.SIGTERM)
    except ProcessLookupError:
        fail(f"run {run['run_id']}: process {run['pid']} is gone (it will show as crashed)")
    typer.echo(f"{'killed' if now else 'asked to stop'}: {run['run_id']} (pid {run['pid']})")


@app.command()
def resume(
    run_id: str,
    detach: Annotated[bool, typer.Option(help="resume in the background")] = False,
) -> None:
    """Continue a stopped, crashed or failed run from its newest complete checkpoint."""
    from pipelines.runner import load_run_spec
    from pipelines.spec import SpecError
    from workbench.common import execute_run, spawn_detached

    store = open_store()
    run = _run_or_fail(store, run_id)
    if run["status"] in ("running", "done"):
        fail(f"run {run['run_id']} is {run['status']}; only stopped or crashed runs resume")
    try:
        job = load_run_spec(store, run["run_id"])
    except SpecError as e:
        fail(str(e))
    if detach:
        pid = spawn_detached(store, run["run_id"], resume=True)
        typer.echo(f"resumed {run['run_id']} (pid {pid})")
        return
    raise typer.Exit(execute_run(store, run["run_id"], job, json_=False, resume=True))


@app.command()
def rm(
    run_id: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete a run: its store rows and its folder (checkpoints, model). Asks first."""
    store = open_store()
    run = _run_or_fail(store, run_id)
    if run["status"] == "running":
        fail(f"run {run['run_id']} is running; stop it first")
    if not yes and not typer.confirm(f"delete {run['run_id']} and {run['run_dir']}?"):
        raise typer.Exit(1)
    store.delete_run(run["run_id"])
    shutil.rmtree(run["run_dir"], ignore_errors=True)
    typer.echo(f"deleted {run['run_id']}")
