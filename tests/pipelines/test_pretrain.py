"""The pretraining pipeline through `workbench`: inspect, train, load, resume, DDP."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from store import Store
from tests.conftest import ROOT, workbench

TINY = """
pipeline = "pretrain"
seed = 3
[[data.sources]]
kind = "synthetic"
generator = "stories"
max_docs = 400
weight = {w1}
[[data.sources]]
kind = "synthetic"
generator = "tasks"
max_docs = 200
weight = {w2}
[tokenizer]
vocab_size = 300
sample_bytes = 100000
[model]
n_layer = 2
n_head = 2
n_embd = 32
block_size = 32
[train]
batch_size = {B}
max_steps = {steps}
lr = 1e-2
min_lr = 1e-3
warmup_steps = 2
eval_every = 5
eval_batches = 2
sample_every = 5
checkpoint_every = {ckpt}
log_every = 1
sample_prompts = ["The "]
sample_tokens = 8
device = "cpu"
"""


def spec(tmp_path: Path, name="job.toml", w1=0.8, w2=0.2, B=8, steps=15, ckpt=5) -> Path:
    path = tmp_path / name
    path.write_text(TINY.format(w1=w1, w2=w2, B=B, steps=steps, ckpt=ckpt))
    return path


def only_run(home: Path) -> dict:
    store = Store(home)
    store.refresh()
    runs = [r for r in store.list_runs() if r["pipeline"] == "pretrain"]
    assert len(runs) == 1
    return runs[0]


def test_data_inspect_reports_drawn_shares(wb, tmp_path, home):
    p = wb("data", "inspect", str(spec(tmp_path)), "--json", "--draws", "3000")
    assert p.returncode == 0, p.stderr
    rows = {r["source"]: r for r in map(json.loads, p.stdout.splitlines())}
    assert abs(rows["synthetic-stories"]["drawn_share"] - 0.8) <= 0.02
    assert abs(rows["synthetic-tasks"]["drawn_share"] - 0.2) <= 0.02
    for r in rows.values():
        assert r["docs"] > 0 and r["tokens"] > 0 and r["bytes"] > 0 and r["epochs"] > 0
    store = Store(home)
    inspect_run = store.list_runs(pipeline="data-inspect")[0]
    assert len(store.table(inspect_run["run_id"], "mixture")) == 2


def test_pretrain_trains_records_and_saves_a_plain_hf_model(wb, tmp_path, home):
    p = wb("run", str(spec(tmp_path, steps=20)))
    assert p.returncode == 0, p.stdout + p.stderr
    run = only_run(home)
    store = Store(home)
    rid = run["run_id"]
    val = [m["value"] for m in store.metrics(rid, ["val_loss"])]
    assert len(val) >= 3 and val[-1] < 0.8 * val[0]
    assert len({s["step"] for s in store.samples(rid)}) >= 3
    assert {r["source"] for r in store.table(rid, "mixture")} == {
        "synthetic-stories",
        "synthetic-tasks",
    }
    model_dir = Path(run["run_dir"]) / "model"
    model = store.get_model(rid)
    assert model["path"] == str(model_dir) and model["kind"] == "base"
    assert model["chat_template"] is False  # a base model completes text; no chat by default
    assert model["meta"]["chat_tuned"] is False and model["meta"]["final_val_loss"] == val[-1]
    notes = [e["text"] for e in events(run) if e["kind"] == "note"]
    assert notes[-1].startswith(f"made base model {rid!r} in {model_dir}: final validation loss")
    assert f"workbench generate {rid}" in notes[-1]
    artifact = next(e for e in events(run) if e["kind"] == "artifact" and e["type"] == "model")
    record = {"name": rid, "kind": "base", "source": "trained", "run_id": rid,
              "chat_template": False, "params": model["params"]}  # fmt: skip
    assert record.items() <= artifact["meta"].items()  # the store can register from events
    phases = {e["phase"] for e in events(run) if e["kind"] == "progress"}
    assert {"tokenizer", "packing", "train", "export"} <= phases
    code = (
        "import sys, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(model_dir)!r})\n"
        f"t = AutoTokenizer.from_pretrained({str(model_dir)!r})\n"
        "ids = t('The ', return_tensors='pt').input_ids\n"
        "out = m.generate(ids, max_new_tokens=5, do_sample=False)\n"
        "assert out.shape[1] == ids.shape[1] + 5 or t.eos_token_id in out[0].tolist()\n"
        "assert not any(k.split('.')[0] in ('engines', 'pipelines', 'store', 'workbench')"
        " for k in sys.modules)\n"
        "print('OK', t.decode(out[0]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert out.returncode == 0 and out.stdout.startswith("OK"), out.stderr


def events(run: dict) -> list[dict]:
    lines = (Path(run["run_dir"]) / "events.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines]


def final_weights(home: Path) -> dict[str, torch.Tensor]:
    return load_file(Path(only_run(home)["run_dir"]) / "model" / "model.safetensors")


def wait_for_train_step(run_dir: Path, step: int, limit_s: float = 120) -> int:
    """Follow events.jsonl until training passes `step`; the job's pid (the file, not the
    store: a tiny model trains faster than a store poll on a busy machine)."""
    deadline, seen, pid = time.monotonic() + limit_s, 0, None
    while time.monotonic() < deadline:
        path = run_dir / "events.jsonl"
        text = path.read_text() if path.exists() else ""
        lines = text[: text.rfind("\n") + 1].splitlines()  # whole lines only
        for e in map(json.loads, lines[seen:]):
            pid = e["pid"] if e["kind"] == "run_started" else pid
            if e["kind"] == "progress" and e["phase"] == "train" and e["step"] >= step:
                return pid
        seen = len(lines)
        time.sleep(0.01)
    raise AssertionError(f"training did not reach step {step} in {limit_s} s")


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    steps = 12
    ref_home, cut_home = tmp_path / "ref", tmp_path / "cut"
    job = spec(tmp_path, steps=steps, ckpt=3)
    assert workbench("run", str(job), home=ref_home).returncode == 0
    p = workbench("run", str(job), "--detach", home=cut_home)
    assert p.returncode == 0, p.stderr
    store = Store(cut_home)
    rid = store.list_runs()[0]["run_id"]
    kill_after = random.Random().randint(4, 10)
    pid = wait_for_train_step(Path(store.get_run(rid)["run_dir"]), kill_after)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    store.refresh()
    assert store.get_run(rid)["status"] == "crashed"
    p = workbench("runs", "resume", rid, home=cut_home)
    assert p.returncode == 0, p.stdout + p.stderr
    a, b = final_weights(ref_home), final_weights(cut_home)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume (killed at ~{kill_after})"


def test_torchrun_two_ranks_match_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert workbench("run", str(spec(tmp_path, "b8.toml", B=8, steps=6)), home=one).returncode == 0
    env = {**os.environ, "WORKBENCH_HOME": str(two), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(29500 + os.getpid() % 1000),
        "-m",
        "workbench",
        "run",
        str(spec(tmp_path, "b4.toml", B=4, steps=6)),
    ]
    p = subprocess.run(
        cmd, check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    a, b = final_weights(one), final_weights(two)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    run_dir = Path(only_run(two)["run_dir"])
    starts = [
        json.loads(x)
        for x in (run_dir / "events.jsonl").read_text().splitlines()
        if '"run_started"' in x
    ]
    assert len(starts) == 1 and starts[0]["world_size"] == 2
    assert len(list((two / "runs").iterdir())) == 1


def test_resume_refuses_a_changed_model_with_a_diff(tmp_path, home):
    job = spec(tmp_path, steps=40, ckpt=2)
    p = workbench("run", str(job), "--detach", home=home)
    assert p.returncode == 0
    store = Store(home)
    rid = store.list_runs()[0]["run_id"]
    ckpts = Path(store.get_run(rid)["run_dir"]) / "checkpoints"
    deadline = time.monotonic() + 300
    while not any(ckpts.glob("step-*/COMPLETE")) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(store.get_run(rid)["pid"], signal.SIGKILL)
    run_json = Path(store.get_run(rid)["run_dir"]) / "run.json"
    record = json.loads(run_json.read_text())
    record["spec"]["model"]["n_layer"] = 3
    run_json.write_text(json.dumps(record))
    p = workbench("runs", "resume", rid, home=home)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "model.n_layer: 2 → 3" in p.stderr


def test_empty_glob_and_bad_utf8(tmp_path, wb, home):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(("hello world " * 200).encode() + b"\xff\xfe broken " * 50)
    text = TINY.format(w1=1, w2=1, B=4, steps=2, ckpt=2).replace(
        'kind = "synthetic"\ngenerator = "tasks"', f'kind = "file"\npath = "{bad}"'
    )
    good = tmp_path / "utf8.toml"
    good.write_text(text)
    p = wb("data", "inspect", str(good), "--json", "--draws", "100")
    assert p.returncode == 0, p.stderr
    row = next(r for r in map(json.loads, p.stdout.splitlines()) if r["source"] == "bad")
    assert row["bad_utf8_docs"] == 1
    empty = tmp_path / "glob.toml"
    empty.write_text(
        text.replace(
            f'kind = "file"\npath = "{bad}"', f'kind = "glob"\nglob = "{tmp_path}/*.nothing"'
        )
    )
    p = wb("run", str(empty))
    assert p.returncode == 2 and "matched no files" in p.stderr, p.stderr
