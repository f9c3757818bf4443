"""The Run detail chart's metrics read on a store holding a million metric rows.

    .venv/bin/python benchmarks/chart_query.py                    # 1M rows in 10 runs
    .venv/bin/python benchmarks/chart_query.py --rows 200000 --runs 2

The store is a fresh home whose `metrics` table is filled straight through DuckDB from Arrow
(runs of 5 train metrics a step and a val loss every 50 steps, seq and t increasing, as a
pretraining log would be ingested). Then, timed as the TUI makes them (`ops.views.run_view`
calls `Store.metrics` inside `Store.read()`, which opens the store), median of `--trials`:

- `first`: what Run detail reads when opened (`ops.views.new_metrics(store, run, -1)`): the
  curves through `Store.metric_series(run_id, points=2000)`, each cut to at most 2000 rows
  (every k-th and the last), as metric rows;
- `all rows`: `Store.metrics(run_id)`, every row as a dict (what Run detail read before);
- `refresh`: `Store.metrics(run_id, after_seq=…)` for the last 10 steps' rows: what each
  refresh after the first reads;
- `series`: `Store.metric_series(run_id, points=2000)` alone;
- `open`: `with store.read(): pass`, the cost of opening the store alone (the reference: a
  query cannot be quicker than the open it runs in);
- each query again on an already open connection (`…_query`), the part the query's shape
  decides.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NAMES = ("loss", "lr", "grad_norm", "tokens_per_s", "mfu")
VAL_EVERY = 50
POINTS = 2000  # per curve, for metric_series


def fill(store, rows: int, runs: int) -> list[str]:
    """`runs` runs of about rows/runs metric rows each, inserted with one Arrow table a run."""
    import numpy as np
    import pyarrow as pa

    per_step = len(NAMES) + 1 / VAL_EVERY
    steps = int(rows / runs / per_step)
    run_ids = [f"pretrain-20260101-0000{i:02d}-bench" for i in range(runs)]
    t0 = time.time() - 86400
    with store.connect() as conn:
        for r, run_id in enumerate(run_ids):
            conn.execute(
                "INSERT INTO runs (run_id, name, pipeline, status, created_at, run_dir) "
                "VALUES (?, ?, 'pretrain', 'done', now()::TIMESTAMP, ?)",
                [run_id, run_id, str(store.runs_dir / run_id)],
            )
            step = np.arange(steps, dtype=np.int64)
            seq = 2 + step * 2  # a metrics line and a progress line a step
            n = len(NAMES)
            cols = {
                "step": np.repeat(step, n), "name": np.tile(np.array(NAMES), steps),
                "value": np.random.default_rng(r).random(steps * n), "split": "train",
                "seq": np.repeat(seq, n),
            }  # fmt: skip
            vstep = step[VAL_EVERY - 1 :: VAL_EVERY]
            val = {"step": vstep, "name": np.full(len(vstep), "loss"),
                   "value": np.random.default_rng(1000 + r).random(len(vstep)), "split": "val",
                   "seq": 3 + vstep * 2}  # fmt: skip
            for part in (cols, val):
                k = len(part["step"])
                table = pa.table({
                    "run_id": pa.array([run_id] * k), "step": pa.array(part["step"]),
                    "name": pa.array(part["name"].astype(str)), "value": pa.array(part["value"]),
                    "nonfinite": pa.array(np.zeros(k, bool)), "split": pa.array([part["split"]] * k),
                    "t": pa.array(((t0 + part["seq"] * 0.01) * 1e6).astype(np.int64), pa.timestamp("us")),
                    "seq": pa.array(part["seq"]), "attempt": pa.array(np.ones(k, np.int32)),
                    "superseded": pa.array(np.zeros(k, bool)),
                })  # fmt: skip
                conn.register("_rows", table)
                conn.execute("INSERT INTO metrics SELECT * FROM _rows")
                conn.unregister("_rows")
    return run_ids


def timed(fn, trials: int) -> tuple[float, object]:
    """Median milliseconds of `trials` calls (after one untimed call) and the last result."""
    result = fn()
    times = []
    for _ in range(trials):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="metric rows in the store")
    ap.add_argument("--runs", type=int, default=10, help="runs sharing them")
    ap.add_argument("--trials", type=int, default=9)
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    from store import Store
    from workbench.ops.views import new_metrics

    with tempfile.TemporaryDirectory() as home:
        store = Store(home)
        start = time.perf_counter()
        run_ids = fill(store, args.rows, args.runs)
        fill_s = time.perf_counter() - start
        (total,) = store.sql("SELECT count(*) FROM metrics")[1][0]
        run = run_ids[len(run_ids) // 2]
        (last,) = store.sql("SELECT max(seq) FROM metrics WHERE run_id = ?", [run])[1][0]
        after = last - 20  # the last 10 steps' rows

        def in_read(fn):
            def call():
                with store.read():
                    return fn()

            return call

        open_ms, _ = timed(in_read(lambda: None), args.trials)
        first_ms, first = timed(in_read(lambda: new_metrics(store, run, -1)), args.trials)
        all_ms, rows = timed(in_read(lambda: store.metrics(run)), args.trials)
        refresh_ms, new = timed(in_read(lambda: store.metrics(run, after_seq=after)), args.trials)
        series_ms, curves = timed(
            in_read(lambda: store.metric_series(run, points=POINTS)), args.trials
        )
        with store.read():  # the queries alone, on one open connection
            first_q, _ = timed(lambda: new_metrics(store, run, -1), args.trials)
            all_q, _ = timed(lambda: store.metrics(run), args.trials)
            refresh_q, _ = timed(lambda: store.metrics(run, after_seq=after), args.trials)
            series_q, _ = timed(lambda: store.metric_series(run, points=POINTS), args.trials)
    points = sum(len(c["step"]) for c in curves)
    load = os.getloadavg()[0]
    print(f"{total:,} metric rows in {args.runs} runs (filled in {fill_s:.1f} s); the charted "
          f"run has {len(rows):,}; load average {load:.1f}")  # fmt: skip
    print(f"{'read (median of ' + str(args.trials) + ')':<48} {'ms':>8} {'rows':>8}")
    for name, ms, n in [
        ("open the store alone (reference)", open_ms, 0),
        ("first: what Run detail reads (series as rows)", first_ms, len(first)),
        ("all rows: Store.metrics(run)", all_ms, len(rows)),
        ("refresh: Store.metrics(run, after_seq)", refresh_ms, len(new)),
        (f"series: Store.metric_series(run, points={POINTS})", series_ms, points),
        ("first, query alone (store open)", first_q, len(first)),
        ("all rows, query alone (store open)", all_q, len(rows)),
        ("refresh, query alone (store open)", refresh_q, len(new)),
        ("series, query alone (store open)", series_q, points),
    ]:
        print(f"{name:<48} {ms:>8.1f} {n:>8}")
    print(f"first / open: {first_ms / open_ms:.1f}x; refresh / open: {refresh_ms / open_ms:.2f}x; "
          f"all rows / first: {all_ms / first_ms:.1f}x; first / series: {first_ms / series_ms:.2f}x")  # fmt: skip
    if args.json:
        figures = {"chart_query_ms": first_ms, "chart_all_rows_ms": all_ms,
                   "chart_refresh_ms": refresh_ms, "chart_series_ms": series_ms,
                   "chart_open_ms": open_ms, "chart_query_alone_ms": first_q,
                   "chart_query_rows": len(first),
                   "chart_run_rows": len(rows), "chart_all_rows_vs_first": all_ms / first_ms}  # fmt: skip
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
