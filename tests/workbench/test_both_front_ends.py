"""Each shared operation driven from both front ends — the CLI through its real entry point
in a subprocess, the TUI through Pilot key presses — with the same outcome.

- delete, with another process ingesting all the while: no phantom row comes back;
- export of a LoRA adapter: both write the same merged plain model;
- resume: one rule (a done run and a starting queued run refused, a cancelled one resumed);
- a refused action: the same message, an error from the CLI and a notification in the TUI.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store import EventLog, Store
from tests.conftest import ROOT, workbench
from tests.tui.helpers import click_into, settle_workers, wait_for, wait_loaded
from workbench.tui.app import WorkbenchApp

pytestmark = pytest.mark.asyncio

INGEST_LOOP = """
import sys, pathlib
from store import Store
store, stop = Store(sys.argv[1]), pathlib.Path(sys.argv[2])
while not stop.exists():
    store.refresh()
"""


def finished_run(home: Path, run_id: str, status: str = "done", spec: dict | None = None):
    """A run made the way the runner makes one: row, run.json, events ending in `status`."""
    store = Store(home)
    spec = spec or {"pipeline": "echo", "steps": 3, "interval_s": 0.0}
    folder = store.runs_dir / run_id
    store.create_run(run_id, "echo", spec, run_dir=str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps({"run_id": run_id, "spec": spec, "parents": []}))
    with EventLog(folder / "events.jsonl") as log:
        log.append({"kind": "run_started", "pid": 0, "device": "cpu", "world_size": 1})
        log.append({"kind": "run_finished", "status": status, "reason": None})
    store.refresh()
    return store


def ingest_loop(home: Path, stop: Path) -> subprocess.Popen:
    """Another process that ingests the store in a loop until `stop` exists."""
    return subprocess.Popen([sys.executable, "-c", INGEST_LOOP, str(home), str(stop)], cwd=ROOT)


def select_run(app, run_id: str) -> None:
    from textual.widgets import DataTable

    table = app.screen.query_one(DataTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(run_id))


class App(WorkbenchApp):
    """The workbench app, remembering every notification (a toast expires after seconds)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.notified: list[str] = []

    def notify(self, message, *args, **kwargs) -> None:
        self.notified.append(str(message))
        super().notify(message, *args, **kwargs)


def toasts(app: App) -> list[str]:
    return app.notified


async def test_delete_beside_a_concurrent_ingest_leaves_no_phantom(home, tmp_path):
    store = finished_run(home, "echo-cli")
    finished_run(home, "echo-tui")
    stop = tmp_path / "stop"
    loop = ingest_loop(home, stop)
    try:
        p = workbench("runs", "rm", "echo-cli", "--yes", home=home)
        assert p.returncode == 0 and "deleted echo-cli" in p.stdout, p.stderr
        app = App(home=home)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_loaded(pilot)
            await wait_for(pilot, lambda: app.screen.runs, 30, "the runs")
            select_run(app, "echo-tui")
            await pilot.press("d", "y")
            await wait_for(pilot, lambda: "deleted echo-tui" in toasts(app), 30, "the delete")
        await asyncio.sleep(1.0)  # the ingest loop keeps going over the emptied runs/ folder
    finally:
        stop.touch()
        loop.wait(30)
    store.refresh()
    assert store.list_runs() == []
    assert not any(store.runs_dir.iterdir())


