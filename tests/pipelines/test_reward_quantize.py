"""`data.quantize` of a reward (and DPO) spec: the generator samples rankings from a
quantized copy of the base, the run's note says so, and a bad value is one line naming the
field and the choices (exit 2) before any run exists."""

from __future__ import annotations

import json
from types import SimpleNamespace

from pipelines import comparisons, reward
from pipelines.registry import spec_from_dict
from store import Store

SPEC = {
    "pipeline": "reward",
    "seed": 2,
    "model": {"base": "tiny-base"},
    "data": {"tasks": ["arithmetic"], "n_prompts": 8, "eval_prompts": 4, "k": 2,
             "max_new_tokens": 4, "max_len": 48, "quantize": "int8"},
    "train": {"batch_size": 8, "max_steps": 4, "eval_every": 2, "eval_batches": 1,
              "checkpoint_every": 4, "log_every": 1, "device": "cpu"},
    "output": {"model_name": "tiny-rm"},
}  # fmt: skip


def test_the_generator_samples_with_int8_linears(base, monkeypatch):
    seen: list[set[str]] = []

    def spy(model, tok, data, *, split, seed):
        seen.append({type(m).__name__ for m in model.modules() if hasattr(m, "in_features")})
        yield 1, 1
        return []

    monkeypatch.setattr(comparisons, "generate_rankings", spy)
    spec = spec_from_dict(SPEC, where="test")
    ctx = SimpleNamespace(should_stop=lambda: False)
    gen = reward.generated(spec, ctx, base)
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as end:
        assert end.value == ([], [])
    assert seen == [{"Int8Linear"}, {"Int8Linear"}]  # training and held-out samples
    assert "with int8 weights" in events[-1].text


def test_a_reward_run_with_quantized_generation_ends_done(wb, tmp_path, home, base):
    assert wb("models", "import", str(base), "--name", "tiny-base").returncode == 0
    toml = tmp_path / "rm.toml"
    toml.write_text(_toml(SPEC))
    p = wb("run", str(toml), "--json")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    events = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    notes = " ".join(e["text"] for e in events if e["kind"] == "note")
    assert "rankings with int8 weights" in notes
    (run,) = Store(home).list_runs(pipeline="reward")
    assert run["status"] == "done" and run["spec"]["data"]["quantize"] == "int8"


def test_a_bad_data_quantize_exits_2_naming_the_field(wb, home):
    for preset in ("reward-tiny", "dpo-smollm2-lora"):
        p = wb("run", "--preset", preset, "--set", "data.quantize=int3")
        assert p.returncode == 2, (preset, p.stderr)
        assert p.stderr == (
            "error: --set data.quantize=int3: field 'data.quantize': "
            "Input should be 'none', 'int8' or 'int4' (got 'int3')\n"
        ), p.stderr
    assert Store(home).list_runs() == []


def _toml(spec: dict) -> str:
    lines = [f"{k} = {json.dumps(v)}" for k, v in spec.items() if not isinstance(v, dict)]
    for section, fields in spec.items():
        if isinstance(fields, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"
