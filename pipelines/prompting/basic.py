"""The single-call strategies and self-consistency.

zero-shot, few-shot, chat, base-as-assistant: one completion per item, all items in one batch.
cot / cot-sure: "Let's think step by step." (Kojima et al.) or "Let's work this out in a step
by step way to be sure we have the right answer." (Zhou et al.), then, when the reasoning names
no answer, a short second call after "Therefore, the answer is" extracts it.
self-consistency: N chain-of-thought samples per item in one batch, answers extracted, majority
vote; the agreement (share of samples that gave the winner) is kept.
"""

from __future__ import annotations

from engines.answers import extract, majority
from pipelines.prompting.adapter import Adapter, Params
from pipelines.prompting.core import (
    Options,
    Result,
    ask_prompt,
    assistant_document,
    pick_shots,
    qa_document,
    question_text,
    require_chat,
    stops_for,
)
from pipelines.prompting.tasksets import Item

STEP_BY_STEP = "Let's think step by step."
TO_BE_SURE = "Let's work this out in a step by step way to be sure we have the right answer."
THEREFORE = "\nTherefore, the answer is"
SC_TEMPERATURE = 0.7


def _one_call(adapter, items, opts, prompts, stop, tokens) -> list[Result]:
    params = Params(tokens, opts.temperature, opts.seed, stop)
    outs = adapter.generate(prompts, params, constraint=opts.constraint, on_piece=opts.on_piece)
    results = []
    for i, out in enumerate(outs):
        result = Result(out.text.strip())
        result.spend(out)
        result.steps.append(opts.emit(i, "answer", result.output))
        results.append(result)
    return results


def zero_shot(adapter: Adapter, items: list[Item], opts: Options) -> list[Result]:
    prompts = [ask_prompt(adapter, item, opts) for item in items]
    return _one_call(adapter, items, opts, prompts, stops_for(adapter), opts.tokens(64))


def few_shot(adapter: Adapter, items: list[Item], opts: Options) -> list[Result]:
    prompts = [qa_document(item, pick_shots(item, opts.shot_pool, opts.shots)) for item in items]
    return _one_call(adapter, items, opts, prompts, ("\nQ:", "\n\n"), opts.tokens(64))


def chat(adapter: Adapter, items: list[Item], opts: Options) -> list[Result]:
    require_chat(adapter, "chat")
    prompts = [ask_prompt(adapter, item, opts) for item in items]
    return _one_call(adapter, items, opts, prompts, (), opts.tokens(128))


def base_as_assistant(adapter: Adapter, items: list[Item], opts: Options) -> list[Result]:
    prompts = [assistant_document(question_text(item)) for item in items]
    return _one_call(adapter, items, opts, prompts, ("\nHuman:", "\n\n"), opts.tokens(96))


def _has_answer(text: str) -> bool:
    return "answer is" in text.lower() or "answer:" in text.lower()


def _extract_pass(adapter, prompts, results, opts) -> None:
    """A short call after 'Therefore, the answer is' for reasoning that named no answer."""
    todo = [i for i, r in enumerate(results) if not _has_answer(r.output)]
    if not todo:
        return
    follow = [prompts[i] + " " + results[i].output + THEREFORE for i in todo]
    outs = adapter.generate(follow, Params(24, 0.0, opts.seed, ("\n",)))
    for i, out in zip(todo, outs, strict=True):
        results[i].spend(out)
        results[i].output += THEREFORE + " " + out.text.strip()
        results[i].steps.append(opts.emit(i, "answer", out.text.strip()))


def _cot(adapter, items, opts, phrase) -> list[Result]:
    prompts = [ask_prompt(adapter, item, opts, prefill=phrase) for item in items]
    params = Params(opts.tokens(256), opts.temperature, opts.seed, stops_for(adapter))
    outs = adapter.generate(prompts, params, on_piece=opts.on_piece)
    results = []
    for i, out in enumerate(outs):
        result = Result(out.text.strip())
        result.spend(out)
        result.steps.append(opts.emit(i, "thought", phrase + " " + result.output))
        results.append(result)
    _extract_pass(adapter, prompts, results, opts)
    return results


def cot(adapter: Adapter, items: list[Item], opts: Options) -> list[Result]:
    return _cot(adapter, items, opts, STEP_BY_STEP)


def cot_sure(adapter: Adapter, items: list[Item], opts: Options) -> list[Result]:
    return _cot(adapter, items, opts, TO_BE_SURE)


def self_consistency(adapter: Adapter, items: list[Item], opts: Options) -> list[Result]:
    n = max(opts.samples, 1)
    prompts = [ask_prompt(adapter, item, opts, prefill=STEP_BY_STEP) for item in items]
    batch = [p for p in prompts for _ in range(n)]
    temperature = opts.temperature or SC_TEMPERATURE
    params = Params(opts.tokens(256), temperature, opts.seed, stops_for(adapter), top_p=0.95)
    outs = adapter.generate(batch, params)
    return [_vote(i, item, outs[i * n : (i + 1) * n], opts) for i, item in enumerate(items)]


def _vote(index: int, item: Item, outs, opts: Options) -> Result:
    result = Result("")
    keys = []
    for sample, out in enumerate(outs):
        result.spend(out)
        key = extract(out.text, item.match)
        keys.append(key)
        result.steps.append(opts.emit(index, "sample", out.text.strip(), sample=sample, key=key))
    winner, agreement = majority(keys)
    result.output = f"The answer is {winner}" if winner is not None else "(no answer)"
    result.extra = {"votes": keys, "agreement": agreement}
    result.steps.append(opts.emit(index, "vote", result.output, agreement=agreement))
    return result
