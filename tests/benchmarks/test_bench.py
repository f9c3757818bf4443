"""`make bench`: its table marks goals, and its figures land in the store as a `bench` run."""

from __future__ import annotations

from benchmarks.bench import record, table
from store import Store


def test_table_marks_goals_met_and_missed():
    text = table({"decode.floor_ratio": 0.7, "train.workbench_vs_plain": 0.9, "other": 2.0})
    assert "| decode.floor_ratio | 0.7 | 0.6 | yes |" in text
    assert "| train.workbench_vs_plain | 0.9 | 1.0 | no |" in text
    assert "| other | 2 |  |  |" in text


def test_figures_are_recorded_as_a_bench_run(tmp_path):
    store = Store(tmp_path)
    run_id = record(store, {"decode.floor_ratio": 0.5, "ingest.ingest_rows_s": 1e5}, "1.0 1.0 1.0")
    run = store.get_run(run_id)
    assert run["pipeline"] == "bench" and run["status"] == "done"
    values = {m["name"]: m["value"] for m in store.metrics(run_id)}
    assert values == {"decode.floor_ratio": 0.5, "ingest.ingest_rows_s": 1e5}
