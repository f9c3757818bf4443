"""The SFT pipeline through `workbench`: full and LoRA fine-tuning of a tiny base model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store import Store
from tests.pipelines.rl_fixtures import make_base, run_smollm2_preset


@pytest.fixture
def base_model(tmp_path_factory) -> Path:
    """A tiny random Llama with a tokenizer trained here, saved as a plain HF folder."""
    out = tmp_path_factory.mktemp("base") / "tiny-base"
    return make_base(out, tasks=("palindrome", "reverse"))


def assert_loads_without_project(folder: Path, cwd: Path) -> None:
    """A fresh Python, without this project or peft, loads `folder` as a plain Llama."""
    code = (
        "from transformers import AutoModelForCausalLM as A; import sys\n"
        f"m = A.from_pretrained({str(folder)!r}); print(type(m).__name__)\n"
        "assert 'peft' not in sys.modules\n"
        "assert not any(k.split('.')[0] in ('engines', 'pipelines', 'store', 'workbench')"
        " for k in sys.modules)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
        cwd=cwd,
        check=False,
    )
    assert r.returncode == 0 and "LlamaForCausalLM" in r.stdout, r.stderr


SFT = """
pipeline = "sft"
seed = 1
[model]
base = "tiny-base"
[data]
tasks = ["palindrome", "reverse"]
n_per_task = 60
max_len = 64
eval_n = 6
eval_max_new_tokens = 6
{extra}
[train]
batch_size = 8
max_steps = 6
lr = 5e-3
warmup_steps = 1
eval_every = 3
sample_every = 3
checkpoint_every = 3
log_every = 1
device = "cpu"
[output]
model_name = "tiny-sft"
"""


def run_sft(wb, tmp_path, base_model, extra=""):
    p = wb("models", "import", str(base_model), "--name", "tiny-base")
    assert p.returncode == 0, p.stderr
    spec = tmp_path / "sft.toml"
    spec.write_text(SFT.format(extra=extra))
    return wb("run", str(spec))


def test_full_sft_records_accuracy_and_registers_an_assistant(wb, tmp_path, home, base_model):
    p = run_sft(wb, tmp_path, base_model)
    assert p.returncode == 0, p.stdout + p.stderr
    store = Store(home)
    run = store.list_runs(pipeline="sft")[0]
    rid = run["run_id"]
    evals = [m for m in store.metrics(rid, ["accuracy"]) if m["split"] == "eval"]
    assert evals[0]["step"] == 0 and evals[-1]["step"] == 6
    assert {r["task"] for r in store.table(rid, "eval")} == {"palindrome", "reverse", "all"}
    model = store.get_model("tiny-sft")
    assert model["kind"] == "assistant" and model["parent_model"] == "tiny-base"
    assert model["chat_template"] is True and model["run_id"] == rid
    lines = (Path(run["run_dir"]) / "events.jsonl").read_text().splitlines()
    notes = [e["text"] for e in map(json.loads, lines) if e["kind"] == "note"]
    assert notes[-1].startswith("made assistant model 'tiny-sft'") and "→" in notes[-1]
    assert notes[-1].endswith("Try it: workbench chat tiny-sft")
    folder = Path(model["path"])
    cfg = json.loads((folder / "generation_config.json").read_text())
    assert isinstance(cfg["eos_token_id"], list) and len(cfg["eos_token_id"]) == 2


def test_lora_trains_a_small_share_and_merged_export_loads(wb, tmp_path, home, base_model):
    p = run_sft(wb, tmp_path, base_model, extra="[lora]\nenabled = true\nr = 2\nalpha = 4\n")
    assert p.returncode == 0, p.stdout + p.stderr
    store = Store(home)
    rid = store.list_runs(pipeline="sft")[0]["run_id"]
    share = store.metrics(rid, ["trainable_share"])[0]["value"]
    assert 0 < share < 0.2
    assert (Path(store.get_run(rid)["run_dir"]) / "adapter" / "adapter_config.json").exists()
    out = tmp_path / "exported"
    assert wb("models", "export", "tiny-sft", str(out)).returncode == 0
    assert_loads_without_project(out, tmp_path)


def test_sft_bad_inputs_exit_2(wb, tmp_path, home, base_model):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"prompt": "a", "completion": "b"}\n{"messages": [{"role": "user", '
        '"content": "no answer"}]}\n'
    )
    p = run_sft(wb, tmp_path, base_model, extra=f'path = "{bad}"')
    assert p.returncode == 2 and f"{bad}:2" in p.stderr and "no assistant turn" in p.stderr
    spec = tmp_path / "s2.toml"
    spec.write_text(SFT.format(extra="").replace('"tiny-base"', '"no-such-model"'))
    p = wb("run", str(spec))
    assert p.returncode == 2 and "no-such-model" in p.stderr
    spec.write_text(SFT.format(extra="").replace('"reverse"]', '"revers"]'))
    p = wb("run", str(spec))
    assert p.returncode == 2 and "revers" in p.stderr


@pytest.mark.realmodel
@pytest.mark.slow
def test_sft_smollm2_lora_preset_improves_its_task(real_home, tmp_path):
    """The shipped preset, shortened to 20 steps: <1% of parameters, accuracy up, export loads."""
    from tests.conftest import workbench

    run_smollm2_preset(
        real_home,
        "sft-smollm2-lora",
        "train.max_steps=20",
        "data.eval_n=20",
        "train.sample_every=100",
        "output.model_name=lora-test",
        timeout=1200,
    )
    store = Store(real_home)
    rid = store.list_runs(pipeline="sft")[0]["run_id"]
    share = store.metrics(rid, ["trainable_share"])[0]["value"]
    acc = {m["step"]: m["value"] for m in store.metrics(rid, ["accuracy"])}
    print(f"smollm2 LoRA: {share:.2%} trainable; count_letters {acc[0]:.0%} -> {acc[20]:.0%}")
    assert share < 0.01 and acc[20] >= acc[0] + 0.2
    out = tmp_path / "merged"
    assert workbench("models", "export", "lora-test", str(out), home=real_home).returncode == 0
    assert_loads_without_project(out, tmp_path)


def test_generate_and_chat_stream_from_a_registered_model(wb, base_model):
    assert wb("models", "import", str(base_model), "--name", "tiny-base").returncode == 0
    p = wb(
        "generate",
        "tiny-base",
        "Reverse the word",
        "--max-new-tokens",
        "5",
        "--seed",
        "1",
        "--temperature",
        "0.8",
    )
    assert p.returncode == 0 and p.stdout.strip(), p.stderr
    p = wb("chat", "tiny-base", "--max-new-tokens", "5", stdin_text="hello\nagain\n\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("model> ") == 2


def test_stop_during_the_baseline_evaluation_cancels_within_seconds(wb, tmp_path, home, base_model):
    """`runs stop` (SIGTERM) acts between evaluation batches, not after the whole phase."""
    assert wb("models", "import", str(base_model), "--name", "tiny-base").returncode == 0
    spec = tmp_path / "sft.toml"
    spec.write_text(SFT.format(extra="").replace("eval_n = 6", "eval_n = 4000"))
    env = {**os.environ, "WORKBENCH_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    job = subprocess.Popen(
        [sys.executable, "-m", "workbench", "run", str(spec), "--json"],
        cwd=Path(__file__).resolve().parents[2], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    phases = []
    for line in job.stdout:
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("kind") == "progress":
            phases.append(event["phase"])
        if event.get("phase") == "baseline eval":
            assert event["total"] == 8000  # two tasks × eval_n: a real total
            if event["step"] >= 32:
                break
    assert phases[0] == "data" and phases[-1] == "baseline eval", phases
    assert "train" not in phases
    asked = time.monotonic()
    job.send_signal(signal.SIGTERM)
    job.communicate(timeout=60)
    assert time.monotonic() - asked < 10
    store = Store(home)
    store.refresh()
    run = store.list_runs(pipeline="sft")[0]
    assert run["status"] == "cancelled", run
