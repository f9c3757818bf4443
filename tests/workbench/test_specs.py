"""Bad specs fail before anything runs: one line naming the file and field, exit code 2."""

from __future__ import annotations

import pytest

GOOD_ECHO = 'pipeline = "echo"\nsteps = 3\ninterval_s = 0.0\n'
TINY_PRETRAIN = """
pipeline = "pretrain"
[[data.sources]]
kind = "synthetic"
generator = "stories"
[model]
n_layer = 1
[train]
max_steps = 1
"""

CASES = {
    "unknown key": (GOOD_ECHO + "stepz = 4\n", ["unknown field 'stepz'", "did you mean 'steps'"]),
    "nested typo": (
        TINY_PRETRAIN.replace("max_steps", "max_stepz"),
        ["'train.max_stepz'", "did you mean 'max_steps'"],
    ),
    "wrong type": (GOOD_ECHO.replace("steps = 3", 'steps = "many"'), ["'steps'", "integer"]),
    "out of range": (GOOD_ECHO.replace("steps = 3", "steps = -1"), ["'steps'", "greater than"]),
    "not toml": ("pipeline = \n[[[", ["not valid TOML"]),
    "unknown pipeline": ('pipeline = "pretrian"\n', ["did you mean 'pretrain'"]),
    "missing data file": (
        TINY_PRETRAIN.replace(
            'kind = "synthetic"\ngenerator = "stories"', 'kind = "jsonl"\npath = "nope.jsonl"'
        ),
        ["data.sources.0.path", "nope.jsonl", "does not exist"],
    ),
    "vocab too small": (
        TINY_PRETRAIN + "[tokenizer]\nvocab_size = 100\n",
        ["tokenizer.vocab_size", "263"],
    ),
    "context too long": (
        TINY_PRETRAIN.replace("max_steps = 1", "max_steps = 1\nseq_len = 4096"),
        ["seq_len", "block_size"],
    ),
    "bad weight": (
        TINY_PRETRAIN.replace('generator = "stories"', 'generator = "stories"\nweight = 0'),
        ["data.sources.0.weight", "greater than 0"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_spec_exits_2_with_one_line(case, wb, home, tmp_path):
    text, needles = CASES[case]
    spec = tmp_path / "job.toml"
    spec.write_text(text)
    p = wb("run", str(spec))
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert str(spec) in lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    runs_dir = home / "runs"
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_missing_spec_file_and_bad_set(wb, tmp_path):
    p = wb("run", str(tmp_path / "absent.toml"))
    assert p.returncode == 2 and "no such spec file" in p.stderr
    p = wb("run", "--preset", "echo", "--set", "steps")
    assert p.returncode == 2 and "KEY=VALUE" in p.stderr
    p = wb("run", "--preset", "ehco")
    assert p.returncode == 2 and "did you mean 'echo'" in p.stderr


def test_set_overrides_fields(tmp_path):
    from pipelines.registry import load_spec

    spec = load_spec(preset="pretrain-tiny", overrides=["train.lr=0.01", "model.n_layer=2"])
    assert spec.train.lr == 0.01 and spec.model.n_layer == 2
