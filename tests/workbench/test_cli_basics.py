"""The CLI through its real entry point: help, doctor, sql, presets, startup imports."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_help_imports_no_heavy_modules():
    code = (
        "import sys; from workbench.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'textual', 'llama_index', 'guidance',"
        " 'duckdb') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT
    )
    assert "HEAVY=\n" in out.stdout or out.stdout.strip().endswith("HEAVY="), out.stdout


def test_doctor_reports_versions_device_and_store(wb, home):
    p = wb("doctor")
    assert p.returncode == 0, p.stderr
    for needle in ("torch", "transformers", "duckdb", "device", str(home / "workbench.duckdb")):
        assert needle in p.stdout
    kernel = next(line for line in p.stdout.splitlines() if line.startswith("cpu kernel"))
    assert "memory bandwidth" in kernel or "not in use" in kernel, kernel
    no_cxx = wb("doctor", env={"CXX": "no-such-c++"}).stdout
    assert "train.compile needs a C++ compiler on the CPU: 'no-such-c++' not found" in no_cxx


def test_sql_answers_and_formats(wb):
    p = wb("sql", "select count(*) as n from runs", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip()) == {"n": 0}
    p = wb("sql", "select 1 as a, 'x' as b", "--csv")
    assert p.stdout.splitlines() == ["a,b", "1,x"]
    p = wb("sql", "select * from no_such_table")
    assert p.returncode == 2 and "no_such_table" in p.stderr


def test_presets_lists_shipped_specs(wb):
    p = wb("presets")
    names = [line.split()[0] for line in p.stdout.splitlines()]
    assert {"pretrain-tiny", "pretrain-small", "pretrain-gpt2-124m", "echo"} <= set(names)


def test_every_preset_validates(wb):
    from pipelines.registry import load_spec
    from pipelines.spec import list_presets

    for name in list_presets():
        spec = load_spec(preset=name)
        assert spec.pipeline


def test_progress_lines_show_mfu_as_a_percentage():
    from workbench.cli.progress import fmt_values

    line = fmt_values({"loss": 3.21234, "mfu": 0.6342, "tokens": 4096})
    assert line == "loss=3.212 mfu=63.4% tokens=4096"
    assert fmt_values({"mfu": 1.3}) == "mfu=100.0%"  # never shown above 100%
    trainer_order = {"loss": 2.0, "lr": 0.001, "grad_norm": 1.0, "tokens_per_s": 900.0,
                     "tokens": 4096.0, "mfu": 0.5, "accuracy": 0.25}  # fmt: skip
    keys = [part.split("=")[0] for part in fmt_values(trainer_order).split()]
    assert keys == ["loss", "lr", "tokens_per_s", "mfu", "grad_norm", "tokens", "accuracy"]
