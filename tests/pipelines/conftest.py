"""Pipeline tests train tiny models in subprocesses: one OpenMP thread each, which is both
faster for models this small and steadier on a CPU that other jobs share."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipelines.rl_fixtures import make_base


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A tiny base model folder (rl_fixtures.make_base), built once per test module."""
    return make_base(tmp_path_factory.mktemp("base") / "tiny-base")
