"""FSDP2 (`train.parallel = "fsdp"`) under torchrun on CPU (gloo): two processes that shard a
tiny GPT end where one process on the same global batch ends, and write checkpoints and a
model folder that a single process could have written (full state dicts, gathered on rank 0)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from store import Store
from tests.conftest import ROOT, workbench
from tests.pipelines.test_pretrain import spec


def run_dirs(home: Path) -> list[Path]:
    """The pretrain runs' folders, oldest first."""
    store = Store(home)
    store.refresh()
    runs = sorted(store.list_runs(pipeline="pretrain"), key=lambda r: r["run_id"])
    return [Path(r["run_dir"]) for r in runs]


def torchrun(home: Path, *args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORKBENCH_HOME": str(home), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
        "--master_addr", "127.0.0.1", "--master_port", str(29500 + (os.getpid() + 7) % 1000),
        "-m", "workbench", *args,
    ]  # fmt: skip
    return subprocess.run(
        cmd, check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600
    )


def run_script(script: Path, text: str, out: Path, port_offset: int) -> None:
    """Write `text` (formatted with the repository root) to `script` and run it on 2 gloo
    ranks under torchrun with `out` as its argument; it must exit 0."""
    script.write_text(text.format(root=str(ROOT)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    port = 29500 + (os.getpid() + port_offset) % 1000
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(port), str(script), str(out),
    ]  # fmt: skip
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]


@pytest.mark.slow
def test_fsdp_two_ranks_match_one_process_and_save_a_plain_checkpoint(tmp_path, home):
    p = workbench("run", str(spec(tmp_path, "b8.toml", B=8, steps=6, ckpt=3)), home=home)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    job = spec(tmp_path, "b4.toml", B=4, steps=6, ckpt=3)  # the same data: its shards reused
    p = torchrun(home, "run", str(job), "--set", "train.parallel=fsdp")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    one, two = run_dirs(home)
    a, b = (load_file(d / "model" / "model.safetensors") for d in (one, two))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    events = [json.loads(x) for x in (two / "events.jsonl").read_text().splitlines()]
    starts = [e for e in events if e["kind"] == "run_started"]
    assert len(starts) == 1 and starts[0]["world_size"] == 2
    assert any(e["kind"] == "sample" for e in events), "rank 0 sampled from the gathered model"
    # The checkpoint is the one a single process writes: whole weights, index-keyed AdamW.
    ckpt_one, ckpt_two = one / "checkpoints" / "step-6", two / "checkpoints" / "step-6"
    w = load_file(ckpt_two / "model.safetensors")
    assert {k: v.shape for k, v in w.items()} == {
        k: v.shape for k, v in load_file(ckpt_one / "model.safetensors").items()
    }
    o1, o2 = (torch.load(c / "optimizer.pt", weights_only=True) for c in (ckpt_one, ckpt_two))
    assert o1["state"].keys() == o2["state"].keys()
    assert [g["params"] for g in o1["param_groups"]] == [g["params"] for g in o2["param_groups"]]
    for i, s in o1["state"].items():
        assert torch.allclose(s["exp_avg"], o2["state"][i]["exp_avg"], atol=1e-6), i
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(two / "model", local_files_only=True)
    assert type(model).__name__ == "LlamaForCausalLM"


RESUME_SCRIPT = """
import shutil, sys
from pathlib import Path
import torch
sys.path.insert(0, {root!r})
from engines import distributed as D
from engines.trainer import Trainer, causal_lm_loss
from tests.engines.trainer_fixtures import ToyBatches, tiny_config, tiny_model

out = Path(sys.argv[1])
torch.set_num_threads(1)
info = D.init_distributed("cpu")

def trainer(root):
    cfg = tiny_config(max_steps=6, grad_accum=2, checkpoint_every=3, parallel="fsdp")
    batches = ToyBatches(4, seed=0, rank=info.rank, world=info.world_size)
    return Trainer(tiny_model(), cfg, train_batches=batches, loss_fn=causal_lm_loss,
                   ckpt_root=root)

a = trainer(out / "a")
list(a.train())
final_a = D.full_state_dict(a.model)
if info.is_main:
    shutil.copytree(out / "a" / "step-3", out / "b" / "step-3")
D.barrier()
b = trainer(out / "b")  # a fresh model: everything comes from the checkpoint
list(b.train(resume=True))
final_b = D.full_state_dict(b.model)
if info.is_main:
    torch.save({{"a": final_a, "b": final_b, "from": b.resumed["step"]}}, out / "result.pt")
D.leave()  # not destroy_process_group: engines.distributed.leave says why
"""


