"""Killing one process of a torchrun job: the others fail within the process-group timeout
and the run ends `failed`, its reason naming the lost rank (not `running`, not `cancelled`);
`runs resume --detach` then continues it under torchrun again, from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import time

import psutil
import pytest

from tests.conftest import workbench
from tests.pipelines.test_pretrain import spec
from tests.workbench.test_launch_section import wait_for_end


def launch_and_wait_for_checkpoint(home, job, env, *sets):
    """Start `job` detached on 2 ranks (`--set` each of `sets`); wait until it checkpointed.
    (run id, the torchrun agent, {rank: process}, the events file)."""
    args = [a for kv in sets for a in ("--set", kv)]
    p = workbench("run", str(job), "--detach", "--set", "launch.nproc_per_node=2", *args,
                  home=home, env=env)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    run_id = p.stdout.split()[1]
    agent = psutil.Process(int(p.stdout.split("(pid ")[1].split(")")[0]))
    events = home / "runs" / run_id / "events.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # training has started and checkpointed
        lines = events.read_text().splitlines() if events.exists() else []
        if any('"type": "checkpoint"' in x for x in lines):
            break
        time.sleep(1)
    else:
        raise AssertionError("training did not start")
    ranks = {int(c.environ()["RANK"]): c for c in agent.children()}
    assert sorted(ranks) == [0, 1]
    return run_id, agent, ranks, events


@pytest.mark.slow  # about 80 s on 2 cores: a failed run and its resumption
def test_killing_rank_1_fails_the_run_naming_it_and_it_resumes(tmp_path, home):
    job = spec(tmp_path, B=4, steps=200, ckpt=10)
    env = {"OMP_NUM_THREADS": "1", "WORKBENCH_PG_TIMEOUT_S": "30"}
    run_id, agent, ranks, events = launch_and_wait_for_checkpoint(
        home, job, env, "train.sample_every=0", "train.eval_every=0"
    )
    os.kill(ranks[1].pid, signal.SIGKILL)
    killed = time.monotonic()
    run = wait_for_end(home, run_id, timeout=90)
    assert time.monotonic() - killed < 90
    [finished] = [e for e in map(json.loads, events.read_text().splitlines())
                  if e["kind"] == "run_finished"]  # fmt: skip
    assert run["status"] == "failed", finished
    assert "lost rank 1 of 2" in finished["reason"], finished
    agent.wait(timeout=60)  # torchrun itself ends (it stops the surviving rank)
    assert not ranks[0].is_running()
    p = workbench("runs", "resume", run_id, "--detach", home=home, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    deadline = time.monotonic() + 120
    while events.read_text().count('"kind": "run_started"') < 2:  # the resumed job is up
        assert time.monotonic() < deadline, "the resumed job did not start"
        time.sleep(1)
    run = wait_for_end(home, run_id, timeout=180)
    records = [json.loads(x) for x in events.read_text().splitlines()]
    assert run["status"] == "done", records[-1]
    assert [e["world_size"] for e in records if e["kind"] == "run_started"] == [2, 2]
    assert max(e.get("step", 0) for e in records if e["kind"] == "metrics") == 200


@pytest.mark.slow  # about 40 s on 2 cores
def test_runs_stop_on_a_sharded_torchrun_job_stops_every_rank_at_one_step(tmp_path, home):
    """`runs stop` signals rank 0 only; the ranks agree on stopping in the step's sync, so all
    of them leave the loop at the same step and write the checkpoint together (under FSDP the
    checkpoint is a collective: a rank still training would leave the others waiting)."""
    job = spec(tmp_path, B=4, steps=400, ckpt=10)
    env = {"OMP_NUM_THREADS": "1", "WORKBENCH_PG_TIMEOUT_S": "60"}
    run_id, agent, ranks, events = launch_and_wait_for_checkpoint(
        home, job, env, "train.parallel=fsdp", "train.sample_every=0", "train.eval_every=0"
    )
    p = workbench("runs", "stop", run_id, home=home)
    assert p.returncode == 0, p.stdout + p.stderr
    run = wait_for_end(home, run_id, timeout=60)  # well inside the process-group timeout
    records = [json.loads(x) for x in events.read_text().splitlines()]
    assert run["status"] == "cancelled", records[-3:]
    agent.wait(timeout=30)
    assert not any(r.is_running() for r in ranks.values())
    log = (home / "runs" / run_id / "stdout.log").read_text()
    assert "Traceback" not in log and "ChildFailedError" not in log, log[-3000:]
    [finished] = [e for e in records if e["kind"] == "run_finished"]
    step = int(finished["reason"].removeprefix("stopped at step "))
    ckpts = [e for e in records if e["kind"] == "artifact" and e["type"] == "checkpoint"]
    assert ckpts[-1]["step"] == step < 400
    assert (home / "runs" / run_id / "checkpoints" / f"step-{step}" / "COMPLETE").exists()
