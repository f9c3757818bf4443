"""Run one job in this process: run folder, heartbeat, signals, events, final status.

`prepare_run` checks the job first (`registry.preflight`: data, device, memory; a SpecError
leaves nothing behind), then writes `runs/<id>/run.json` and the store row; `execute` takes
the run folder's exclusive lock (`runs/<id>/lock`, flock, holding the pid: a second process
gets RunLocked at once, and the store's liveness check reads a held lock as alive), then
drives the pipeline's `run(spec, ctx)` generator, appending each event to `events.jsonl`
(rank 0 only) and handing it to a printer. Ctrl-C / SIGTERM once: the pipeline finishes its
step, writes a checkpoint and the run ends `cancelled`; a second signal exits at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from engines.errors import UserError
from pipelines.model_refs import resolve_model
from pipelines.registry import pipeline_module, preflight, spec_from_dict
from pipelines.spec import JobSpec, SpecError
from store import EventLog, Store
from store.events import Artifact, Event, Note, RunFinished, RunStarted

HEARTBEAT_S = 2.0
LIBS = ("torch", "transformers", "tokenizers", "peft", "duckdb", "textual", "gpt-workbench")


class Cancelled(Exception):
    """Raised inside a pipeline that cannot stop gracefully at this point."""


class RunLocked(UserError):
    """Another live process holds this run's lock: it is already running."""


LOCK_FILE = "lock"  # runs/<id>/lock: flock'ed (exclusive) by the job running it; holds its pid


def lock_run(run_dir: Path, run_id: str) -> int:
    """Take the run folder's exclusive lock for this process (an open fd; released when closed
    or when the process ends, however it ends). RunLocked when another process holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise RunLocked(
            f"run {run_id} is already running (pid {holder}); stop it first "
            f"(`workbench runs stop {run_id}`) or wait for it to end"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


@dataclass
class Context:
    """What a pipeline gets besides its spec: where to write, whether to stop, who it is."""

    run_id: str
    run_dir: Path
    store: Store
    resume: bool = False
    rank: int = 0
    world_size: int = 1
    stop_event: threading.Event = field(default_factory=threading.Event)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def should_stop(self) -> bool:
        return self.stop_event.is_set()

    def resolve_model(self, ref: str) -> Path:
        """A model reference -> folder: a registry name, a run id that made a model, or a path."""
        return resolve_model(self.store, ref)


@dataclass
class Outcome:
    status: str
    reason: str | None = None
    user_error: bool = False

    @property
    def exit_code(self) -> int:
        if self.status in ("done", "cancelled"):
            return 0
        return 2 if self.user_error else 1


def new_run_id(pipeline: str) -> str:
    return f"{pipeline}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in LIBS:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    return out


def code_version() -> str:
    """The source tree's commit (`git rev-parse`), else the installed package's version."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root, capture_output=True, text=True, timeout=5, check=True,
        )  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return library_versions().get("gpt-workbench", "unknown")


def prepare_run(
    store: Store, spec: JobSpec, *, parents: list[str] | None = None, pipeline: str | None = None
) -> str:
    """Check the job (registry.preflight: data, device, memory — SpecError, nothing written),
    then create the run folder, run.json and the store row (status queued). Returns the id."""
    preflight(spec, store)
    pipeline = pipeline or spec.pipeline
    run_id = new_run_id(pipeline)
    run_dir = store.runs_dir / run_id
    meta = {
        "code_version": code_version(),
        "libraries": library_versions(),
        "host": socket.gethostname(),
        "argv": sys.argv,
        "cwd": os.getcwd(),
    }
    resolved = spec.model_dump(mode="json")
    parents = list(parents or []) + _lineage(store, spec)
    # The row first, then run.json: a concurrent ingest discovers run folders by their
    # run.json and would otherwise insert the row itself before create_run.
    store.create_run(
        run_id,
        pipeline,
        resolved,
        name=spec.name,
        parents=parents,
        meta=meta,
        run_dir=str(run_dir),
    )
    record = {"run_id": run_id, "spec": resolved, "meta": meta, "parents": parents}
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / "run.json.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(run_dir / "run.json")
    return run_id


def _lineage(store: Store, spec: JobSpec) -> list[str]:
    """Runs that made the models this spec starts from (base → SFT → RM → PPO)."""
    out = []
    for ref in getattr(spec, "model_refs", list)():
        model = store.get_model(ref)
        run_id = model.get("run_id") if model else (ref if store.get_run(ref) else None)
        if run_id and run_id not in out:
            out.append(run_id)
    return out


