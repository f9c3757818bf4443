"""`workbench runs …`: list, inspect, follow, stop, resume and delete runs."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer

from workbench.cli.common import execute_run, refreshed_store
from workbench.cli.tables import json_value, print_rows
from workbench.ops import runlist
from workbench.ops import runs as run_ops
from workbench.ops.fmt import fmt_metric, human_age, human_seconds, step_text
from workbench.ops.refs import find_run, run_folder
from workbench.ops.stores import reading, refresh

app = typer.Typer(help="List, inspect, follow, stop, resume and delete runs.", no_args_is_help=True)


LS_COLUMNS = ["run_id", "name", "pipeline", "status", "phase", "step", "eta", "loss",
              "best_val_loss", "tags", "age"]  # fmt: skip
JSON_FIELDS = ["run_id", "name", "pipeline", "status", "reason", "created_at", "finished_at",
               "progress_phase", "progress_step", "progress_total", "eta_s", "loss", "val_loss",
               "best_val_loss", "tags", "parents", "run_dir"]  # fmt: skip


@app.command("ls")
def ls(
    status: Annotated[str | None, typer.Option(help="only runs with this status")] = None,
    pipeline: Annotated[str | None, typer.Option(help="only runs of this pipeline")] = None,
    limit: Annotated[int, typer.Option(help="at most this many runs")] = 50,
    all_: Annotated[bool, typer.Option("--all", help="also `data inspect` runs")] = False,
    hp: Annotated[
        list[str] | None, typer.Option(help="add a spec field as a column: --hp train.lr")
    ] = None,
    sort: Annotated[
        str | None, typer.Option(help="sort by a column or spec field; -COLUMN descends")
    ] = None,
    filter_: Annotated[
        list[str] | None,
        typer.Option("--filter", help="COLUMN=VALUE, COLUMN<VALUE, tag=NAME …"),
    ] = None,
    watch: Annotated[
        bool, typer.Option(help="redraw every 2 s; ring the bell when a run ends")
    ] = False,
    json_: Annotated[
        bool, typer.Option("--json", help="JSON lines: numbers and ISO times")
    ] = False,
) -> None:
    """Every run, newest first: name, status, phase, progress, ETA, loss, best val loss, tags.

    Off a terminal the table is tab-separated (one run a line, nothing cut).
    """
    store = refreshed_store()
    args = (store, status, pipeline, limit, all_, hp or [], sort, filter_ or [], json_)
    if not watch:
        _print_runs(*args)
        return
    _watch(store, lambda: _print_runs(*args))


def _print_runs(store, status, pipeline, limit, all_, hp, sort, filters, json_) -> list[dict]:
    rows = runlist.run_rows(store, hp=hp, include_all=all_, status=status, pipeline=pipeline,
                            limit=limit if not (sort or filters) else None)  # fmt: skip
    rows = runlist.sort_rows(runlist.filter_rows(rows, filters), sort)[: max(0, limit)]
    if json_:
        cols = JSON_FIELDS + hp
        print_rows(cols, [tuple(r.get(c) for c in cols) for r in rows], style="json")
        return rows
    cols = LS_COLUMNS[:-1] + hp + LS_COLUMNS[-1:]
    print_rows(cols, [_cells(r, hp) for r in rows])
    return rows


def _cells(r: dict, hp: list[str]) -> tuple:
    eta = human_seconds(r["eta_s"]) if r.get("eta_s") is not None else "-"
    return (r["run_id"], r.get("name") or "-", r["pipeline"], r["status"], r["phase"],
            step_text(r), eta, r.get("loss"), r.get("best_val_loss"),
            ",".join(r["tags"]) or "-", *(r.get(k) for k in hp),
            human_age(r.get("created_at")))  # fmt: skip


def _watch(store, show) -> None:
    """Redraw the list every 2 s until Ctrl-C; ring the bell when a run ends."""
    before: dict[str, str] = {}
    try:
        while True:
            if sys.stdout.isatty():
                sys.stdout.write("\x1b[H\x1b[2J")
            rows = show()
            for r in runlist.finished_since(before, rows):
                typer.echo(f"\a{r['run_id']} ended: {r['status']}")
            before = {r["run_id"]: r["status"] for r in rows}
            sys.stdout.flush()
            time.sleep(2)
            refresh(store)
    except KeyboardInterrupt:
        pass


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="a run id, id prefix, run name or model name")],
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A run's spec, status, phase and ETA, lineage, latest metrics, artifacts, models, tags,
    notes and newest samples."""
    store = refreshed_store()
    run = find_run(store, run_id)
    rid = run["run_id"]
    with reading(store):
        info = {
            "run": {k: v for k, v in run.items() if k not in ("spec", "meta")},
            "latest_metrics": store.latest_metrics(rid),
            "artifacts": store.artifacts(rid),
            "children": [c["run_id"] for c in store.children(rid)],
            "models": [m["ref"] for m in store.list_models() if m.get("run_id") == rid],
            "samples": store.samples(rid)[-3:],
            "spec": run["spec"],
            "meta": run["meta"],
        }
    info.update(runlist.user_data(store, run))
    info["eta_s"] = runlist.run_eta(store, run)
    if json_:
        typer.echo(json.dumps(info, default=json_value, indent=2))
        return
    _print_show(run, info)


def _print_show(run: dict, info: dict) -> None:
    name = f"  ({run['name']})" if run.get("name") else ""
    typer.echo(f"{run['run_id']}{name}  [{run['status']}]  {run['pipeline']}  "
               f"{run.get('reason') or ''}".rstrip())  # fmt: skip
    if run.get("progress_phase"):
        eta = f", about {human_seconds(info['eta_s'])} left" if info.get("eta_s") else ""
        typer.echo(f"  phase:    {run['progress_phase']} {step_text(run)}{eta}")
    typer.echo(f"  folder:   {run['run_dir']}")
    typer.echo(f"  parents:  {', '.join(run.get('parents') or []) or '-'}")
    typer.echo(f"  children: {', '.join(info['children']) or '-'}")
    typer.echo(f"  models:   {', '.join(info['models']) or '-'}")
    if info["tags"]:
        typer.echo(f"  tags:     {', '.join(info['tags'])}")
    for k, v in info["latest_metrics"].items():
        typer.echo(f"  {k:<16} {fmt_metric(k, v)}")
    for a in info["artifacts"][-5:]:
        typer.echo(f"  {a['type']:<10} {a['path']}")
    for s in info["samples"]:
        typer.echo(f"  sample @{s['step']}: {(s['prompt'] + s['completion'])[:160]!r}")
    for n in info["notes"]:
        typer.echo(f"  note {n['t']}: {n['text']}")


@app.command()
def tag(
    run_id: Annotated[str, typer.Argument(help="a run id, id prefix or name")],
    name: str,
    remove: Annotated[bool, typer.Option("--remove", help="take the tag off")] = False,
) -> None:
    """Tag a run (one word); `runs ls --filter tag=NAME` finds it."""
    typer.echo(runlist.tag(refreshed_store(), run_id, name, remove=remove))


@app.command()
def note(
    run_id: Annotated[str, typer.Argument(help="a run id, id prefix or name")], text: str
) -> None:
    """Add a dated note to a run (shown by `runs show`)."""
    typer.echo(runlist.note(refreshed_store(), run_id, text))


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
