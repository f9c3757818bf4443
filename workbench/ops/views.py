"""What each screen shows, read from the store in ONE transaction per call.

    runs = runs_view(store)                              # Runs table
    detail = run_view(store, run_id, after_seq=1234)     # Run detail (new metric rows only)
    models = models_view(store)                          # Models table and chat picker
    data = data_view(store, run_id)                      # Data screen: runs, tables, models

Screens call these in a worker after the app's refresher reported `StoreChanged`; nothing here
refreshes (ingests) the store, so a read never writes.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from workbench.ops.fmt import metric_rank
from workbench.ops.refs import run_folder
from workbench.ops.stores import reading

DATA_PIPELINES = ("pretrain", "data-inspect")
LOG_BYTES = 32 * 1024
CHART_POINTS = 2000  # per curve on opening Run detail: more than a chart's dots across


def runs_view(store: Any) -> list[dict[str, Any]]:
    with reading(store):
        return store.list_runs()


def models_view(store: Any) -> list[dict[str, Any]]:
    with reading(store):
        return store.list_models(latest_only=True)


def run_view(store: Any, run_id: str, after_seq: int = -1) -> dict[str, Any]:
    """A run, its metric rows past `after_seq`, samples, artifacts, children and models.

    The first read (`after_seq` < 0) takes each curve cut to CHART_POINTS rows (every k-th
    and the last; each row but a curve's first without its time), read as columns: a
    100k-row run opens in tens of ms instead of the seconds a dict per row costs. Refreshes
    after it read every new row."""
    with reading(store):
        run = store.get_run(run_id)
        if run is None:
            return {"run": None}
        return {
            "run": run,
            "metrics": new_metrics(store, run_id, after_seq),
            "samples": store.samples(run_id, limit=100),
            "artifacts": store.artifacts(run_id),
            "children": store.children(run_id),
            "models": [m["ref"] for m in store.list_models() if m.get("run_id") == run_id],
            "folder": run_folder(store, run),
        }


def new_metrics(store: Any, run_id: str, after_seq: int) -> list[dict[str, Any]]:
    """Metric rows logged after `after_seq` (the store filters them when it can)."""
    if after_seq < 0 and hasattr(store, "metric_series"):
        return series_rows(store.metric_series(run_id, points=CHART_POINTS))
    if "after_seq" in inspect.signature(store.metrics).parameters:
        return store.metrics(run_id, after_seq=after_seq)
    return [m for m in store.metrics(run_id) if (m.get("seq") or 0) > after_seq]


def series_rows(curves: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`Store.metric_series` curves as metric rows (name, split, step, value, seq, t), the
    time only on each curve's first row, in logging order."""
    rows = [
        {"name": c["name"], "split": c["split"], "step": step, "value": value, "seq": seq,
         "t": c.get("t0") if i == 0 else None}
        for c in curves
        for i, (step, value, seq) in enumerate(zip(c["step"], c["value"], c["seq"], strict=True))
    ]  # fmt: skip
    return sorted(rows, key=lambda r: r["seq"])


def data_view(store: Any, run_id: str | None) -> dict[str, Any]:
    """Runs with data to show, the chosen run's mixture/sources tables, and the models."""
    with reading(store):
        runs = [r for p in DATA_PIPELINES for r in store.list_runs(pipeline=p)]
        run_id = run_id or (runs[0]["run_id"] if runs else None)
        tables = {n: store.table(run_id, n) for n in ("mixture", "sources")} if run_id else {}
        models = store.list_models(latest_only=True)
        return {"runs": runs, "run_id": run_id, "tables": tables, "models": models}


def series_label(name: str, split: str | None) -> tuple[str, str]:
    """(chart, series) for a metric row: train and validation of one metric share a chart.

    Rows carry their split (`train`, `val`, …); older stores named validation metrics `val_x`.
    """
    if name.startswith("val_"):
        return name[4:], name
    if not split or split == "train":
        return name, name
    return name, f"{'val' if split in ('val', 'eval') else split}_{name}"


def chart_groups(series: dict[str, str]) -> list[tuple[str, list[str]]]:
    """(chart title, series labels) — loss first, then throughput, then the rest by name.

    `series` maps each series label to its chart.
    """
    charts: dict[str, list[str]] = {}
    for label, chart in series.items():
        charts.setdefault(chart, []).append(label)
    order = sorted(charts, key=lambda n: (metric_rank(n), n))
    return [(c, sorted(charts[c], key=lambda s: (s != c, s))) for c in order]


def log_tail(run_dir: Path, lines: int = 200) -> list[str]:
    """The last lines of stdout.log, else of events.jsonl (files only: no store access)."""
    for name in ("stdout.log", "events.jsonl"):
        path = Path(run_dir) / name
        if path.exists():
            with open(path, "rb") as f:
                f.seek(max(0, path.stat().st_size - LOG_BYTES))
                text = f.read().decode("utf-8", errors="replace")
            return text.splitlines()[-lines:]
    return ["(no log yet)"]
