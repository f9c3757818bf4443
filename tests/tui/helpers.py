"""Helpers for the TUI tests: what the screen shows as text, and bounded waits."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

from rich.console import Console


def screen_text(app) -> str:
    """The current screen (with any screens under a modal) as plain text."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text()


async def wait_for(
    pilot, pred: Callable[[], object], timeout: float = 30.0, what: str = ""
) -> object:
    """Pause the app in 0.2 s steps until pred() is truthy; fail after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        await pilot.pause(0.2)
    workers = [f"{w.name} {w.state.name}: {w.error!r}" for w in pilot.app.workers]
    toasts = [n.message for n in pilot.app._notifications]
    raise AssertionError(
        f"timed out after {timeout:g} s waiting for {what or pred}\n"
        + screen_text(pilot.app)
        + f"\nworkers: {workers}\ntoasts: {toasts}"
    )


async def settle_workers(pilot) -> None:
    """Let queued messages run, then await every worker the app and its screens started
    (a failed one included: failures reach the user as notifications, tests look there)."""
    from textual.worker import WorkerCancelled, WorkerFailed

    await pilot.pause()
    for worker in list(pilot.app.workers):
        try:
            await worker.wait()
        except (WorkerFailed, WorkerCancelled):
            pass
    await pilot.pause()


async def wait_loaded(pilot, timeout: float = 30.0) -> None:
    """Until the current screen has shown its first read of the store (its read worker is
    awaited; the bounded poll only covers a read that had not started yet)."""
    await settle_workers(pilot)
    await wait_for(pilot, lambda: getattr(pilot.app.screen, "loaded", True), timeout, "first read")
    await pilot.pause()


async def choose(pilot, select_id: str, label: str) -> None:
    """Open a Select with a click and move down to the option whose label contains `label`."""
    from textual.widgets._select import SelectOverlay

    await pilot.click(f"#{select_id}")
    overlay = await wait_for(
        pilot,
        lambda: isinstance(pilot.app.focused, SelectOverlay) and pilot.app.focused,
        5,
        "the dropdown",
    )
    for _ in range(overlay.option_count + 1):
        at = overlay.highlighted
        if at is not None and label in str(overlay.get_option_at_index(at).prompt):
            await pilot.press("enter")
            return
        await pilot.press("down")
    raise AssertionError(f"no option {label!r} in #{select_id}")


async def click_into(pilot, selector: str, timeout: float = 10.0) -> None:
    """Click a field the way a user does, once the layout has settled: a click computed from a
    layout that is about to shift (a Select widening as its options arrive) lands elsewhere on
    a busy machine, so click again until the field has the focus."""
    target = pilot.app.screen.query_one(selector)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        await pilot.pause()
        await pilot.click(selector)
        await pilot.pause()
        if pilot.app.focused is target:
            return
        await pilot.pause(0.2)
    raise AssertionError(f"clicking {selector} never focused it; focus is on {pilot.app.focused}")


async def open_chat(pilot):
    """From Models (key 4), `c` opens the chat pane; it is returned once its models list."""
    from workbench.tui.screens.chat import ChatPane

    await pilot.press("4")
    await wait_loaded(pilot)
    await pilot.press("c")
    pane = pilot.app.screen.query_one(ChatPane)
    await wait_for(pilot, lambda: pane.models, 10, "the model list")
    return pane
