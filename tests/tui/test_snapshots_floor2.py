"""SVG snapshots of Compare, Arena, Experiments and Playground at 80×24 and 120×40, on a fixed store (runs
chained pretrain → SFT → reward → PPO, five votes, an experiment) with a frozen clock; answers
are fixed columns.

Update after an intended change with
`pytest tests/tui/test_snapshots_floor2.py --snapshot-update` and look at the SVGs in
tests/tui/__snapshots__/test_snapshots_floor2/ before committing them.
"""

from __future__ import annotations

import pytest

from store import Store
from tests.tui.fixtures import FIXED_NOW, SFT, _run
from tests.tui.helpers import wait_for, wait_loaded
from tests.tui.test_snapshots import settle
from workbench.ops.compare import Column
from workbench.tui.app import WorkbenchApp
from workbench.tui.widgets.columns import AnswerColumns

SIZES = [(80, 24), (120, 40)]
PPO = "ppo-20250301-115900-cafe"
COLUMNS = [
    Column("tiny", "Once upon a time a small fox ran home.", 11, 0.5, -1.234, True),
    Column("smollm2-135m-instruct", "Hello! How can I help you today?", 9, 0.5, -0.5, True),
]
VOTES = [("tiny", "smollm2-135m-instruct", w) for w in ("b", "b", "tie", "a", "both_bad")]


@pytest.fixture
def floor2_home(filled_home):
    store = Store(filled_home)
    _run(store, "reward-20250301-115000-beef", "reward", {"lr": 1e-4}, parents=[SFT], minute=50)
    _run(store, PPO, "ppo", {"lr": 1e-5}, parents=["reward-20250301-115000-beef"], minute=59)
    for a, b, w in VOTES:
        store.add_vote("Say hello.", a, b, "hi", "hello", w)
    record = {"question": "What is 2+3?", "answer": "5", "correct": True}
    store.add_prompt_experiment("tiny", "cot", "arithmetic", 4, 0.5, tokens=400, latency_s=2.0,
                                transcripts=[{"summary": {"seed": 0}}, record])  # fmt: skip
    store.sql("UPDATE prompt_experiments SET created_at = ?", [FIXED_NOW], write=True)
    return filled_home


async def still(pilot) -> None:
    """Focus what the screen's keys act on (no blinking text cursor), then settle."""
    pilot.app.screen.focus_home()
    await settle(pilot)


async def _columns(pilot, titles: list[str]) -> None:
    box = pilot.app.screen.query_one(AnswerColumns)
    await box.reset(titles)
    box.update_columns(COLUMNS)


def compare_answers():
    async def run_before(pilot) -> None:
        await wait_loaded(pilot)
        await pilot.press("5")
        await wait_loaded(pilot)
        await _columns(pilot, [c.model for c in COLUMNS])
        await still(pilot)

    return run_before


def compare_lineage():
    async def run_before(pilot) -> None:
        await wait_loaded(pilot)
        await pilot.press("5")
        await wait_loaded(pilot)
        await pilot.press("escape", "c")
        screen = pilot.app.screen
        box = screen.query_one("#compare-runs")
        box.select(PPO)
        await wait_for(pilot, lambda: screen.query_one("#lineage-table").row_count == 4, 20)
        await pilot.press("i")
        await still(pilot)

    return run_before


def arena(*keys: str, columns: bool = True):
    async def run_before(pilot) -> None:
        await wait_loaded(pilot)
        await pilot.press("6")
        await wait_loaded(pilot)
        if columns:
            await _columns(pilot, ["Model A", "Model B"])
        if keys:
            await pilot.press(*keys)
        await still(pilot)

    return run_before


def mode(key: str):
    async def run_before(pilot) -> None:
        await wait_loaded(pilot)
        await pilot.press(key)
        await wait_loaded(pilot)
        await still(pilot)

    return run_before


SCREENS = {
    "compare": compare_answers(),
    "compare-lineage": compare_lineage(),
    "arena": arena(),
    "arena-board": arena("escape", "l", columns=False),
    "experiments": mode("7"),
    "playground": mode("8"),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen(snap_compare, floor2_home, screen, size):
    app = WorkbenchApp(home=floor2_home, now=FIXED_NOW)
    assert snap_compare(app, terminal_size=size, run_before=SCREENS[screen])