def test_fsdp_resumes_from_its_checkpoint_exactly(tmp_path):
    """Two FSDP ranks (2 micro-batches a step) train 6 steps; a fresh pair resumed from the
    step-3 checkpoint ends on the same weights, and so does one plain process."""
    from engines.trainer import Trainer, causal_lm_loss
    from tests.engines.trainer_fixtures import ToyBatches, tiny_config, tiny_model

    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT.format(root=str(ROOT)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(29500 + (os.getpid() + 11) % 1000),
        str(script), str(tmp_path / "out"),
    ]  # fmt: skip
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    result = torch.load(tmp_path / "out" / "result.pt", weights_only=True)
    assert result["from"] == 3
    cfg = tiny_config(max_steps=6, grad_accum=2, parallel="fsdp")  # one process: not sharded
    one = Trainer(tiny_model(), cfg, train_batches=ToyBatches(4, seed=0),
                  loss_fn=causal_lm_loss, ckpt_root=tmp_path / "one")  # fmt: skip
    list(one.train())
    plain = one.model.state_dict()
    for k, v in result["a"].items():
        assert torch.allclose(v, result["b"][k], atol=1e-6), k
        assert torch.allclose(v, plain[k], atol=1e-5), k


ACROSS_SCRIPT = """
import shutil, sys
from pathlib import Path
import torch
sys.path.insert(0, {root!r})
from engines import distributed as D
from engines.trainer import Trainer, causal_lm_loss
from tests.engines.trainer_fixtures import ToyBatches, tiny_config, tiny_model

out = Path(sys.argv[1])
torch.set_num_threads(1)
info = D.init_distributed("cpu")

def trainer(root):  # 2 processes × 2 rows of one global batch of 4
    cfg = tiny_config(max_steps=6, checkpoint_every=3, parallel="fsdp")
    batches = ToyBatches(4, seed=0, rank=info.rank, world=info.world_size)
    return Trainer(tiny_model(), cfg, train_batches=batches, loss_fn=causal_lm_loss,
                   ckpt_root=root)

a = trainer(out / "two")  # written by 2: step-3 and step-6
list(a.train())
final = D.full_state_dict(a.model)
b = trainer(out / "from-one")  # resumes the step-3 checkpoint one process wrote
list(b.train(resume=True))
from_one = D.full_state_dict(b.model)
if info.is_main:
    torch.save({{"two": final, "from_one": from_one, "from": b.resumed["step"]}},
               out / "result.pt")
D.leave()  # not destroy_process_group: engines.distributed.leave says why
"""


def test_checkpoints_resume_across_process_counts(tmp_path):
    """One global data position: a checkpoint 2 FSDP processes wrote resumes in 1 process,
    and one that 1 process wrote resumes in 2, each ending on the weights of the
    uninterrupted run (the same samples, the same loss curve). A changed global batch is
    refused, naming the batch size that would continue it."""
    import shutil

    from engines.errors import UserError
    from engines.trainer import Trainer, causal_lm_loss
    from tests.engines.trainer_fixtures import ToyBatches, tiny_config, tiny_model

    out = tmp_path / "out"

    def single(root, **kw):
        cfg = tiny_config(max_steps=6, checkpoint_every=3, **kw)
        return Trainer(tiny_model(), cfg, train_batches=ToyBatches(4, seed=0),
                       loss_fn=causal_lm_loss, ckpt_root=root)  # fmt: skip

    one = single(tmp_path / "one")
    list(one.train())
    shutil.copytree(tmp_path / "one" / "step-3", out / "from-one" / "step-3")
    run_script(tmp_path / "across.py", ACROSS_SCRIPT, out, port_offset=13)
    result = torch.load(out / "result.pt", weights_only=True)
    assert result["from"] == 3
    shutil.copytree(out / "two" / "step-3", tmp_path / "from-two" / "step-3")
    resumed = single(tmp_path / "from-two")  # 1 process continues the 2-process checkpoint
    list(resumed.train(resume=True))
    assert resumed.resumed["step"] == 3
    plain, back = one.model.state_dict(), resumed.model.state_dict()
    for k, v in plain.items():
        assert torch.allclose(result["two"][k], v, atol=1e-5), k
        assert torch.allclose(result["from_one"][k], v, atol=1e-5), k
        assert torch.allclose(back[k], v, atol=1e-5), k
    shutil.copytree(out / "two" / "step-3", tmp_path / "wrong" / "step-3")
    wrong = Trainer(tiny_model(), tiny_config(max_steps=6),
                    train_batches=ToyBatches(2, seed=0), loss_fn=causal_lm_loss,
                    ckpt_root=tmp_path / "wrong")  # fmt: skip
    with pytest.raises(UserError, match=r"global batch .* set train.batch_size = 4"):
        list(wrong.train(resume=True))
