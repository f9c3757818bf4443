"""Killing one process of a torchrun job: the others fail within the process-group timeout
and the run ends `failed`, its reason naming the lost rank (not `running`, not `cancelled`)."""

from __future__ import annotations

import json
import os
import signal
import time

import psutil

from tests.conftest import workbench
from tests.pipelines.test_pretrain import spec
from tests.workbench.test_launch_section import wait_for_end


def test_killing_rank_1_fails_the_run_naming_it(tmp_path, home):
    job = spec(tmp_path, B=4, steps=5000, ckpt=0)
    env = {"OMP_NUM_THREADS": "1", "WORKBENCH_PG_TIMEOUT_S": "30"}
    p = workbench(
        "run", str(job), "--detach", "--set", "launch.nproc_per_node=2",
        "--set", "train.sample_every=0", "--set", "train.eval_every=0", home=home, env=env,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    run_id = p.stdout.split()[1]
    agent = psutil.Process(int(p.stdout.split("(pid ")[1].split(")")[0]))
    events = home / "runs" / run_id / "events.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # training has started: a train step was logged
        lines = events.read_text().splitlines() if events.exists() else []
        if any('"split": "train"' in x for x in lines):
            break
        time.sleep(1)
    else:
        raise AssertionError("training did not start")
    ranks = {int(c.environ()["RANK"]): c for c in agent.children()}
    assert sorted(ranks) == [0, 1]
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
