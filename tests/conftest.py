"""Test-wide settings: a fresh WORKBENCH_HOME per test, no network, no hub downloads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty workbench home for this test (store, runs, models)."""
    h = tmp_path / "home"
    monkeypatch.setenv("WORKBENCH_HOME", str(h))
    return h


def workbench(
    *args: str,
    home: Path,
    timeout: float = 600,
    env: dict | None = None,
    check: bool = False,
    stdin_text: str | None = None,
) -> subprocess.CompletedProcess:
    """Run the real `workbench` entry point in a subprocess."""
    full_env = {
        **os.environ,
        "WORKBENCH_HOME": str(home),
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        check=False,
        capture_output=True,
        text=True,
        input=stdin_text,
        timeout=timeout,
        env=full_env,
        cwd=ROOT,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"workbench {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="session")
def real_home(tmp_path_factory) -> Path:
    """One workbench home for every real-model test: each model is converted once a session."""
    return tmp_path_factory.mktemp("real-home")


@pytest.fixture
def wb(home):
    def run(*args: str, **kw) -> subprocess.CompletedProcess:
        return workbench(*args, home=home, **kw)

    return run
