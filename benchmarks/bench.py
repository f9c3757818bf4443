"""`make bench`: every benchmark at short settings, one table and one JSON of figures, and a
`bench` run in the store so performance over commits is a SQL query and a chart.

    .venv/bin/python benchmarks/bench.py                 # WORKBENCH_HOME's store and models
    .venv/bin/python benchmarks/bench.py --only train    # one benchmark

Each benchmark runs in its own process (its own threads and memory) and writes its figures as
JSON; this script gathers them into <home>/bench/<stamp>.json and .md, then records a run
(pipeline "bench") whose step-0 metrics are the figures and whose `bench` table holds the rows:

    SELECT r.created_at, m.name, m.value FROM metrics m JOIN runs r USING (run_id)
    WHERE r.pipeline = 'bench' ORDER BY r.created_at

With decode comes llama.cpp on the same model's Q4_1 GGUF (benchmarks/llama_cpp.py), run by
$LLAMA_CPP_PYTHON (an interpreter that has llama-cpp-python; default: this one), and
`decode.vs_llama_cpp`, `decode.int8_vs_llama_cpp`, `decode.int4_vs_llama_cpp`: llama.cpp's ms
per token over ours (> 1: ours is faster). Without llama-cpp-python the row says why it was
skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from store import Store
from store.catalog import default_home
from store.eventlog import EventLog
from store.events import Metrics, RunFinished, RunStarted, Table

DECODE_MODEL = "smollm2-135m-instruct"
LLAMA_CPP_PYTHON = "LLAMA_CPP_PYTHON"  # env: the interpreter (a command line) with llama_cpp
# decode.<figure>: the decode_limits.py figure (ms per token) that llama.cpp's is divided by
VS_LLAMA_CPP = {"vs_llama_cpp": "ours_ms", "int8_vs_llama_cpp": "int8_ms",
                "int4_vs_llama_cpp": "int4_ms"}  # fmt: skip
GOALS = {  # figure: (goal, "min" when higher is better / "max" when lower is better)
    "decode.floor_ratio": (0.60, "min"), "decode.vs_generate": (1.0, "min"),
    "decode.batch8_speedup": (4.0, "min"), "train.workbench_vs_plain": (1.0, "min"),
    "train.workbench_mfu": (0.70, "min"), "ingest.ingest_rows_s": (500_000, "min"),
    "train_compiled.workbench_vs_plain": (1.0, "min"), "train_compiled.workbench_mfu": (0.70, "min"),
    "packing.packing_mb_s": (10.0, "min"), "chart_query.chart_query_ms": (50.0, "max"),
    "chart_query.chart_series_ms": (50.0, "max"), "chart_query.chart_query_alone_ms": (50.0, "max"),
    # quantized answers lose at most one of the 12 questions fp32 is asked
    "decode.int8_accuracy_delta": (-0.09, "min"), "decode.int4_accuracy_delta": (-0.09, "min"),
}  # fmt: skip


def commands(home: Path, out: Path) -> dict[str, list[str]]:
    """The benchmark of each name, at make-bench settings, writing its JSON into `out`."""
    py = [sys.executable, "-W", "ignore"]
    train = [*py, "benchmarks/train_throughput.py", "--steps", "5", "--rounds", "3",
             "--threads", "2"]  # fmt: skip
    runs = {
        "train": [*train, "--warmup", "1"],
        # train.compile = true: the first steps compile (about 15 s a loop here), so more warm-up
        "train_compiled": [*train, "--warmup", "3", "--compile"],
        "ingest": [*py, "benchmarks/ingest.py", "--rows", "200000"],
        "packing": [*py, "benchmarks/packing.py", "--mb", "8"],
        "chart_query": [*py, "benchmarks/chart_query.py", "--rows", "1000000", "--trials", "5"],
    }  # fmt: skip
    model = home / "models" / DECODE_MODEL
    if model.is_dir():
        runs["decode"] = [*py, "benchmarks/decode_limits.py", "--model", str(model), "--quick",
                          "--tokens", "16", "--accuracy-tokens", "16"]  # fmt: skip
        llama_py = shlex.split(os.environ.get(LLAMA_CPP_PYTHON) or shlex.quote(sys.executable))
        runs["llama_cpp"] = [*llama_py, "benchmarks/llama_cpp.py", "--home", str(home),
                             "--tokens", "16", "--threads", "2"]  # fmt: skip
    return {name: [*cmd, "--json", str(out / f"{name}.json")] for name, cmd in runs.items()}


def run_all(
    home: Path, out: Path, only: list[str] | None
) -> tuple[dict[str, float], dict[str, str]]:
    """The figures of each benchmark run, and {figure: why} for those skipped."""
    figures: dict[str, float] = {}
    skipped: dict[str, str] = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    wanted = set(only or ())
    wanted |= {"llama_cpp"} if "decode" in wanted else set()
    wanted |= {"train_compiled"} if "train" in wanted else set()
    for name, cmd in commands(home, out).items():
        if only and name not in wanted:
            continue
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        done = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
        path = out / f"{name}.json"
        if done.returncode != 0 or not path.exists():
            print(f"   {name} failed (exit {done.returncode}); left out of the table")
            continue
        result = json.loads(path.read_text())
        if "skipped" in result:
            skipped["decode.vs_llama_cpp" if name == "llama_cpp" else name] = result["skipped"]
            continue
        for key, value in result.items():
            figures[f"{name}.{key}"] = float(value)
    figures.update(vs_llama_cpp(figures))
    return figures, skipped


def vs_llama_cpp(figures: dict[str, float]) -> dict[str, float]:
    """llama.cpp's ms per token over ours for fp32, int8 and int4, where both were measured."""
    theirs = figures.get("llama_cpp.ms_per_token")
    if theirs is None:
        return {}
    ours = {name: figures.get(f"decode.{key}", float("nan")) for name, key in VS_LLAMA_CPP.items()}
    return {f"decode.{name}": theirs / ms for name, ms in ours.items() if ms > 0}


