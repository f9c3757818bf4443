"""Pipeline tests train tiny models in subprocesses: one OpenMP thread each, which is both
faster for models this small and steadier on a CPU that other jobs share."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
