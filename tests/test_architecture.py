"""The import arrows of docs/design.md §1 hold: import-linter contracts, a sys.modules check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    p = subprocess.run([exe], capture_output=True, text=True, cwd=ROOT, check=False)
    assert p.returncode == 0, p.stdout[-3000:]
    assert "0 broken" in p.stdout


def test_spec_modules_load_without_torch():
    code = (
        "import sys\n"
        "from pipelines.registry import PIPELINES, spec_class\n"
        "for name in PIPELINES: spec_class(name)\n"
        "import pipelines.runner, workbench.cli\n"
        "bad = [m for m in ('torch', 'transformers', 'textual', 'peft') if m in sys.modules]\n"
        "print('BAD=' + ','.join(bad))\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert p.stdout.strip() == "BAD=", p.stdout + p.stderr


def test_ruff_lint_is_clean():
    exe = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    p = subprocess.run([exe, "check", "."], capture_output=True, text=True, cwd=ROOT, check=False)
    assert p.returncode == 0, p.stdout[-3000:]
