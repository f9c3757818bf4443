"""`workbench runs …`: list, inspect, follow, stop, resume and delete runs."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer

from workbench.cli.common import execute_run, refreshed_store
from workbench.cli.tables import print_rows
from workbench.ops import runs as run_ops
from workbench.ops.fmt import fmt, human_age, step_text
from workbench.ops.refs import find_run, run_folder
from workbench.ops.stores import reading, refresh

app = typer.Typer(help="List, inspect, follow, stop, resume and delete runs.", no_args_is_help=True)


@app.command("ls")
def ls(
    status: Annotated[str | None, typer.Option(help="only runs with this status")] = None,
    pipeline: Annotated[str | None, typer.Option(help="only runs of this pipeline")] = None,
    limit: int = 50,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every run, newest first, with status, progress and its key metrics."""
    store = refreshed_store()
    with reading(store):
        runs = store.list_runs(status=status, pipeline=pipeline, limit=limit)
    cols = ["run_id", "pipeline", "status", "step", "loss", "val_loss", "age"]
    rows = [
        (r["run_id"], r["pipeline"], r["status"], step_text(r), r.get("loss"),
         r.get("val_loss"), human_age(r.get("created_at")))
        for r in runs
    ]  # fmt: skip
    print_rows(cols, rows, style="json" if json_ else "table")


@app.command()
def show(run_id: str, json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A run's spec, status, lineage, latest metrics, artifacts and newest samples."""
    store = refreshed_store()
    run = find_run(store, run_id)
    rid = run["run_id"]
    with reading(store):
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
    store = refreshed_store()
    run = find_run(store, run_id)
    path = run_folder(store, run) / "stdout.log"
    if not path.exists():
        path = run_folder(store, run) / "events.jsonl"
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f.readlines()[-lines:]:
            sys.stdout.write(line)
        while follow and _follow_once(f, store, run["run_id"]):
            pass


def _follow_once(f, store, run_id: str) -> bool:
    """Print what the log gained; False once the run is no longer live."""
    line = f.readline()
    if line:
        sys.stdout.write(line)
        sys.stdout.flush()
        return True
    refresh(store)
    if find_run(store, run_id)["status"] not in run_ops.LIVE:
        return False
    time.sleep(0.5)
    return True


@app.command()
def stop(
    run_id: str,
    now: Annotated[
        bool, typer.Option(help="kill at once (SIGKILL) instead of a clean stop")
    ] = False,
) -> None:
    """Ask a running job to finish its step, checkpoint and end as cancelled."""
    typer.echo(run_ops.stop(refreshed_store(), run_id, now=now))


@app.command()
def resume(
    run_id: str,
    detach: Annotated[bool, typer.Option(help="resume in the background")] = False,
) -> None:
    """Continue a stopped, crashed or failed run from its newest complete checkpoint."""
    store = refreshed_store()
    if detach:
        typer.echo(run_ops.resume(store, run_id))
        return
    run, job = run_ops.resumable(store, run_id)
    raise typer.Exit(execute_run(store, run["run_id"], job, json_=False, resume=True))


@app.command()
def rm(
    run_id: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete a run: its store rows and its folder (checkpoints, model). Asks first."""
    store = refreshed_store()
    run = find_run(store, run_id)
    run_ops.check_deletable(run)
    if not yes and not typer.confirm(f"delete {run['run_id']} and {run_folder(store, run)}?"):
        raise typer.Exit(1)
    typer.echo(run_ops.delete(store, run["run_id"]))
