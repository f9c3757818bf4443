"""Fixtures for the TUI tests: a fixed store, and an app on it with a frozen clock."""

from __future__ import annotations

import pytest

from tests.tui.fixtures import FIXED_NOW, fill_store, register_tiny_pair


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
    return register_tiny_pair(home, tmp_path)