async def test_a_running_run_is_refused_by_both(home):
    store = finished_run(home, "echo-live")
    store.sql(
        "UPDATE runs SET status = 'running', host = 'elsewhere' WHERE run_id = 'echo-live'",
        write=True,
    )
    (store.runs_dir / "echo-live" / "heartbeat").touch()
    p = workbench("runs", "rm", "echo-live", "--yes", home=home)
    assert p.returncode == 2 and "stop it first" in p.stderr
    app = App(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        await wait_for(pilot, lambda: app.screen.runs, 30, "the runs")
        select_run(app, "echo-live")
        await pilot.press("d")
        await wait_for(pilot, lambda: any("stop it first" in t for t in toasts(app)), 10)
    assert store.get_run("echo-live") is not None


@pytest.fixture
def lora_adapter(tmp_path, home) -> Path:
    """A tiny base model and a LoRA adapter on it (non-zero B, so merging changes weights)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.engines.tinylm import save_tiny

    base = save_tiny(tmp_path / "base", seed=1)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]),
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    adapter = tmp_path / "adapter"
    model.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(base).save_pretrained(adapter)
    Store(home).register_model("tiny-lora", "adapter", "imported", adapter)
    return base


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


async def test_lora_export_merges_from_both(home, tmp_path, lora_adapter):
    from textual.widgets import DataTable

    cli_out, tui_out = tmp_path / "from-cli", tmp_path / "from-tui"
    p = workbench("models", "export", "tiny-lora", str(cli_out), home=home)
    assert p.returncode == 0, p.stderr
    app = App(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await wait_loaded(pilot)
        app.screen.query_one("#models-table", DataTable).focus()
        await click_into(pilot, "#export-path")
        await pilot.press(*str(tui_out))
        await pilot.click("#export")
        await wait_for(pilot, lambda: any("merged" in t for t in toasts(app)), 120, "export")
    for out in (cli_out, tui_out):
        assert not (out / "adapter_config.json").exists()
    a, b, base = weights(cli_out), weights(tui_out), weights(lora_adapter)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not (a[q] == base[q]).all()  # the adapter was merged in


async def test_resume_follows_one_rule_from_both(home):
    store = finished_run(home, "echo-done")
    finished_run(home, "echo-starting", status="done")
    store.sql(
        "UPDATE runs SET status = 'queued', pid = 999999, host = 'elsewhere' "
        "WHERE run_id = 'echo-starting'",
        write=True,
    )
    for rid in ("echo-cli", "echo-tui"):
        finished_run(home, rid, status="cancelled")
    refused = {}
    for rid in ("echo-done", "echo-starting"):
        p = workbench("runs", "resume", rid, "--detach", home=home)
        assert p.returncode == 2, p.stdout + p.stderr
        refused[rid] = p.stderr.strip().removeprefix("error: ")
    p = workbench("runs", "resume", "echo-cli", "--detach", home=home)
    assert p.returncode == 0 and "resumed echo-cli" in p.stdout, p.stderr
    app = App(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        await wait_for(pilot, lambda: len(app.screen.runs) == 4, 30, "the runs")
        for rid in ("echo-done", "echo-starting", "echo-tui"):
            select_run(app, rid)
            await pilot.press("r")
            await settle_workers(pilot)
        shown = toasts(app)
    assert refused["echo-done"] in shown and refused["echo-starting"] in shown
    assert any(t.startswith("resumed echo-tui") for t in shown)

    def both_done() -> bool:
        store.refresh()
        return all(store.get_run(r)["status"] == "done" for r in ("echo-cli", "echo-tui"))

    end = time.monotonic() + 180
    while not both_done() and time.monotonic() < end:
        await asyncio.sleep(0.5)
    assert both_done()


async def test_a_failing_action_is_a_notification_not_a_crash(home, tmp_path):
    from textual.widgets import DataTable

    folder = tmp_path / "some-model"
    folder.mkdir()
    Store(home).register_model("some-model", "base", "imported", folder)
    taken = tmp_path / "taken"
    taken.mkdir()
    p = workbench("models", "export", "some-model", str(taken), home=home)
    assert p.returncode == 2
    message = p.stderr.strip().removeprefix("error: ")
    app = App(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await wait_loaded(pilot)
        app.screen.query_one("#models-table", DataTable).focus()
        await click_into(pilot, "#export-path")
        await pilot.press(*str(taken))
        await pilot.click("#export")
        await settle_workers(pilot)
        assert message in toasts(app)
        assert app.is_running and app.current_mode == "models"