def load_run_spec(store: Store, run_id: str) -> JobSpec:
    run_dir = store.runs_dir / run_id
    path = run_dir / "run.json"
    if not path.exists():
        raise SpecError(f"no run {run_id!r} (no {path}) — see `workbench runs ls`")
    data = json.loads(path.read_text())
    return spec_from_dict(data["spec"], where=str(path))


def _heartbeat(path: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        path.touch()


def _install_signals(ctx: Context, log: EventLog | None) -> None:
    def handler(signum: int, _frame: Any) -> None:
        if ctx.stop_event.is_set():
            if log is not None:
                log.append(RunFinished(status="cancelled", reason="second signal: exited at once"))
            os._exit(130)
        ctx.stop_event.set()
        if log is not None:
            name = signal.Signals(signum).name
            log.append(Note(text=f"{name}: finishing the step and checkpointing; again to quit"))

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


def _register_models(store: Store, run_id: str, artifacts: list[Artifact]) -> None:
    """Register each model artifact (the same record the store's ingest may register from the
    events: an upsert, so doing both is harmless)."""
    for a in artifacts:
        if a.type != "model" or not a.meta.get("register", True):
            continue
        info = {k: v for k, v in a.meta.items() if k not in ("register", "name", "kind", "source")}
        info.setdefault("run_id", run_id)
        store.register_model(
            a.meta.get("name", run_id),
            a.meta.get("kind", "base"),
            a.meta.get("source", "trained"),
            a.path,
            **{k: info.pop(k) for k in list(info) if k in MODEL_COLUMNS},
            meta=info,
        )


MODEL_COLUMNS = ("params", "architecture", "tokenizer", "chat_template", "run_id", "parent_model")


def execute(
    store: Store,
    run_id: str,
    spec: JobSpec,
    *,
    resume: bool = False,
    on_event: Callable[[dict[str, Any]], None] = lambda e: None,
    rank: int = 0,
    world_size: int = 1,
    run_fn: Callable[..., Iterator[Event]] | None = None,
) -> Outcome:
    """Run the job to its end in this process, holding the run's lock (RunLocked if another
    process is running it: nothing is written then)."""
    run_dir = store.runs_dir / run_id
    lock = lock_run(run_dir, run_id) if rank == 0 else None
    try:
        return _execute(store, run_id, spec, resume, on_event, rank, world_size, run_fn)
    finally:
        if lock is not None:
            os.close(lock)


def _execute(store, run_id, spec, resume, on_event, rank, world_size, run_fn) -> Outcome:
    run_dir = store.runs_dir / run_id
    ctx = Context(run_id, run_dir, store, resume=resume, rank=rank, world_size=world_size)
    log = EventLog(run_dir / "events.jsonl") if ctx.is_main else None
    _install_signals(ctx, log)
    beat_stop = threading.Event()
    if ctx.is_main:
        (run_dir / "heartbeat").touch()
        threading.Thread(
            target=_heartbeat, args=(run_dir / "heartbeat", beat_stop), daemon=True
        ).start()

    def emit(event: Event) -> None:
        if log is not None:
            record = log.append(event)
            on_event(record)

    status, reason, artifacts, user_error = "done", None, [], False
    emit(RunStarted(pid=os.getpid(), device=_device_name(), world_size=world_size))
    try:
        for event in (run_fn or pipeline_module(spec.pipeline).run)(spec, ctx):
            if isinstance(event, RunFinished):
                status, reason = event.status, event.reason
                break
            if isinstance(event, Artifact):
                artifacts.append(event)
            emit(event)
        else:
            if ctx.should_stop():
                status, reason = "cancelled", "stopped by signal"
    except UserError as e:
        status, reason, user_error = "failed", str(e), True
    except Cancelled as e:
        status, reason = "cancelled", str(e) or "stopped by signal"
    except Exception as e:  # noqa: BLE001 - any crash of a pipeline ends the run as failed
        status, reason = "failed", f"{type(e).__name__}: {e}"
        traceback.print_exc()
    emit(RunFinished(status=status, reason=reason))
    beat_stop.set()
    if ctx.is_main:
        store.ingest(run_id)
        if status == "done":
            _register_models(store, run_id, artifacts)
    return Outcome(status, reason, user_error)


def _device_name() -> str:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({os.cpu_count()} cores)"
