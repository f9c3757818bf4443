"""The lab on the real pulled models (slow; needs the model packages in the cache):
constrained JSON from SmolLM2 always parses, MiniLM retrieval finds the fact sheet's state."""

from __future__ import annotations

import json

import pytest

from engines import hub
from tests.engines.test_real_models import CACHE, _cached
from workbench.ops import prompting as lab
from workbench.ops import rag as rag_ops
from workbench.ops.stores import open_store

pytestmark = [pytest.mark.realmodel, pytest.mark.slow, pytest.mark.heavy]


@pytest.fixture(scope="module")
def store(real_home):
    for name in ("smollm2-135m-instruct", "minilm-l6"):
        if not _cached(name):
            pytest.skip(f"{name} wheels are not in {CACHE}")
    s = open_store(real_home / "lab")
    for name in ("smollm2-135m-instruct", "minilm-l6"):
        hub.pull(name, real_home / "models", CACHE)
    return s


def _folder(real_home, name):
    return str(real_home / "models" / name)


def test_smollm2_constrained_json_parses_and_validates(store, real_home):
    model = _folder(real_home, "smollm2-135m-instruct")
    summary = lab.run_eval(store, lab.EvalRequest(model, "constrained", "json", n=3))
    assert summary["parse_rate"] == 1.0 and summary["valid_rate"] == 1.0
    out = store.list_prompt_experiments()[-1]["transcripts"][1]["output"]
    assert set(json.loads(out)) == {"name", "age", "city"}


def test_minilm_retrieves_the_right_state(store, real_home, docs):
    rag_ops.index_folder(store, docs, "sheet", embed_model=_folder(real_home, "minilm-l6"))
    hits = rag_ops.query(store, "sheet", "How many people live in Alaska?", k=3)
    assert "alaska" in [h["source"] for h in hits]
