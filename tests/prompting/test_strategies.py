"""Each strategy on a scripted adapter: the prompts it builds, what it extracts, what it spends."""

from __future__ import annotations

import re

import pytest

from engines.errors import UserError
from pipelines.prompting.basic import STEP_BY_STEP, TO_BE_SURE
from pipelines.prompting.core import Options
from pipelines.prompting.experiment import run_experiment
from pipelines.prompting.registry import STRATEGIES, strategy
from pipelines.prompting.tasksets import Item, TaskSet, load_taskset
from tests.prompting.fakes import FakeAdapter

ADD = Item("q1", "What is 2 + 3?", "5", "numeric")


def run(name, adapter, items=(ADD,), **kw):
    return strategy(name)(adapter, list(items), Options(**kw))


def test_every_registered_strategy_imports():
    for name in STRATEGIES:
        assert callable(strategy(name))


def test_unknown_strategy_suggests_the_closest():
    with pytest.raises(UserError, match="did you mean 'few-shot'"):
        strategy("fewshot")


def test_few_shot_lays_out_examples_as_a_document():
    fake = FakeAdapter(lambda p, *_: " 5")
    shots = [Item("s1", "What is 1 + 1?", "2"), Item("s2", "What is 4 + 4?", "8"), ADD]
    [res] = run("few-shot", fake, shot_pool=shots, shots=3)
    prompt = fake.calls[0][0][0]
    assert prompt == "Q: What is 1 + 1?\nA: 2\n\nQ: What is 4 + 4?\nA: 8\n\nQ: What is 2 + 3?\nA:"
    assert res.output == "5" and res.tokens_out == 2


def test_chat_uses_the_system_prompt_and_refuses_a_base_model():
    fake = FakeAdapter(lambda p, *_: "5")
    run("chat", fake, system="Be brief.")
    assert fake.calls[0][0][0].startswith("<system>Be brief.</system><user>What is 2 + 3?")
    with pytest.raises(UserError, match="base-as-assistant"):
        run("chat", FakeAdapter(lambda p, *_: "5", has_chat_template=False))


def test_base_as_assistant_is_a_document():
    fake = FakeAdapter(lambda p, *_: " It is 5.", has_chat_template=False)
    run("base-as-assistant", fake)
    assert "Human: What is 2 + 3?\n\nAssistant:" in fake.calls[0][0][0]
    assert "\nHuman:" in fake.calls[0][1].stop


@pytest.mark.parametrize(("name", "phrase"), [("cot", STEP_BY_STEP), ("cot-sure", TO_BE_SURE)])
def test_cot_phrasings_and_answer_extraction(name, phrase):
    def reply(prompt, params, _):
        return " 7" if prompt.endswith("the answer is") else " 2 plus 3 makes 5, minus 0."

    fake = FakeAdapter(reply)
    [res] = run(name, fake)
    assert fake.calls[0][0][0].endswith(phrase)
    assert len(fake.calls) == 2  # no marker in the reasoning: a second call extracts it
    assert res.output.endswith("Therefore, the answer is 7")


def test_cot_with_a_marker_needs_no_second_call():
    fake = FakeAdapter(lambda *_: "2 + 3 = 5. The answer is 5.")
    [res] = run("cot", fake)
    assert len(fake.calls) == 1 and res.output.endswith("The answer is 5.")


def test_self_consistency_samples_in_one_batch_and_votes():
    answers = iter(["The answer is 5", "so 6", "The answer is 5", "nothing", "answer: 5"])
    fake = FakeAdapter(lambda *_: next(answers))
    [res] = run("self-consistency", fake, samples=5, seed=3)
    assert len(fake.calls) == 1 and len(fake.calls[0][0]) == 5
    assert fake.calls[0][1].temperature > 0 and fake.calls[0][1].seed == 3
    assert res.output == "The answer is 5" and res.extra["agreement"] == 0.6
    assert res.extra["votes"] == ["5", "6", "5", None, "5"]


def test_react_calls_the_calculator_and_finishes():
    def reply(prompt, *_):
        if "Observation: 56088" in prompt:
            return " I know the answer now.\nFinal Answer: 56088"
        return " I multiply.\nAction: calculator[123 * 456]\n"

    fake = FakeAdapter(reply)
    steps = []
    item = Item("m", "What is 123 * 456?", "56088", "numeric")
    [res] = strategy("react")(fake, [item], Options(on_step=lambda i, s: steps.append(s)))
    kinds = [s["kind"] for s in steps]
    assert kinds == ["thought", "action", "observation", "thought"]
    assert steps[2]["text"] == "56088" and res.output == "Final Answer: 56088"


