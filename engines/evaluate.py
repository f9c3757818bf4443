"""Held-out task accuracy of a chat model: the number SFT, RL and the prompting lab report.

result = task_accuracy(model, tok, ["arithmetic", "reverse"], n=50)
result.accuracy, result.per_task, result.ended_turn, result.transcripts

`iter_task_accuracy` is the same as a generator of (answered, total) after each batch, with
the result as its return value, so a job can report progress and stop between batches.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

from engines.chat import end_of_turn_ids
from engines.generate import SamplingParams, chat_prompt, generate
from engines.tasks import get_task


@dataclass
class EvalResult:
    accuracy: float
    per_task: dict[str, float]
    ended_turn: float  # share of answers that ended their turn (eos) within the budget
    transcripts: list[dict] = field(default_factory=list)


def task_accuracy(model, tok, tasks: list[str], **kw) -> EvalResult:
    """Greedy answers to `n` held-out examples per task, checked by each task's checker."""
    gen = iter_task_accuracy(model, tok, tasks, **kw)
    while True:
        try:
            next(gen)
        except StopIteration as done:
            return done.value


def iter_task_accuracy(
    model,
    tok,
    tasks: list[str],
    *,
    n: int = 50,
    seed: int = 1234,
    split: str = "test",
    max_new_tokens: int = 48,
    batch_size: int = 16,
    system: str | None = None,
) -> Generator[tuple[int, int], None, EvalResult]:
    """`task_accuracy`, yielding (answered, total) after each batch of generations."""
    import torch

    was_training = model.training
    model.eval()
    eos = set(end_of_turn_ids(tok))
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0, stop_at_eos=True)
    correct, ended, rows, per_task = 0, 0, [], {}
    sets = {name: get_task(name).examples(n, seed=seed, split=split) for name in tasks}
    total = sum(len(examples) for examples in sets.values())
    try:
        for name, examples in sets.items():
            task = get_task(name)
            hits = 0
            for i in range(0, len(examples), batch_size):
                chunk = examples[i : i + batch_size]
                prompts = [_prompt(tok, ex.prompt, system) for ex in chunk]
                with torch.no_grad():
                    gens = generate(model, tok, prompts, params)
                for ex, g in zip(chunk, gens):
                    ok = task.check(ex, g.text)
                    hits += ok
                    ended += g.finish_reason == "eos" or bool(eos & set(g.token_ids[-1:]))
                    rows.append(
                        {
                            "task": name,
                            "prompt": ex.prompt,
                            "answer": ex.answer,
                            "completion": g.text,
                            "correct": bool(ok),
                        }
                    )
                yield len(rows), total
            per_task[name] = hits / max(1, len(examples))
            correct += hits
    finally:
        model.train(was_training)
    answered = max(1, len(rows))
    return EvalResult(correct / answered, per_task, ended / answered, rows)


def _prompt(tok, question: str, system: str | None) -> str:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}
    ]
    return chat_prompt(tok, messages, fallback=True)
