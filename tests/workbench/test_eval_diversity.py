"""`workbench eval diversity`: two models side by side on one prompt, stored as experiments."""

from __future__ import annotations

import json

from store import Store
from tests.pipelines.rl_fixtures import make_base


def test_eval_diversity_prints_models_side_by_side_and_stores_them(wb, tmp_path, home):
    base = make_base(tmp_path / "tiny-base")
    assert wb("models", "import", str(base), "--name", "a").returncode == 0
    assert wb("models", "import", str(base), "--name", "b").returncode == 0
    p = wb("eval", "diversity", "a", "b", "--prompt", "What is 2 + 3?", "--n", "6",
           "--max-new-tokens", "6", "--json")  # fmt: skip
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]  # JSON lines
    assert [r["model"] for r in rows] == ["a", "b"]
    for r in rows:
        assert 0 < r["distinct_1"] <= 1 and 0 <= r["distinct_2"] <= 1 and r["entropy"] > 0
    stored = Store(home).list_prompt_experiments()
    assert {e["model"] for e in stored if e["strategy"] == "diversity"} == {"a", "b"}
    p = wb("eval", "diversity", "a", "--prompt", "hi", "--n", "2", "--max-new-tokens", "2")
    assert p.returncode == 0 and "distinct_1" in p.stdout, p.stderr


def test_eval_diversity_quantized_labels_the_row_and_rejects_an_unknown_kind(wb, tmp_path, home):
    base = make_base(tmp_path / "tiny-base")
    assert wb("models", "import", str(base), "--name", "a").returncode == 0
    p = wb("eval", "diversity", "a", "--prompt", "hi", "--n", "3", "--max-new-tokens", "4",
           "--quantize", "int8", "--json")  # fmt: skip
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]  # JSON lines
    assert [r["model"] for r in rows] == ["a [int8]"] and rows[0]["entropy"] > 0
    (stored,) = Store(home).list_prompt_experiments()
    assert stored["model"] == "a" and stored["transcripts"][0]["metrics"]["quantize"] == "int8"
    p = wb("eval", "diversity", "a", "--prompt", "hi", "--quantize", "int3")
    assert p.returncode == 2 and "--quantize int3" in p.stderr and "int8" in p.stderr, p.stderr
    assert len(Store(home).list_prompt_experiments()) == 1  # nothing stored for the bad call
