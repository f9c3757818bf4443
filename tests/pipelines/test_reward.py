"""The reward-model pipeline through `workbench`: rankings → a plain HF sequence classifier."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from store import Store
from tests.pipelines.rl_fixtures import eval_by_step, pairs_file, run_smollm2_preset, write_spec

SPEC = """
pipeline = "reward"
seed = 2
[model]
base = "tiny-base"
[data]
path = "{path}"
heldout_fraction = 0.25
max_len = 48
[train]
batch_size = 8
max_steps = {steps}
lr = 3e-3
warmup_steps = 2
eval_every = 20
eval_batches = 2
checkpoint_every = 20
log_every = 5
device = "cpu"
[output]
model_name = "tiny-rm"
"""


def write(tmp_path: Path, path: Path, steps: int = 40) -> Path:
    return write_spec(tmp_path / "rm.toml", SPEC, path=path, steps=steps)


def test_reward_model_learns_pairs_registers_and_loads_without_project(wb, tmp_path, home, base):
    assert wb("models", "import", str(base), "--name", "tiny-base").returncode == 0
    p = wb("run", str(write(tmp_path, pairs_file(tmp_path / "pairs.jsonl"))))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    store = Store(home)
    rid = store.list_runs(pipeline="reward")[0]["run_id"]
    acc = eval_by_step(store, rid, "pair_accuracy")
    print(f"held-out pair accuracy {acc[0]:.2f} -> {acc[40]:.2f}")
    assert acc[40] >= 0.85, acc
    model = store.get_model("tiny-rm")
    assert model["kind"] == "reward" and model["parent_model"] == "tiny-base"
    assert model["run_id"] == rid
    good = wb("reward", "score", "tiny-rm", "--prompt", "What is 12 + 30?", "--completion", "42")
    bad = wb("reward", "score", "tiny-rm", "--prompt", "What is 12 + 30?", "--completion", "apple")
    assert good.returncode == 0 and bad.returncode == 0, good.stderr + bad.stderr
    assert "Loading weights" not in good.stderr, good.stderr  # transformers' bar stays quiet
    assert float(good.stdout) > float(bad.stdout)
    assert_rm_loads_without_project(Path(model["path"]), tmp_path, float(good.stdout))


def assert_rm_loads_without_project(folder: Path, cwd: Path, expected: float) -> None:
    """A fresh Python without this project reads the same reward, as the docs say to."""
    code = f"""
import sys, torch
from transformers import AutoModelForSequenceClassification as A, AutoTokenizer as T
rm, tok = A.from_pretrained({str(folder)!r}), T.from_pretrained({str(folder)!r})
msgs = [{{"role": "user", "content": "What is 12 + 30?"}}, {{"role": "assistant", "content": "42"}}]
text = tok.apply_chat_template(msgs, tokenize=False).rstrip()
ids = tok(text).input_ids + [rm.config.readout_token_id]
print(type(rm).__name__, float(rm(torch.tensor([ids])).logits[0, 0]))
assert not any(k.split('.')[0] in ('engines', 'pipelines', 'store', 'workbench') for k in sys.modules)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                       env={**os.environ, "PYTHONPATH": ""}, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    name, value = r.stdout.split()
    assert name == "LlamaForSequenceClassification"
    assert abs(float(value) - expected) < 1e-3, (value, expected)


BAD = [
    ({"prompt": "p", "completions": ["a", "b"], "ranking": [0, 5]}, "names completion 5"),
    ({"prompt": "p", "completions": ["a", "b", "c"], "ranking": [0, 0, 1]}, "tie"),
    ({"prompt": "p", "completions": ["a", "b"], "ranking": [[0, 1]]}, "strict order"),
    ({"prompt": "p", "chosen": "same", "rejected": "same"}, "chosen must differ"),
]


@pytest.mark.parametrize(("record", "message"), BAD)
def test_bad_rankings_exit_2_without_a_run(wb, tmp_path, home, base, record, message):
    assert wb("models", "import", str(base), "--name", "tiny-base").returncode == 0
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"prompt": "q", "chosen": "x", "rejected": "y"}) + "\n"
                    + json.dumps(record) + "\n")  # fmt: skip
    p = wb("run", str(write(tmp_path, data)))
    assert p.returncode == 2, p.stdout + p.stderr
    assert f"{data}:2" in p.stderr and message in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert Store(home).list_runs(pipeline="reward") == []


def test_generated_rankings_train_a_reward_model(wb, tmp_path, home, base):
    """The built-in generator: samples ranked by the checker, with progress while sampling."""
    assert wb("models", "import", str(base), "--name", "tiny-base").returncode == 0
    spec = tmp_path / "gen.toml"
    text = SPEC.format(path="unused", steps=4).replace(
        'path = "unused"',
        ('tasks = ["arithmetic"]\nn_prompts = 8\neval_prompts = 4\nk = 2\nmax_new_tokens = 4'),
    )
    spec.write_text(text)
    p = wb("run", str(spec), "--json")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    events = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    phases = {e.get("phase") for e in events if e["kind"] == "progress"}
    assert {"ranking samples", "held-out samples", "train"} <= phases
    notes = " ".join(e["text"] for e in events if e["kind"] == "note")
    assert "checker-ranked" in notes and "stand-in for human labellers" in notes
    assert Store(home).get_model("tiny-rm")["kind"] == "reward"


@pytest.mark.realmodel
@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.timeout(2400)
def test_reward_smollm2_preset_reports_pair_kinds(real_home):
    """The shipped preset, shortened: held-out pair accuracy is recorded before and after for
    every kind of pair, the model's own samples and reference-vs-made-wrong among them."""
    run_smollm2_preset(
        real_home,
        "reward-smollm2",
        "train.max_steps=24",
        "train.eval_every=24",
        "train.checkpoint_every=24",
        "data.n_prompts=24",
        "data.eval_prompts=24",
        "output.model_name=reward-test",
    )
    store = Store(real_home)
    rid = store.list_runs(pipeline="reward")[0]["run_id"]
    acc = {k: eval_by_step(store, rid, f"pair_accuracy_{k}") for k in ("own", "made")}
    pairs = eval_by_step(store, rid, "pairs_made")
    print(f"reward-smollm2: held-out own {acc['own']}, made {acc['made']} of {pairs[24]:.0f}")
    assert {0, 24} <= set(acc["own"]) and {0, 24} <= set(acc["made"])
    assert pairs[24] >= 12 and acc["made"][24] > acc["made"][0]
