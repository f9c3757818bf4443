"""benchmarks/gpu.py: without CUDA it says so and exits 0; its whole path runs (--smoke) on a
tiny model on CPU, so the GPU run is not its first run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu.py"


def bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip


def test_without_cuda_it_says_so_and_exits_0():
    p = bench()
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "no CUDA device: nothing to measure"


@pytest.mark.slow
def test_smoke_run_prints_every_figure(tmp_path):
    out = tmp_path / "gpu.json"
    p = bench("--smoke", "--json", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    for text in ("matmul peak (float32)", "tokens/s, MFU", "one stream", "batch of 8"):
        assert text in p.stdout, text
    figures = json.loads(out.read_text())
    assert figures["train_tokens_s"] > 0 and 0 < figures["train_mfu"] <= 1
    assert figures["decode_tokens_s_batch1"] > 0 and figures["decode_tokens_s_batch8"] > 0
