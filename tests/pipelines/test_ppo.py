"""The PPO pipeline through `workbench`: metrics, held-out reward, bad inputs, exact resume."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from store import Store
from tests.conftest import workbench
from tests.pipelines.rl_fixtures import make_base, pairs_file, write_spec

RM = """
pipeline = "reward"
seed = 2
[model]
base = "tiny-base"
[data]
path = "{path}"
max_len = 48
[train]
batch_size = 8
max_steps = 30
lr = 3e-3
warmup_steps = 2
eval_every = 0
eval_batches = 1
checkpoint_every = 0
log_every = 10
device = "cpu"
[output]
model_name = "tiny-rm"
"""

PPO = """
pipeline = "ppo"
seed = 6
[model]
policy = "tiny-base"
reward = "{reward}"
[data]
tasks = ["arithmetic"]
n_prompts = 40
heldout_prompts = 4
eval_n = 4
eval_max_new_tokens = 4
[ppo]
max_new_tokens = 5
minibatch = 2
epochs = 2
ent_coef = 0.01
[train]
batch_size = 4
max_steps = {steps}
lr = 1e-3
warmup_steps = 1
sample_every = 4
checkpoint_every = 2
device = "cpu"
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A home with tiny-base (the policy) and tiny-rm (a reward model trained from it)."""
    root = tmp_path_factory.mktemp("ppo")
    home = root / "home"
    base = make_base(root / "tiny-base")
    assert (
        workbench("models", "import", str(base), "--name", "tiny-base", home=home).returncode == 0
    )
    rm = write_spec(root / "rm.toml", RM, path=pairs_file(root / "pairs.jsonl"))
    p = workbench("run", str(rm), home=home)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return home


def spec(tmp_path: Path, steps: int = 8, reward: str = "tiny-rm") -> Path:
    return write_spec(tmp_path / f"ppo-{steps}-{reward}.toml", PPO, steps=steps, reward=reward)


def runs(home: Path) -> list[dict]:
    store = Store(home)
    store.refresh()
    return store.list_runs(pipeline="ppo")


def test_ppo_records_every_metric_and_heldout_reward(prepared, tmp_path):
    p = workbench("run", str(spec(tmp_path)), home=prepared)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    store = Store(prepared)
    rid = runs(prepared)[0]["run_id"]
    names = ["reward", "kl", "entropy", "response_length", "clip_frac", "value_loss"]
    got = {m["name"] for m in store.metrics(rid, names) if m["split"] == "train"}
    assert got == set(names)
    held = {m["step"]: m["value"] for m in store.metrics(rid, ["heldout_reward"])}
    assert set(held) >= {0, 4, 8}
    assert {m["step"] for m in store.metrics(rid, ["accuracy"])} >= {0, 8}
    samples = store.samples(rid) if hasattr(store, "samples") else []
    assert any("reward" in (s.get("meta") or {}) for s in samples) or not hasattr(store, "samples")
    run = store.get_run(rid)
    assert set(run["parents"]) >= {store.get_model("tiny-rm")["run_id"]}


def test_ppo_bad_inputs_exit_2_without_a_run(prepared, tmp_path):
    no_rm = spec(tmp_path).read_text().replace('reward = "tiny-rm"\n', "")
    (tmp_path / "no-rm.toml").write_text(no_rm)
    p = workbench("run", str(tmp_path / "no-rm.toml"), home=prepared)
    assert p.returncode == 2 and "model.reward" in p.stderr, p.stderr
    p = workbench("run", str(spec(tmp_path, reward="tiny-base")), home=prepared)
    assert p.returncode == 2 and "is not a reward model" in p.stderr, p.stderr
    other = make_base(tmp_path / "other-base", tasks=("palindrome",))
    assert (
        workbench("models", "import", str(other), "--name", "other", home=prepared).returncode == 0
    )
    text = spec(tmp_path).read_text().replace('policy = "tiny-base"', 'policy = "other"')
    (tmp_path / "mismatch.toml").write_text(text)
    p = workbench("run", str(tmp_path / "mismatch.toml"), home=prepared)
    assert p.returncode == 2 and "different tokenizer" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def metrics_by_step(home: Path, rid: str) -> dict:
    """The last value of each (name, step) of the train split: a resumed run's final word."""
    out = {}
    for m in Store(home).metrics(rid, ["reward", "kl", "value_loss", "clip_frac", "loss"]):
        if m["split"] == "train":
            out[(m["name"], m["step"])] = m["value"]
    return out


def test_sigkill_during_ppo_then_resume_equals_uninterrupted_run(prepared, tmp_path):
    job = spec(tmp_path, steps=16)
    assert workbench("run", str(job), home=prepared).returncode == 0
    ref = runs(prepared)[0]["run_id"]
    assert workbench("run", str(job), "--detach", home=prepared).returncode == 0
    store = Store(prepared)
    rid = next(r["run_id"] for r in runs(prepared) if r["run_id"] != ref)
    run_dir = Path(store.get_run(rid)["run_dir"])
    deadline = time.monotonic() + 300
    while not list(run_dir.glob("checkpoints/step-*/COMPLETE")) and time.monotonic() < deadline:
        time.sleep(0.005)
    started = json.loads((run_dir / "events.jsonl").read_text().splitlines()[0])
    os.kill(started["pid"], signal.SIGKILL)
    time.sleep(0.5)
    store.refresh()
    assert store.get_run(rid)["status"] == "crashed"
    p = workbench("runs", "resume", rid, home=prepared)
    assert p.returncode == 0, p.stdout + p.stderr
    deadline = time.monotonic() + 300
    while runs_status(prepared, rid) not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert runs_status(prepared, rid) == "done"
    a = load_file(Path(store.get_run(ref)["run_dir"]) / "model" / "model.safetensors")
    b = load_file(Path(store.get_run(rid)["run_dir"]) / "model" / "model.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    assert metrics_by_step(prepared, ref) == metrics_by_step(prepared, rid)


def runs_status(home: Path, rid: str) -> str:
    store = Store(home)
    store.refresh()
    return store.get_run(rid)["status"]
