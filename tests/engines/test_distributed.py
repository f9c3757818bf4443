"""DDP on CPU (gloo): two processes under torchrun match one process on the global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from engines import distributed as D
from tests.engines import ddp_script

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    code = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
    return int(subprocess.check_output([sys.executable, "-c", code], text=True))


def test_single_process_world_is_one():
    info = D.init_distributed("cpu")
    assert (info.rank, info.world_size, info.is_main, info.device.type) == (0, 1, True, "cpu")
    x = torch.tensor([2.0])
    assert D.all_reduce_mean(x) is x and D.all_gather_object({"a": 1}) == [{"a": 1}]


def test_two_ranks_match_one_process(tmp_path):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        str(ROOT / "tests/engines/ddp_script.py"), str(tmp_path / "ddp"),
    ]  # fmt: skip
    (tmp_path / "ddp").mkdir()
    done = subprocess.run(
        cmd, check=False, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    single = ddp_script.run(tmp_path / "one")  # same global batch in one process
    ddp_params = torch.load(tmp_path / "ddp" / "params.pt")
    for name, value in single.model.state_dict().items():
        assert torch.allclose(ddp_params[name], value, atol=1e-5), name

    rank0 = json.loads((tmp_path / "ddp" / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "ddp" / "rank1.json").read_text())
    assert [r["step"] for r in rank0 if r["type"] == "checkpoint"] == [1, 2, 3]
    assert not [r for r in rank1 if r["type"] == "checkpoint"]
    assert sorted(p.name for p in (tmp_path / "ddp" / "ckpt").iterdir()) == ["step-2", "step-3"]

    def train_values(records):
        return [r["values"] for r in records if r["type"] == "metrics" and r["split"] == "train"]

    single_values = train_values(json.loads((tmp_path / "one" / "rank0.json").read_text()))
    for v0, v1, v in zip(train_values(rank0), train_values(rank1), single_values, strict=True):
        assert v0["loss"] == v1["loss"]  # averaged over ranks
        assert abs(v0["loss"] - v["loss"]) < 1e-5
        assert v0["tokens"] == v["tokens"]
