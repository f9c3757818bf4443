"""Start, stop, resume and delete runs: one status rule each, for the CLI and the TUI.

    run_id, pid = start(store, spec, detach=True)   # `workbench run --detach`, Launch
    stop(store, "echo-2025")                         # SIGTERM: checkpoint, end cancelled
    resume(store, "echo-2025")                       # detached `workbench _exec ID --resume`
    delete(store, "echo-2025")                       # rows and folder; safe beside an ingest

Jobs always run in their own process: `spawn` starts `python -m workbench _exec RUN_ID` in a
new session (setsid), its output in the run folder, so a job outlives the TUI that started it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from typing import Any

from workbench.ops.errors import OpError, user_errors
from workbench.ops.refs import find_run

LIVE = ("running", "queued")
RESUMABLE = ("queued", "failed", "cancelled", "diverged", "crashed")


def start(store: Any, spec: Any, *, parents: list[str] | None = None, detach: bool) -> tuple:
    """Create the run for a validated spec; with detach, start it: (run_id, pid or None)."""
    from pipelines.runner import prepare_run
    from workbench.ops.launch import check_foreground

    if not detach:
        check_foreground(spec)
    with user_errors():
        run_id = prepare_run(store, spec, parents=parents or [])
    return run_id, spawn(store, run_id) if detach else None


def spawn(store: Any, run_id: str, resume: bool = False) -> int:
    """Start `workbench _exec RUN_ID` (or torchrun, as the spec's `[launch]` says) in its own
    session, output to the run folder."""
    from workbench.ops.launch import exec_command

    run_dir = store.runs_dir / run_id
    cmd = exec_command(store, run_id, resume)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WORKBENCH_HOME": str(store.home)}
    with open(run_dir / "stdout.log", "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    with user_errors():
        store.set_process(run_id, proc.pid)  # a job that dies before it starts shows crashed
    return proc.pid


def stop(store: Any, ref: str, *, now: bool = False) -> str:
    """Ask a live run's process to stop (SIGTERM; SIGKILL with `now`); say what was done."""
    run = find_run(store, ref)
    if run["status"] not in LIVE or not run.get("pid"):
        raise OpError(f"run {run['run_id']} is {run['status']}, not running")
    if run.get("host") and run["host"] != socket.gethostname():
        raise OpError(f"run {run['run_id']} runs on {run['host']}; stop it there")
    try:
        os.kill(run["pid"], signal.SIGKILL if now else signal.SIGTERM)
    except ProcessLookupError:
        raise OpError(
            f"run {run['run_id']}: process {run['pid']} is gone (it will show as crashed)"
        ) from None
    return f"{'killed' if now else 'asked to stop'}: {run['run_id']} (pid {run['pid']})"


def check_resumable(run: dict[str, Any]) -> None:
    """The one resume rule: not running or done, and not a queued run whose process is starting."""
    status = run["status"]
    if status not in RESUMABLE or (status == "queued" and run.get("pid")):
        raise OpError(
            f"run {run['run_id']} is {status}; only a stopped, failed, crashed or "
            "never-started run resumes"
        )


def resumable(store: Any, ref: str) -> tuple[dict[str, Any], Any]:
    """The run and its recorded spec, when the resume rule allows it (else OpError)."""
    from pipelines.runner import load_run_spec

    run = find_run(store, ref)
    check_resumable(run)
    with user_errors():
        return run, load_run_spec(store, run["run_id"])


def resume(store: Any, ref: str) -> str:
    """Resume a run detached from its newest complete checkpoint; say so."""
    run, _ = resumable(store, ref)
    pid = spawn(store, run["run_id"], resume=True)
    return f"resumed {run['run_id']} (pid {pid})"


def check_deletable(run: dict[str, Any]) -> None:
    if run["status"] in LIVE and (run["status"] == "running" or run.get("pid")):
        raise OpError(f"run {run['run_id']} is {run['status']}; stop it first")


def delete(store: Any, ref: str) -> str:
    """Delete a run's rows, its models' registry entries and its folder, in one locked step
    of the store (the folder is set aside first), so no concurrent ingest brings it back."""
    run = find_run(store, ref)
    check_deletable(run)
    with user_errors():
        models = store.delete_run(run["run_id"], remove_folder=True)
    also = f" and its models {', '.join(models)}" if models else ""
    return f"deleted {run['run_id']}{also}"