def test_react_tool_errors_become_observations():
    def reply(prompt, *_):
        if "Observation:" in prompt.split("Question: boom")[-1]:
            return "Final Answer: 1"
        return "Action: python[while True: pass]\n"

    fake = FakeAdapter(reply)
    item = Item("b", "boom", "1", "numeric")
    opts = Options(tools=("calculator",))
    [res] = strategy("react")(fake, [item], opts)
    obs = [s for s in res.steps if s["kind"] == "observation"]
    assert obs and obs[0]["text"].startswith("error: unknown tool 'python'")
    assert res.output == "Final Answer: 1"


def test_react_without_an_answer_gets_a_final_call():
    fake = FakeAdapter(lambda p, *_: "42" if p.endswith("Final Answer:") else "hmm")
    [res] = run("react", fake, max_steps=2)
    assert res.output == "Final Answer: 42" and len(fake.calls) == 3


def test_constrained_passes_the_item_schema():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    fake = FakeAdapter(lambda *_: '{"a": 1}')
    run("constrained", fake, items=[Item("j", "a?", '{"a": 1}', "json", schema=schema)])
    assert fake.calls[0][2].kind == "json" and fake.calls[0][2].value == schema
    with pytest.raises(UserError, match="no schema"):
        run("constrained", fake)


def test_reflection_retries_after_a_no():
    verdicts = iter(["no", "yes"])

    def reply(prompt, params, constraint):
        if constraint is not None:
            return next(verdicts)
        return "6" if "were wrong" not in prompt else "5"

    [res] = run("reflection", FakeAdapter(reply), rounds=2)
    assert res.output == "5" and res.extra["attempts"] == 2


def test_tree_of_thoughts_keeps_the_best_rated_states():
    def reply(prompt, params, constraint):
        if constraint is not None:
            return "sure" if "good" in prompt.split("Partial solution:")[-1] else "impossible"
        if prompt.endswith("the answer is"):
            return "5" if "good" in prompt else "0"
        return "good step" if params.seed % 2 == 0 else "bad step"

    [res] = run("tot", FakeAdapter(reply), breadth=2, depth=2)
    assert res.output.endswith("Therefore, the answer is 5")


def test_experiment_scores_counts_tokens_and_keeps_transcripts():
    fake = FakeAdapter(lambda p, *_: "5" if "2 + 3" in p else "no idea")
    tasks = TaskSet("t", [ADD, Item("q2", "What is 9 + 9?", "18", "numeric")])
    exp = run_experiment(fake, "zero-shot", tasks, Options())
    assert exp.accuracy == 0.5 and exp.n == 2
    assert exp.tokens_out == 2 + 3 and exp.tokens_in > 0
    assert [t["correct"] for t in exp.transcripts] == [True, False]
    assert exp.transcripts[0]["steps"][0]["kind"] == "answer"


def test_experiment_json_parse_and_valid_shares():
    ts = load_taskset("json", n=4)
    outs = iter(['{"name": "A", "age": 3, "city": "B"}', '{"name": "A"}', "not json", "{bad"])
    exp = run_experiment(FakeAdapter(lambda *_: next(outs)), "zero-shot", ts, Options())
    assert exp.metrics["parse_rate"] == 0.5 and exp.metrics["valid_rate"] == 0.25


def test_experiment_retrieval_hit_rate_and_mrr():
    from pipelines.prompting.core import Result
    from pipelines.prompting.experiment import retrieval_figures

    items = [Item("a", "q", "x", sources=("d1",)), Item("b", "q", "x", sources=("d9",))]
    results = [
        Result("x", extra={"retrieved": ["d0", "d1"]}),
        Result("x", extra={"retrieved": ["d2"]}),
    ]
    assert retrieval_figures(items, results) == {"hit_rate": 0.5, "mrr": 0.25}


def test_builtin_sets_load_and_are_checkable():
    for name in ("arithmetic", "multistep", "factsheet", "facts", "json", "sentiment",
                 "continue-list"):  # fmt: skip
        ts = load_taskset(name, n=5)
        assert len(ts.items) == 5 and ts.shots
        for item in ts.items:
            assert not re.search(r"\s$", item.question)
