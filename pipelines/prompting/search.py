"""Strategies that search: reflection (check and retry) and tree-of-thoughts.

reflection: answer, then ask the model whether the answer is right (a yes/no choice forced by
a constraint); on "no", answer again with the rejected answers named, up to `rounds` retries.
tree-of-thoughts: from the question, sample `breadth` next reasoning lines per kept state,
let the model rate each partial solution (sure / likely / impossible, forced by a choice
constraint), keep the best `breadth`, repeat `depth` times, then answer from the best state.
"""

from __future__ import annotations

from dataclasses import replace

from pipelines.prompting.adapter import Adapter, Constraint, Params
from pipelines.prompting.core import Options, Result, ask_prompt, question_text
from pipelines.prompting.tasksets import Item

VERDICT = Constraint("choice", ["yes", "no"])
RATING = Constraint("choice", ["sure", "likely", "impossible"])
RATING_VALUE = {"sure": 3.0, "likely": 1.0, "impossible": 0.0}


def _judge_prompt(adapter: Adapter, item: Item, answer: str, opts: Options) -> str:
    text = (
        f"Question: {question_text(item)}\nProposed answer: {answer}\n"
        "Is the proposed answer correct? Answer yes or no."
    )
    if adapter.has_chat_template:
        return adapter.chat_prompt([{"role": "user", "content": text}])
    return text + "\nAnswer:"


def _answer(adapter, item, opts, rejected: list[str], result: Result, index: int) -> str:
    prompt = ask_prompt(adapter, item, opts)
    if rejected:
        item_text = item.question + "\n(These answers were wrong: " + "; ".join(rejected) + ")"
        prompt = ask_prompt(adapter, _with_question(item, item_text), opts)
    stop = () if adapter.has_chat_template else ("\nQ:", "\n\n")
    out = adapter.generate([prompt], Params(opts.tokens(96), opts.temperature, opts.seed, stop))[0]
    result.spend(out)
    result.steps.append(opts.emit(index, "answer", out.text.strip()))
    return out.text.strip()


def _with_question(item: Item, question: str) -> Item:
    return replace(item, question=question)


def _reflect_one(adapter: Adapter, item: Item, opts: Options, index: int) -> Result:
    result, rejected = Result(""), []
    for _ in range(opts.rounds + 1):
        answer = _answer(adapter, item, opts, rejected, result, index)
        judge = _judge_prompt(adapter, item, answer, opts)
        out = adapter.generate([judge], Params(4, 0.0, opts.seed), constraint=VERDICT)[0]
        result.spend(out)
        verdict = out.text.strip().lower()
        result.steps.append(opts.emit(index, "check", verdict))
        result.output = answer
        if verdict.startswith("yes"):
            break
        rejected.append(answer[:80])
    result.extra = {"attempts": len(rejected) + 1}
    return result


def reflection(adapter: Adapter, items: list[Item], opts: Options) -> list[Result]:
    return [_reflect_one(adapter, item, opts, i) for i, item in enumerate(items)]


def _rate_prompt(adapter: Adapter, item: Item, state: str) -> str:
    text = (
        f"Question: {question_text(item)}\nPartial solution:\n{state or '(nothing yet)'}\n"
        "Can this partial solution reach the correct answer? Answer sure, likely or impossible."
    )
    if adapter.has_chat_template:
        return adapter.chat_prompt([{"role": "user", "content": text}])
    return text + "\nAnswer:"


def _expand(adapter, item, states, opts, result, seed) -> list[str]:
    base = ask_prompt(adapter, item, opts, prefill="Let's think step by step.\n")
    prompts = [base + s for s in states for _ in range(opts.breadth)]
    params = Params(48, opts.temperature or 0.8, seed, ("\n",))
    outs = adapter.generate(prompts, params)
    for out in outs:
        result.spend(out)
    children = [p[len(base) :] + o.text.strip() + "\n" for p, o in zip(prompts, outs, strict=True)]
    return list(dict.fromkeys(children))


def _rate(adapter, item, states, opts, result, index) -> list[float]:
    prompts = [_rate_prompt(adapter, item, s) for s in states]
    outs = adapter.generate(prompts, Params(4, 0.0, opts.seed), constraint=RATING)
    values = []
    for state, out in zip(states, outs, strict=True):
        result.spend(out)
        values.append(RATING_VALUE.get(out.text.strip().lower(), 0.0))
        result.steps.append(opts.emit(index, "state", state.strip(), rating=out.text.strip()))
    return values


def _tot_one(adapter: Adapter, item: Item, opts: Options, index: int) -> Result:
    result, frontier = Result(""), [""]
    for level in range(opts.depth):
        children = _expand(adapter, item, frontier, opts, result, opts.seed + level)
        values = _rate(adapter, item, children, opts, result, index)
        ranked = sorted(zip(values, children, strict=True), key=lambda vc: -vc[0])
        frontier = [c for _, c in ranked[: opts.breadth]]
    base = ask_prompt(adapter, item, opts, prefill="Let's think step by step.\n")
    prompt = base + frontier[0] + "Therefore, the answer is"
    out = adapter.generate([prompt], Params(24, 0.0, opts.seed, ("\n",)))[0]
    result.spend(out)
    result.output = frontier[0] + "Therefore, the answer is " + out.text.strip()
    result.steps.append(opts.emit(index, "answer", out.text.strip()))
    return result


def tree_of_thoughts(adapter: Adapter, items: list[Item], opts: Options) -> list[Result]:
    return [_tot_one(adapter, item, opts, i) for i, item in enumerate(items)]