def table(figures: dict[str, float], skipped: dict[str, str] | None = None) -> str:
    lines = ["| figure | value | goal | met |", "| --- | ---: | ---: | --- |"]
    for key, value in figures.items():
        goal, how = GOALS.get(key, (None, ""))
        met = "" if goal is None else ("yes" if (value >= goal) == (how == "min") else "no")
        lines.append(f"| {key} | {value:.4g} | {'' if goal is None else goal} | {met} |")
    lines += [f"| {key} | skipped: {why} |  |  |" for key, why in (skipped or {}).items()]
    return "\n".join(lines)


def record(
    store: Store, figures: dict[str, float], load: str, skipped: dict[str, str] | None = None
) -> str:
    """A `bench` run in the store: the figures as step-0 metrics and as a table (what was
    skipped, and why, in the run's meta)."""
    run_id = time.strftime("bench-%Y%m%d-%H%M%S")
    run_dir = store.runs_dir / run_id
    meta = {"load": load, **({"skipped": skipped} if skipped else {})}
    store.create_run(run_id, "bench", {"pipeline": "bench"}, name="bench",
                     meta=meta, run_dir=str(run_dir), status="running")  # fmt: skip
    log = EventLog(run_dir / "events.jsonl")
    log.append(RunStarted(pid=os.getpid()))
    log.append(Metrics(step=0, values=figures))
    rows = [{"figure": k, "value": v, "goal": GOALS.get(k, (None,))[0]} for k, v in figures.items()]
    log.append(Table(name="bench", rows=rows))
    log.append(RunFinished(status="done"))
    store.ingest()
    return run_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*",
                    help="names: train (with train_compiled), ingest, packing, chart_query, "
                         "decode (with llama_cpp), llama_cpp")  # fmt: skip
    ap.add_argument("--no-record", action="store_true", help="do not add a run to the store")
    args = ap.parse_args()
    home = default_home()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = home / "bench" / stamp
    out.mkdir(parents=True, exist_ok=True)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    figures, skipped = run_all(home, out, args.only)
    figures["load_1min"] = os.getloadavg()[0]
    text = table(figures, skipped)
    noted = {key: f"skipped: {why}" for key, why in skipped.items()}
    (out / "bench.json").write_text(json.dumps({**figures, **noted}, indent=1))
    (out / "bench.md").write_text(text + "\n")
    print(text)
    print(f"load average at start {load}; figures in {out}")
    if not args.no_record:
        print(f"recorded as run {record(Store(home), figures, load, skipped)}")


if __name__ == "__main__":
    main()
