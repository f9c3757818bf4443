"""Jobs outlive the TUI: a detached job started from the CLI keeps running after the app
quits, and a new app instance shows its live progress from the store."""

from __future__ import annotations

import os
import re
import signal

import pytest

from store import Store
from tests.tui.helpers import screen_text, wait_for, wait_loaded
from workbench.tui.app import WorkbenchApp

pytestmark = pytest.mark.asyncio


def shown_step(app) -> int:
    """The step of the (only) echo run in the Runs table, 0 when none is shown yet."""
    for line in screen_text(app).splitlines():
        if "echo" in line and (m := re.search(r"(\d+)/1000", line)):
            return int(m.group(1))
    return 0


async def test_job_survives_quit_and_new_app_reattaches(wb, home):
    p = wb(
        "run",
        "--preset",
        "echo",
        "--set",
        "steps=1000",
        "--set",
        "interval_s=0.05",
        "--detach",
        check=True,
    )
    assert "started" in p.stdout
    try:
        app = WorkbenchApp(home=home)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_loaded(pilot)
            first = await wait_for(pilot, lambda: shown_step(app), 60, "progress")
            assert "running" in screen_text(app)
        store = Store(home)
        with store.read():  # one bounded ingest: the job is still writing fast
            store.refresh()
            (run,) = store.list_runs()
        assert run["status"] == "running" and run["pid"]
        os.kill(run["pid"], 0)  # the job lives on after the app quit

        app2 = WorkbenchApp(home=home)
        async with app2.run_test(size=(80, 24)) as pilot:
            await wait_loaded(pilot)
            await wait_for(pilot, lambda: shown_step(app2) > first, 60, "later progress")
            await wait_for(pilot, lambda: shown_step(app2) > first + 5, 60, "live updates")
    finally:
        store = Store(home)
        with store.read():
            store.refresh()
            running = store.list_runs(status="running")
        for r in running:
            os.kill(r["pid"], signal.SIGTERM)
