"""`import workbench.tui.app` stays light: no torch, transformers or duckdb at TUI start."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ("torch", "transformers", "tokenizers", "llama_index", "guidance", "duckdb", "numpy")


def test_import_app_is_light():
    code = (
        "import sys, json, workbench.tui.app; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert json.loads(out.stdout) == []
