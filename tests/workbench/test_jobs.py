"""Job lifecycle through the real CLI: run, detach, stop, resume, crash, concurrency."""

from __future__ import annotations

import json
import os
import signal
import time

from store import Store


def wait_for(pred, timeout=30.0, every=0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


def fresh(store: Store) -> Store:
    """Ingest once, boundedly (a plain refresh chases a fast writer until it stops)."""
    with store.read():
        store.refresh()
    return store


def only_run(home):
    store = Store(home)
    fresh(store)
    runs = store.list_runs()
    assert len(runs) == 1, runs
    return store, runs[0]


def test_foreground_run_records_everything(wb, home):
    p = wb("run", "--preset", "echo", "--set", "steps=6", "--set", "interval_s=0")
    assert p.returncode == 0, p.stderr
    store, run = only_run(home)
    assert run["status"] == "done"
    steps = [m["step"] for m in store.metrics(run["run_id"]) if m["name"] == "loss"]
    assert steps == list(range(1, 7))
    assert len(store.samples(run["run_id"])) == 1
    saved = json.loads((home / "runs" / run["run_id"] / "run.json").read_text())
    assert saved["spec"]["steps"] == 6 and saved["meta"]["libraries"]["duckdb"]


def test_json_prints_event_stream(wb):
    p = wb("run", "--preset", "echo", "--set", "steps=2", "--set", "interval_s=0", "--json")
    kinds = [json.loads(line)["kind"] for line in p.stdout.splitlines()]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished" and "metrics" in kinds


def test_failure_and_divergence_statuses(wb, home):
    p = wb("run", "--preset", "echo", "--set", "fail_at=2", "--set", "interval_s=0")
    assert p.returncode == 1 and "asked to fail" in p.stderr
    p = wb("run", "--preset", "echo", "--set", "nan_at=3", "--set", "interval_s=0")
    assert p.returncode == 1
    store = Store(home)
    store.refresh()
    statuses = sorted(r["status"] for r in store.list_runs())
    assert statuses == ["diverged", "failed"]
    diverged = next(r for r in store.list_runs() if r["status"] == "diverged")
    nan_rows = [m for m in store.metrics(diverged["run_id"]) if m["nonfinite"]]
    assert len(nan_rows) == 1 and nan_rows[0]["value"] is None


def test_detach_stop_then_resume_continues(wb, home):
    p = wb(
        "run",
        "--preset",
        "echo",
        "--set",
        "steps=400",
        "--set",
        "interval_s=0.02",
        "--set",
        "checkpoint_every=1000",
        "--detach",
    )
    assert p.returncode == 0 and "started" in p.stdout
    store = Store(home)
    run_id = store.list_runs()[0]["run_id"]

    def progressed():
        fresh(store)
        return (store.get_run(run_id)["progress_step"] or 0) >= 5

    wait_for(progressed)
    assert wb("runs", "stop", run_id).returncode == 0
    wait_for(lambda: (fresh(store), store.get_run(run_id)["status"])[1] == "cancelled")
    stopped_at = json.loads((home / "runs" / run_id / "checkpoints" / "echo.json").read_text())
    assert 5 <= stopped_at["step"] < 400
    p = wb("runs", "resume", run_id, "--detach")
    assert p.returncode == 0, p.stderr
    wait_for(lambda: (fresh(store), store.get_run(run_id)["status"])[1] == "done", 60)
    steps = [m["step"] for m in store.metrics(run_id) if m["name"] == "loss"]
    assert sorted(steps) == list(range(1, 401)), "every step exactly once across the resume"


def test_sigkill_shows_crashed_with_events_kept(wb, home):
    p = wb(
        "run", "--preset", "echo", "--set", "steps=10000", "--set", "interval_s=0.01", "--detach"
    )
    assert p.returncode == 0
    store = Store(home)
    run_id = store.list_runs()[0]["run_id"]
    wait_for(lambda: (fresh(store), store.get_run(run_id)["status"] == "running")[1])
    time.sleep(0.5)
    os.kill(store.get_run(run_id)["pid"], signal.SIGKILL)
    lines = (home / "runs" / run_id / "events.jsonl").read_text().splitlines()
    ls = wb("runs", "ls", "--json")
    row = next(json.loads(line) for line in ls.stdout.splitlines())
    assert row["status"] == "crashed"
    loss_steps = [m["step"] for m in store.metrics(run_id) if m["name"] == "loss"]
    written = [
        json.loads(x)["step"] for x in lines if '"kind": "metrics"' in x or '"kind":"metrics"' in x
    ]
    assert loss_steps and sorted(loss_steps) == sorted(written)


def test_crashed_by_stale_heartbeat(home):
    """A run whose process can't be checked (other host) is crashed once its heartbeat is old."""
    store = Store(home)
    store.create_run("r1", "echo", {}, run_dir=str(home / "runs" / "r1"), status="running")
    (home / "runs" / "r1").mkdir(parents=True)
    beat = home / "runs" / "r1" / "heartbeat"
    beat.touch()
    with store.connect() as conn:
        conn.execute("update runs set host = 'elsewhere', pid = 1 where run_id = 'r1'")
    assert store.mark_crashed(stale_after_s=60) == []
    old = time.time() - 120
    os.utime(beat, (old, old))
    assert store.mark_crashed(stale_after_s=60) == ["r1"]
    assert store.get_run("r1")["status"] == "crashed"


def test_concurrent_jobs_and_pollers(wb, home):
    """Three jobs append events while `runs ls` polls: no lock error, every event once."""
    seconds = float(os.environ.get("WORKBENCH_STRESS_S", "8"))
    steps = int(seconds / 0.01)
    for _ in range(3):
        p = wb(
            "run",
            "--preset",
            "echo",
            "--set",
            f"steps={steps}",
            "--set",
            "interval_s=0.01",
            "--set",
            "sample_every=7",
            "--detach",
        )
        assert p.returncode == 0, p.stderr
    errors = []
    end = time.monotonic() + seconds + 30
    while time.monotonic() < end:
        p = wb("runs", "ls", "--json")
        if p.returncode != 0 or "error" in p.stderr.lower():
            errors.append(p.stderr)
        rows = [json.loads(x) for x in p.stdout.splitlines()]
        if len(rows) == 3 and all(r["status"] == "done" for r in rows):
            break
        time.sleep(0.5)
    assert errors == []
    store = Store(home)
    store.refresh()
    for run in store.list_runs():
        assert run["status"] == "done"
        log = (home / "runs" / run["run_id"] / "events.jsonl").read_text().splitlines()
        n_metrics = sum('"metrics"' in line for line in log)
        n_samples = sum('"sample"' in line for line in log)
        loss = [m["step"] for m in store.metrics(run["run_id"]) if m["name"] == "loss"]
        assert sorted(loss) == list(range(1, steps + 1)) and len(loss) == n_metrics
        assert len(store.samples(run["run_id"])) == n_samples


def test_newer_store_schema_is_refused(wb, home):
    store = Store(home)
    store.refresh()
    with store.connect() as conn:
        conn.execute("insert into schema_version values (999, now())")
    from store import db

    db.forget_migrated()
    p = wb("runs", "ls")
    assert p.returncode == 2
    assert "999" in p.stderr and "upgrade" in p.stderr
