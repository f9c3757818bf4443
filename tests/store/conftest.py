"""Shared fixtures: a fresh WORKBENCH_HOME per test and helpers to write run event logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import EventLog, Store
from store.db import forget_migrated

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.delenv("WORKBENCH_HEARTBEAT_STALE_S", raising=False)
    forget_migrated()
    return tmp_path


@pytest.fixture
def store(home: Path) -> Store:
    return Store()


def new_run(
    store: Store, run_id: str = "pretrain-20250101-000000-abcd", spec: dict | None = None, **kw
) -> EventLog:
    """Create a run row and its folder; return an EventLog on its events.jsonl."""
    store.create_run(run_id, run_id.split("-")[0], spec or {"lr": 3e-4}, **kw)
    folder = store.run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    return EventLog(folder / "events.jsonl")
