"""An idle TUI on Run detail opens the store at most once per refresh of the app's timer."""

from __future__ import annotations

import duckdb
import pytest

from tests.tui.fixtures import FIXED_NOW, PRETRAIN
from tests.tui.helpers import settle_workers, wait_for, wait_loaded
from workbench.ops import stores
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.detail import RunDetailScreen

pytestmark = pytest.mark.asyncio


@pytest.fixture
def counted(monkeypatch):
    """Counts of duckdb connections opened and of refresher runs."""
    counts = {"connect": 0, "refresh": 0}
    connect, refresh = duckdb.connect, stores.refresh

    def counting_connect(*args, **kwargs):
        counts["connect"] += 1
        return connect(*args, **kwargs)

    def counting_refresh(store):
        counts["refresh"] += 1
        return refresh(store)

    monkeypatch.setattr(duckdb, "connect", counting_connect)
    monkeypatch.setattr(stores, "refresh", counting_refresh)
    return counts


async def test_idle_run_detail_opens_the_store_once_per_refresh(filled_home, counted):
    app = WorkbenchApp(home=filled_home, now=FIXED_NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        app.push_screen(RunDetailScreen(PRETRAIN))
        await wait_for(pilot, lambda: getattr(app.screen, "series", {}).get("val_loss"))
        await settle_workers(pilot)
        start = dict(counted)
        await wait_for(pilot, lambda: counted["refresh"] >= start["refresh"] + 5, 30, "refreshes")
        await settle_workers(pilot)
        refreshes = counted["refresh"] - start["refresh"]
        opens = counted["connect"] - start["connect"]
    assert opens <= refreshes, f"{opens} store opens in {refreshes} refreshes"


async def test_one_detail_read_is_one_transaction(filled_home, counted):
    from workbench.ops.views import run_view

    store = stores.open_store(filled_home)
    store.refresh()
    before = counted["connect"]
    data = run_view(store, PRETRAIN)
    assert data["run"]["run_id"] == PRETRAIN and data["metrics"] and data["samples"]
    assert counted["connect"] - before == 1
