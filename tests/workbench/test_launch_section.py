"""A spec's `[launch]` section: `workbench run --detach` starts the job under torchrun itself
(every rank runs `pipelines.distributed RUN_ID`), and the store holds one run, rank 0's."""

from __future__ import annotations

import json
import time

from store import Store
from tests.conftest import workbench
from tests.pipelines.test_pretrain import spec


def wait_for_end(home, run_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = workbench("runs", "ls", "--json", "--all", home=home)
        rows = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
        run = next((r for r in rows if r["run_id"] == run_id), None)
        if run and run["status"] not in ("queued", "running"):
            return run
        time.sleep(2)
    raise AssertionError(f"{run_id} did not finish in {timeout} s: {run}")


def test_launch_section_starts_torchrun_detached_and_records_one_run(tmp_path, home):
    job = spec(tmp_path, B=4, steps=4, ckpt=0)
    p = workbench(
        "run", str(job), "--detach", "--set", "launch.nproc_per_node=2",
        "--set", "train.sample_every=0", home=home, env={"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    run_id = p.stdout.split()[1]
    run = wait_for_end(home, run_id)
    log = (home / "runs" / run_id / "stdout.log").read_text()
    assert run["status"] == "done", log[-3000:]
    store = Store(home)
    store.refresh()
    [row] = store.list_runs()
    assert row["run_id"] == run_id and row["world_size"] == 2
    p = workbench("runs", "ls", "--json", "--all", home=home)
    assert [json.loads(x)["run_id"] for x in p.stdout.splitlines() if x.strip()] == [run_id]
    assert "torch.distributed" in log or "run_started" in log


def test_launch_section_is_validated_and_needs_detach(tmp_path, home):
    job = spec(tmp_path)
    p = workbench("run", str(job), "--set", "launch.nproc_per_nod=2", home=home)
    assert p.returncode == 2 and "launch.nproc_per_nod" in p.stderr, p.stderr
    p = workbench("run", str(job), "--set", "launch.nproc_per_node=0", home=home)
    assert p.returncode == 2 and "launch.nproc_per_node" in p.stderr, p.stderr
    p = workbench("run", str(job), "--set", "launch.nnodes=2", home=home)
    assert p.returncode == 2 and "rdzv_endpoint" in p.stderr, p.stderr
    p = workbench("run", str(job), "--set", "launch.nproc_per_node=2", home=home)
    assert p.returncode == 2 and "--detach" in p.stderr, p.stderr
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())
