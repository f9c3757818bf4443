"""The lab's operations on tiny real models and a real store: experiments stored and compared,
constrained output that always parses, RAG indexes in the store's DuckDB file."""

from __future__ import annotations

import json

import pytest

from workbench.ops import OpError
from workbench.ops import prompting as lab
from workbench.ops import rag as rag_ops
from workbench.ops.stores import open_store


@pytest.fixture
def store(home):
    return open_store(home)


def test_eval_stores_an_experiment_and_compare_shows_it(store, tiny_chat, tmp_path):
    tasks = tmp_path / "mine.jsonl"
    tasks.write_text(
        '{"question": "2 + 2?", "answer": "4", "match": "numeric"}\n'
        '{"id": "b", "question": "Say hi", "answer": "hi", "match": "contains"}\n'
    )
    req = lab.EvalRequest(str(tiny_chat), "zero-shot", str(tasks), max_new_tokens=4)
    summary = lab.run_eval(store, req)
    assert summary["n"] == 2 and summary["task"] == "mine" and summary["tokens_out"] > 0
    [exp] = store.list_prompt_experiments()
    assert (
        exp["strategy"] == "zero-shot"
        and exp["tokens"] == summary["tokens_in"] + summary["tokens_out"]
    )
    assert exp["transcripts"][0]["summary"]["tokens_in"] == summary["tokens_in"]
    assert [t["id"] for t in exp["transcripts"][1:]] == ["1", "b"]
    [row] = lab.compare(store)
    assert row[:4] == ("mine", "zero-shot", str(tiny_chat), 2)


def test_constrained_json_always_parses_on_a_random_model(store, tiny_chat):
    req = lab.EvalRequest(str(tiny_chat), "constrained", "json", n=3)
    summary = lab.run_eval(store, req)
    exp = store.list_prompt_experiments()[-1]
    for t in exp["transcripts"][1:]:
        value = json.loads(t["output"])
        assert set(value) == {"name", "age", "city"} and isinstance(value["age"], int)
    assert summary["parse_rate"] == 1.0 and summary["valid_rate"] == 1.0


def test_constraint_options_and_bad_schemas(store, tiny_chat, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(OpError, match="bad.json: not valid JSON"):
        lab.read_constraint(bad, None, ())
    with pytest.raises(OpError, match="not several"):
        lab.read_constraint(None, "a+", ("x",))
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"type": "object", "properties": {"a": {"type": "nonsense"}}}')
    req = lab.EvalRequest(str(tiny_chat), "constrained", "", json_schema=wrong)
    with pytest.raises(OpError, match="invalid JSON schema"):
        lab.try_prompt(store, str(tiny_chat), "constrained", "give a", req)
    req = lab.EvalRequest(str(tiny_chat), "constrained", "", choice=("yes", "no"))
    result = lab.try_prompt(store, str(tiny_chat), "constrained", "ok?", req)
    assert result.output in ("yes", "no")
    req = lab.EvalRequest(str(tiny_chat), "constrained", "", regex=r"[0-9]{3}")
    assert len(lab.try_prompt(store, str(tiny_chat), "constrained", "n?", req).output) == 3


def test_chat_on_a_base_model_is_refused_with_the_way_out(store, tiny_base):
    req = lab.EvalRequest(str(tiny_base), "chat", "arithmetic", n=1)
    with pytest.raises(OpError, match="base-as-assistant"):
        lab.run_eval(store, req)


def test_rag_index_query_quality_and_refusals(store, docs, tiny_chat, tiny_base, tmp_path):
    info = rag_ops.index_folder(store, docs, "towns", embed_model=str(tiny_chat))
    assert info["n_documents"] == len(list(docs.glob("*.txt"))) and info["n_chunks"] >= 9
    hits = rag_ops.query(store, "towns", "How many people live in Alaska?", k=3)
    assert len(hits) == 3 and all(h["source"] and h["text"] for h in hits)
    assert hits[0]["score"] >= hits[-1]["score"]
    q = rag_ops.quality(store, "towns", "factsheet", k=3)
    assert q["n"] == 20 and 0 <= q["mrr"] <= q["hit_rate"] <= 1
    with pytest.raises(OpError, match="reindex"):
        rag_ops.query(store, "towns", "q", embed_model=str(tiny_base))
    with pytest.raises(OpError, match="no RAG index 'nope'"):
        rag_ops.query(store, "nope", "q")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OpError, match="has no .txt"):
        rag_ops.index_folder(store, empty, "x", embed_model=str(tiny_chat))
    req = lab.EvalRequest(str(tiny_chat), "rag", "facts", n=2, max_new_tokens=4, index="towns")
    summary = lab.run_eval(store, req)
    assert "hit_rate" in summary and "mrr" in summary
    with store.connect() as conn:  # the vectors live in the store's own file
        assert conn.execute("SELECT count(*) FROM rag_chunks").fetchone()[0] == info["n_chunks"]


def test_generate_with_a_constraint_streams_a_valid_output(store, tiny_chat):
    from pipelines.prompting.adapter import Constraint
    from workbench.ops.chat import DEFAULTS

    sampling = DEFAULTS.with_(max_new_tokens=8, temperature=0.0)
    pieces = lab.constrained_complete(
        store, str(tiny_chat), "Is it?", sampling, Constraint("choice", ["yes", "no"])
    )
    assert "".join(pieces) in ("yes", "no")
