"""The front ends and the ops layer import light: no torch, transformers or duckdb at start,
and the CLI without Textual (it imports the TUI only inside the `tui` verb)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = ("torch", "transformers", "tokenizers", "llama_index", "guidance", "duckdb", "numpy")
OPS_MODULES = (
    "chat",
    "data",
    "fmt",
    "models",
    "refs",
    "runs",
    "specs",
    "stores",
    "system",
    "views",
)
OPS = ", ".join(f"workbench.ops.{name}" for name in OPS_MODULES)


def heavy_after(imports: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    code = f"import sys, json, {imports}; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize("module", ["workbench.tui.app", "workbench.cli", OPS])
def test_import_is_light(module):
    assert heavy_after(module) == []


def test_cli_does_not_import_textual():
    assert heavy_after("workbench.cli", ("textual",)) == []
