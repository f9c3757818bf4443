"""The generator's stand-in labeller: correct first, then partial credit, ties merged."""

from __future__ import annotations

from engines.tasks import Example, get_task, similarity
from pipelines.comparisons import quality, rank_by_checker


def rank(task_name: str, example: Example, texts: list[str]) -> list[str]:
    task = get_task(task_name)
    return rank_by_checker(
        texts + [example.answer],
        lambda t: task.check(example, t),
        lambda t: quality(task, example, t),
    )


def test_arithmetic_wrong_answers_rank_by_how_far_off_not_by_length():
    ex = Example("What is 723 * 688?", "497424", {"a": 723, "b": 688, "op": "*"})
    ranked = rank("arithmetic", ex, ["13340", "301258", "548626", "497424", "no idea"])
    # right first; then 548626 (off by 5e4), 301258 (2e5), 13340 (5e5), no number at all last
    assert ranked == ["497424", "548626", "301258", "13340", "no idea"]


def test_correct_answers_rank_by_likeness_to_the_reference():
    ex = Example("What is 105 + 422?", "527", {"a": 105, "b": 422, "op": "+"})
    assert rank("arithmetic", ex, ["The answer is 527.", "527!", "100"]) == [
        "527", "527!", "The answer is 527.", "100"
    ]  # fmt: skip


def test_reverse_partial_credit_is_similarity_of_the_word():
    ex = Example("Reverse the word 'blanket'.", "teknalb", {"word": "blanket"})
    ranked = rank("reverse", ex, ["tob", "teksab", "teknal"])
    assert ranked == ["teknalb", "teknal", "teksab", "tob"]


def test_ties_are_merged_so_the_order_is_strict():
    ex = Example("Is 'jungle' a palindrome? Answer yes or no.", "no", {"word": "jungle"})
    # every wrong answer gets credit 0 (yes/no is all or nothing): one stands for them all
    ranked = rank("palindrome", ex, ["yes", "robrah", "yes", ""])
    assert ranked == ["no", "yes", ""]  # saying nothing is worse than a wrong answer
    assert len(set(ranked)) == len(ranked)


def test_without_credit_shorter_counts_as_better():
    texts = ["12", "the answer is 12", "13", "99", "999", "12", " "]
    assert rank_by_checker(texts, lambda t: "12" in t) == [
        "12", "the answer is 12", "13", "999", " "
    ]  # fmt: skip


def test_an_empty_answer_ranks_below_every_answer_even_one_the_checker_takes():
    # even a checker that would take "" as right
    assert rank_by_checker(["", "b", "", "aa"], lambda t: True) == ["b", "aa", ""]


def test_credit_per_answer_kind():
    arith, facts = get_task("arithmetic"), get_task("json_extract")
    ex = Example("What is 2 + 2?", "4")
    assert arith.credit(ex, "4") == 1.0
    assert arith.credit(ex, "13") == 0.5  # off by 9: one order of magnitude
    assert arith.credit(ex, "none") == 0.0
    js = Example("p", '{"name": "Mara", "age": 30, "city": "Osmere"}')
    assert facts.credit(js, '{"name": "Mara", "age": 31, "city": "Osmere"}') == 2 / 3
    assert facts.credit(js, "nothing") == 0.0
    assert similarity("ABC", "abc") == 1.0


def test_generated_rankings_hold_a_made_wrong_answer_when_every_sample_is_right(monkeypatch):
    """A model that always answers right gives one text per prompt (the samples and the
    reference merge): with `contrast` the made wrong answer still makes a pair of it."""
    from types import SimpleNamespace

    import engines.generate
    import engines.reward_model
    from engines.tasks import get_task
    from pipelines.comparisons import ComparisonData, _rank_chunk

    task = get_task("palindrome")
    examples = task.examples(4, seed=2)
    right = {ex.prompt: ex.answer for ex in examples}
    monkeypatch.setattr(engines.reward_model, "prompt_text", lambda tok, prompt: prompt)
    monkeypatch.setattr(engines.generate, "generate", lambda model, tok, prompts, params: [
        SimpleNamespace(text=right[p]) for p in prompts])  # fmt: skip
    on = _rank_chunk(None, None, task, examples,
                     ComparisonData(tasks=["palindrome"], k=2, contrast=True), 0)  # fmt: skip
    off = _rank_chunk(None, None, task, examples, ComparisonData(tasks=["palindrome"], k=2), 0)
    assert off == []  # every set collapsed to the one right text
    assert [r.completions for r in on] == [
        [ex.answer, "no" if ex.answer == "yes" else "yes"] for ex in examples]  # fmt: skip
    assert [r.correct for r in on] == [[True, False]] * 4  # the checker's verdicts ride along
    assert [r.own for r in on] == [[True, False]] * 4  # the model said the right answer
    # training rankings (empty=True) also get no answer at all, last; held-out ones do not
    train = _rank_chunk(None, None, task, examples,
                        ComparisonData(tasks=["palindrome"], k=2, contrast=True), 0, empty=True)  # fmt: skip
    assert [r.completions for r in train] == [c + [""] for c in (r.completions for r in on)]
    assert [r.own for r in train] == [[True, False, False]] * 4
    plain = _rank_chunk(None, None, task, examples, ComparisonData(tasks=["palindrome"], k=2), 0,
                        empty=True)  # fmt: skip
    assert plain == []  # without contrast nothing is added


def test_held_out_pairs_are_counted_apart_by_kind():
    """pair_kinds/_count_kinds: right-vs-wrong and wrong-vs-wrong pair accuracy, and (where the
    generator says which texts the model sampled) own-sample and reference-vs-made pairs, in
    pair_stats' pair order; right-vs-right pairs and unchecked rankings count in none."""
    import torch

    from engines.reward_model import Ranking
    from pipelines.reward import _count_kinds, pair_kinds

    held = [Ranking("p", ["a", "b", "c"], [True, False, False]),
            Ranking("q", ["x", "y"], [True, True]), Ranking("r", ["m", "n"]),
            # sampled s1, s2; the reference "R" and the made wrong answer "W"
            Ranking("s", ["R", "s1", "W", "s2"], [True, True, False, False],
                    [False, True, False, True])]  # fmt: skip
    kinds = pair_kinds(held)
    assert kinds == [
        [("right_wrong",), ("right_wrong",), ("wrong_wrong",)], [()], [()],
        # R>s1, R>W, R>s2, s1>W, s1>s2, W>s2
        [(), ("right_wrong", "made"), ("right_wrong",), ("right_wrong",),
         ("right_wrong", "own"), ("wrong_wrong",)],
    ]  # fmt: skip
    rewards = torch.tensor([[3.0, 1.0, 2.0, 0.0], [0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0],
                            [4.0, 1.0, 3.0, 2.0]])  # fmt: skip
    tally: dict = {}
    _count_kinds(rewards, [[0, 0, 0], [0, 0], [0, 0], [0] * 4], kinds, tally)
    # right_wrong: p 2 of 2; s: R>W yes, R>s2 yes, s1>W no, s1>s2 no
    assert tally == {"right_wrong": [4.0, 6.0], "wrong_wrong": [1.0, 2.0],
                     "made": [1.0, 1.0], "own": [0.0, 1.0]}  # fmt: skip
    assert pair_kinds([Ranking("r", ["m", "n"])]) is None
