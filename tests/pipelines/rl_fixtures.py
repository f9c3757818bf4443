"""Shared pieces for the SFT / reward / DPO / GRPO / PPO / chain tests: a tiny base model
trained here (its tokenizer has the `<|reward|>` token), a quick SFT of it, ranking files,
spec files from templates, eval metrics by step, and a shipped preset run on SmolLM2."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.conftest import workbench


def make_base(out: Path, tasks=("arithmetic", "reverse")) -> Path:
    """A tiny random Llama (2 layers, width 32) with a BPE trained on task text."""
    from engines.model import ModelSize, build_model
    from engines.tasks import get_task
    from engines.tokenizer import train_bpe

    texts = [e.prompt + " " + e.answer for t in tasks for e in get_task(t).examples(200, seed=0)]
    tok = train_bpe(texts, 400)
    size = ModelSize(n_layer=2, n_head=2, n_embd=32, block_size=128, vocab_size=len(tok))
    model = build_model(
        size, seed=0, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, bos_id=tok.eos_token_id
    )
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


SFT = """
pipeline = "sft"
seed = 1
[model]
base = "{base}"
[data]
tasks = ["arithmetic"]
n_per_task = 200
max_len = 48
eval_n = 8
eval_max_new_tokens = 8
[train]
batch_size = 16
max_steps = 30
lr = 1e-2
warmup_steps = 2
eval_every = 0
sample_every = 0
checkpoint_every = 0
log_every = 10
device = "cpu"
[output]
model_name = "{name}"
"""


def write_spec(file: Path, template: str, /, **fields) -> Path:
    """`template` (a spec's TOML) filled in with `fields`, written to `file`."""
    file.write_text(template.format(**fields))
    return file


def eval_by_step(store, run_id: str, name: str) -> dict[int, float]:
    """The run's `eval`-split values of metric `name`, by step."""
    return {m["step"]: m["value"] for m in store.metrics(run_id, [name]) if m["split"] == "eval"}


def make_sft(home: Path, tmp: Path, base: Path, name: str = "tiny-sft") -> None:
    """Import `base` as tiny-base and SFT it briefly on arithmetic into `name`."""
    assert (
        workbench("models", "import", str(base), "--name", "tiny-base", home=home).returncode == 0
    )
    spec = write_spec(tmp / "sft.toml", SFT, base="tiny-base", name=name)
    p = workbench("run", str(spec), home=home)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]


def pairs_file(path: Path, n: int = 120, seed: int = 0) -> Path:
    """Chosen: the right sum; rejected: a word. Learnable even by a random tiny model."""
    rng = random.Random(seed)
    words = ["apple", "river", "garden", "yellow", "pocket"]
    with path.open("w") as f:
        for _ in range(n):
            a, b = rng.randint(0, 99), rng.randint(0, 99)
            k = rng.random()
            record = {"prompt": f"What is {a} + {b}?"}
            if k < 0.5:
                record |= {"chosen": str(a + b), "rejected": rng.choice(words)}
            else:
                c = [rng.choice(words), str(a + b), rng.choice(words) + " " + str(a)]
                record |= {"completions": c, "ranking": [1, 2, 0]}
            f.write(json.dumps(record) + "\n")
    return path


def run_smollm2_preset(home: Path, preset: str, *sets: str, timeout: float = 1800) -> None:
    """Run the shipped `preset` on SmolLM2-135M-Instruct (pulled into `home` from the package
    cache; the test is skipped when its wheels are not there), shortened by `sets` (`--set`
    values)."""
    from tests.engines.test_real_models import CACHE, _cached

    if not _cached("smollm2-135m-instruct"):
        pytest.skip(f"smollm2 wheels are not in {CACHE} (run `make models`)")
    env = {"WORKBENCH_PACKAGE_CACHE": str(CACHE), "OMP_NUM_THREADS": "1"}
    pull = workbench("models", "pull", "smollm2-135m-instruct", home=home, env=env, timeout=900)
    assert pull.returncode == 0
    overrides = [arg for s in sets for arg in ("--set", s)]
    p = workbench("run", "--preset", preset, *overrides, home=home, env=env, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
