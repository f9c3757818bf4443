"""SVG snapshots of every screen at 80×24 and 120×40, on a fixed store with a frozen clock.

Update after an intended change with `pytest tests/tui/test_snapshots.py --snapshot-update`
and look at the SVGs in tests/tui/__snapshots__/ before committing them.
"""

from __future__ import annotations

import pytest

from tests.tui.fixtures import FIXED_NOW
from tests.tui.helpers import wait_for, wait_loaded
from workbench.tui.app import WorkbenchApp

SIZES = [(80, 24), (120, 40)]


@pytest.fixture(autouse=True)
def frozen_eta_clock(monkeypatch):
    """ETAs run from a run's first train metric to now: freeze that now at FIXED_NOW too."""
    import datetime as dt
    import time
    from types import SimpleNamespace

    from workbench.ops import runlist

    fixed = FIXED_NOW.replace(tzinfo=dt.UTC).timestamp()
    monkeypatch.setattr(
        runlist, "time", SimpleNamespace(time=lambda: fixed, monotonic=time.monotonic)
    )


@pytest.fixture(autouse=True)
def machine_pinned(monkeypatch):
    """Launch's estimate reads the machine (free memory, a timed matmul): pin both."""
    import engines.memory
    import engines.perf
    from workbench.ops import estimate

    monkeypatch.setattr(engines.memory, "available_bytes", lambda device: 16 * 2**30)
    monkeypatch.setattr(engines.perf, "matmul_flops", lambda *a, **k: 50e9)
    monkeypatch.setattr(estimate, "_MEASURED", {})


def _tables_measured(app) -> bool:
    """A DataTable measures its columns when its queue goes idle: until then new rows are
    drawn in columns as wide as the headers (a busy machine can hold that for seconds)."""
    from textual.widgets import DataTable

    return not any(
        t._updated_cells or t._require_update_dimensions for t in app.screen.query(DataTable)
    )


async def settle(pilot, timeout: float = 20.0) -> None:
    """Until every table is measured and two renders 0.2 s apart are identical: column widths
    and the footer are laid out lazily, so a busy machine can otherwise capture a half-laid-out
    screen."""
    import time

    from textual.widgets import Input, TextArea

    for field in pilot.app.screen.query(Input).results():
        field.cursor_blink = False  # a focused field's cursor blinks: draw it steadily
    for area in pilot.app.screen.query(TextArea).results():
        area.cursor_blink = False
    before, end = None, time.monotonic() + timeout
    while time.monotonic() < end:
        await pilot.pause(0.2)
        now = pilot.app.export_screenshot()
        if now == before and _tables_measured(pilot.app):
            return
        before = now
    raise AssertionError(f"the screen never settled in {timeout:g} s")


def steps(*keys: str):
    """run_before: wait for the first read, press keys (waiting for each screen's read)."""

    async def run_before(pilot) -> None:
        await wait_loaded(pilot)
        for key in keys:
            await pilot.press(key)
            await wait_loaded(pilot)
        await settle(pilot)

    return run_before


async def _detail(pilot) -> None:
    await wait_loaded(pilot)
    await pilot.press("down", "down", "down", "enter")  # the oldest run: the finished pretrain
    await wait_for(pilot, lambda: getattr(pilot.app.screen, "series", {}).get("val_loss"))
    await settle(pilot)


SCREENS = {
    "runs": steps(),
    "detail": _detail,
    "launch": steps("2"),
    "data": steps("3"),
    "models": steps("4"),
    "chat": steps("4", "c"),
    "help": steps("question_mark"),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen(snap_compare, filled_home, screen, size):
    app = WorkbenchApp(home=filled_home, now=FIXED_NOW)
    assert snap_compare(app, terminal_size=size, run_before=SCREENS[screen])
