"""Built-in tasks: answers check out from free text, wrong ones don't, splits never overlap."""

from __future__ import annotations

import json

import pytest

from engines.errors import UserError
from engines.tasks import (
    TASKS,
    Example,
    arithmetic_task,
    extract_json,
    extract_number,
    extract_word,
    extract_yes_no,
    fact_documents,
    get_task,
    synthetic_documents,
)


@pytest.mark.parametrize("name", list(TASKS))
def test_reference_answer_passes_in_several_phrasings(name):
    task = get_task(name)
    for ex in task.examples(20, seed=3, split="test"):
        assert task.check(ex, ex.answer), (ex, "bare answer")
        assert task.check(ex, f"Let me think step by step.\nThe answer is {ex.answer}."), ex
        assert task.check(ex, f"Answer: {ex.answer}"), ex


@pytest.mark.parametrize("name", list(TASKS))
def test_splits_are_disjoint_and_deterministic(name):
    task = get_task(name)
    n = 30 if name == "facts" else 200
    train = {e.prompt for e in task.examples(n, seed=0, split="train")}
    test = {e.prompt for e in task.examples(n, seed=0, split="test")}
    other_seed = {e.prompt for e in task.examples(n, seed=1, split="test")}
    assert train and test
    assert not train & test and not train & other_seed
    assert [e.prompt for e in task.examples(5, seed=7)] == [
        e.prompt for e in task.examples(5, seed=7)
    ]


def test_examples_are_distinct_until_the_pool_runs_out():
    exs = get_task("arithmetic").examples(100, seed=0)
    assert len({e.prompt for e in exs}) == 100
    facts = get_task("facts").examples(200, seed=0, split="test")
    assert len(facts) == 200 and len({e.prompt for e in facts}) < 200


def test_arithmetic_answers_and_digits():
    task = arithmetic_task(digits=2)
    for ex in task.examples(50, seed=0):
        a, b, op = ex.meta["a"], ex.meta["b"], ex.meta["op"]
        assert a < 100 and b < 100
        assert int(ex.answer) == {"+": a + b, "-": a - b, "*": a * b}[op]
    ex = Example("What is 999 * 2?", "1998", {})
    assert task.check(ex, "999 * 2 = 1,998")
    assert task.check(ex, "The answer is 1998. I am 90% sure.")
    assert not task.check(ex, "1999")
    assert not task.check(ex, "The answer is 19980.")
    assert not task.check(ex, "I don't know")
    neg = Example("What is 3 - 10?", "-7", {})
    assert task.check(neg, "3 - 10 = -7") and not task.check(neg, "The answer is 7")
    with pytest.raises(UserError, match="digits"):
        arithmetic_task(0)


def test_wrong_answers_are_rejected():
    cases = {
        "reverse": ("Reverse the word 'planet'.", "tenalp", ["planet", "The answer is 'tenalp'x"]),
        "count_letters": ("How many times does the letter 'r' appear in 'strawberry'?", "3", ["2"]),
        "palindrome": (
            "Is 'level' a palindrome? Answer yes or no.",
            "yes",
            ["no", "No, it is not."],
        ),
        "json_extract": (
            "...",
            '{"name": "Mara", "age": 34, "city": "Carrow"}',
            ['{"name": "Mara"}'],
        ),
        "facts": ("Who is the mayor of Brindlewick?", "Odile Fenwick", ["Tobin Ashgrove", "Odile"]),
    }
    for name, (prompt, answer, wrong) in cases.items():
        task, ex = get_task(name), Example(prompt, answer, {})
        for w in wrong:
            assert not task.check(ex, w), (name, w)


def test_free_text_extraction():
    assert extract_number("twelve apples, then three") == "3"
    assert extract_number("There are three r's.") == "3"
    assert extract_number("no digits") is None
    assert extract_yes_no("Yes. Level reads the same backwards, so the answer is yes") == "yes"
    assert extract_yes_no("Hmm, yes... no wait. Answer: No") == "no"
    assert extract_word("It's 'tenalp'.") == "tenalp"
    assert extract_word("The reversed word is tenalp.") == "tenalp"
    assert extract_word('Answer: "tenalp" (from planet)') == "tenalp"
    assert extract_json('Sure! {"a": 1} and then {"b": [2]} done') == {"b": [2]}
    assert extract_json("{broken") is None


def test_facts_answers_come_from_exactly_one_document():
    docs = fact_documents()
    assert len(docs) >= 20
    assert len({d["id"] for d in docs}) == len(docs)
    questions = [q["question"] for d in docs for q in d["questions"]]
    assert len(set(questions)) == len(questions)
    for doc in docs:
        for qa in doc["questions"]:
            answer = qa["answer"]
            shown = [answer] + ([f"{int(answer):,}"] if answer.isdigit() else [])
            spelled = ["zero", "one", "two", "three", "four", "five", "six", "seven"]
            in_text = any(s in doc["text"] for s in shown) or (
                answer.isdigit() and int(answer) < 8 and spelled[int(answer)] in doc["text"]
            )
            assert in_text, (doc["id"], qa)
    ex = get_task("facts").examples(1, seed=0, split="test")[0]
    assert ex.meta["document"] in [d["text"] for d in docs]


def test_unknown_task_and_split():
    with pytest.raises(UserError, match="valid tasks: arithmetic"):
        get_task("sudoku")
    with pytest.raises(UserError, match="'train' or 'test'"):
        get_task("reverse").examples(1, split="dev")


def test_synthetic_documents():
    stories = list(synthetic_documents("stories", 5, seed=1))
    assert len(stories) == 5 and all(s.startswith("Once upon a time") for s in stories)
    assert stories == list(synthetic_documents("stories", 5, seed=1))
    assert stories != list(synthetic_documents("stories", 5, seed=2))
    facts = list(synthetic_documents("facts"))
    assert len(facts) == len(fact_documents()) and len(set(facts)) == len(facts)
    tasks = list(synthetic_documents("tasks", 3))
    assert all(t.count("Question:") == 8 for t in tasks)
    # worked examples come from the train split only: no test prompt leaks into pretraining
    test_prompts = {e.prompt for e in get_task("arithmetic").examples(300, split="test")}
    shown = {line[len("Question: ") :] for t in tasks for line in t.splitlines()}
    assert not shown & test_prompts
    with pytest.raises(UserError, match="valid names: tasks, stories, facts"):
        synthetic_documents("poems", 1)


def test_examples_are_json_serialisable():
    for task in TASKS.values():
        ex = task.examples(1, seed=0)[0]
        json.dumps({"prompt": ex.prompt, "answer": ex.answer, "meta": ex.meta})


@pytest.mark.parametrize("name", list(TASKS))
def test_made_wrong_answers_are_refused_and_deterministic(name):
    """Task.wrong: the reference altered into an answer the checker refuses (None where the
    answer kind has no such change: the facts task's phrases), the same for the same RNG."""
    import random

    task = get_task(name)
    examples = task.examples(30, seed=5)
    made = [task.wrong(ex, random.Random(i)) for i, ex in enumerate(examples)]
    again = [task.wrong(ex, random.Random(i)) for i, ex in enumerate(examples)]
    assert made == again
    for ex, wrong in zip(examples, made, strict=True):
        if wrong is not None:
            assert not task.check(ex, wrong) and wrong != ex.answer, (ex, wrong)
    if name in ("arithmetic", "reverse", "count_letters", "palindrome", "json_extract"):
        assert all(w is not None for w in made), made
