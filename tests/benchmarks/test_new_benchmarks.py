"""The packing and chart-query benchmarks run at tiny settings, print their tables and write
the figures `make bench` gathers; `Store.metric_series` (what the chart benchmark times beside
`Store.metrics`) holds the same curves, cut to `points`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.bench import GOALS, commands
from store import EventLog, Store
from store.events import Metrics, RunStarted

ROOT = Path(__file__).resolve().parents[2]


def run_benchmark(script: str, *args: str, out: Path) -> tuple[str, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-W", "ignore", f"benchmarks/{script}", *args, "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, json.loads(out.read_text())


def test_chart_query_prints_and_writes_its_figures(tmp_path):
    text, figures = run_benchmark(
        "chart_query.py", "--rows", "60000", "--runs", "2", "--trials", "1",
        out=tmp_path / "chart.json",
    )  # fmt: skip
    assert "first: what Run detail reads" in text and "series: Store.metric_series" in text
    assert figures["chart_run_rows"] > 29000  # 5 curves of ~6000 rows and a val curve
    assert 5 * 2000 < figures["chart_query_rows"] <= 5 * 2001 + 120  # cut to 2000 a curve
    for key in (
        "chart_query_ms",
        "chart_all_rows_ms",
        "chart_refresh_ms",
        "chart_series_ms",
        "chart_open_ms",
    ):
        assert figures[key] > 0


@pytest.mark.slow
def test_packing_prints_its_split_memory_and_variants(tmp_path):
    """A 0.4 MB corpus: the variants must all write the same tokens (checked inside)."""
    text, figures = run_benchmark(
        "packing.py", "--mb", "0.4", "--workers", "1", "--variants", "1",
        out=tmp_path / "packing.json",
    )  # fmt: skip
    assert "1 thread: read" in text and "peak resident memory" in text
    assert "before: encode_ordinary_batch" in text
    assert figures["packing_mb_s"] > 0 and 0.5 < figures["packing_memory_growth"] < 2
    shares = sum(figures[f"packing_{k}_share"] for k in ("read", "encode", "write"))
    assert 0 < shares <= 1.01  # the rest is chunking and generators (a stall on a tiny run)


def test_make_bench_runs_every_benchmark_with_goals(tmp_path):
    cmds = commands(tmp_path, tmp_path / "out")
    assert {"train", "ingest", "packing", "chart_query"} <= set(cmds)
    assert "decode" not in cmds  # only when the model folder exists
    (tmp_path / "models" / "smollm2-135m-instruct").mkdir(parents=True)
    assert "--accuracy-tokens" in commands(tmp_path, tmp_path / "out")["decode"]
    assert GOALS["packing.packing_mb_s"] == (10.0, "min")
    assert GOALS["chart_query.chart_query_ms"] == (50.0, "max")


def test_metric_series_holds_the_curves_of_metrics(tmp_path):
    store = Store(tmp_path)
    run = "pretrain-20250101-000000-abcd"
    store.create_run(run, "pretrain", {})
    with EventLog(store.run_dir(run) / "events.jsonl") as log:
        log.append(RunStarted(pid=1, host="elsewhere"))
        for step in range(100):
            log.append(Metrics(step=step, values={"loss": 1 / (step + 1), "lr": 0.1}))
            if step % 10 == 9:
                log.append(Metrics(step=step, values={"loss": float("nan")}, split="val"))
    store.ingest()
    curves = store.metric_series(run)
    assert [(c["name"], c["split"], len(c["step"])) for c in curves] == [
        ("loss", "train", 100), ("loss", "val", 10), ("lr", "train", 100)]  # fmt: skip
    rows = [m for m in store.metrics(run) if m["name"] == "loss" and m["split"] == "train"]
    assert curves[0]["step"] == [m["step"] for m in rows]
    assert curves[0]["value"] == [m["value"] for m in rows]
    assert curves[1]["value"] == [None] * 10  # non-finite values are None
    cut = store.metric_series(run, points=8)
    assert len(cut[0]["step"]) <= 9 and cut[0]["step"][0] == 0 and cut[0]["step"][-1] == 99
    assert cut[1]["step"] == [*curves[1]["step"][::2], 99]  # stride 2, and the last point
    new = store.metric_series(run, after_seq=curves[2]["seq"][-3])
    assert [(c["name"], c["split"], c["step"]) for c in new] == [
        ("loss", "train", [98, 99]), ("loss", "val", [99]), ("lr", "train", [98, 99])]  # fmt: skip


def test_packing_threads_write_the_same_files(tmp_path):
    """The opt-in encoding threads (what the packing benchmark times) change nothing written."""
    from engines.packing import pack_source

    docs = [f"document {i} " + "é" * (i % 5) for i in range(700)]

    def byte_ids(texts: list[str]) -> list[list[int]]:
        return [[b + 7 for b in t.encode()] for t in texts]

    one = pack_source(docs, byte_ids, 0, tmp_path / "one", val_fraction=0.1, chunk_docs=32)
    three = pack_source(iter(docs), byte_ids, 0, tmp_path / "three", val_fraction=0.1,
                        chunk_docs=32, threads=3)  # fmt: skip
    for split in ("train", "val"):
        path = f"{split}_path"
        assert Path(three[path]).read_bytes() == Path(one[path]).read_bytes()
    assert {k: v for k, v in three.items() if "path" not in k} == {
        k: v for k, v in one.items() if "path" not in k
    }
