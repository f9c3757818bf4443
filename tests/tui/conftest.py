"""Fixtures for the TUI tests: a fixed store, and an app on it with a frozen clock."""

from __future__ import annotations

import pytest

from tests.tui.fixtures import FIXED_NOW, fill_store


@pytest.fixture
def filled_home(home):
    """A workbench home with fixed runs, metrics, samples, tables and models."""
    fill_store(home)
    return home


@pytest.fixture
def fixed_app(filled_home):
    from workbench.tui.app import WorkbenchApp

    return WorkbenchApp(home=filled_home, now=FIXED_NOW)


@pytest.fixture
def two_models(home, tmp_path):
    """Two tiny assistants, tiny-a and tiny-b, registered in an empty home."""
    from store import Store
    from tests.engines.tinylm import save_tiny

    store = Store(home)
    store.register_model("tiny-a", "assistant", "imported", save_tiny(tmp_path / "a", seed=3))
    store.register_model("tiny-b", "assistant", "imported", save_tiny(tmp_path / "b", seed=5))
    return store
