"""The strategy registry: name -> where its function lives and what it does.

Like the pipelines' registry, a name maps to a module path so that listing strategies imports
nothing heavy; `strategy(name)` imports the one asked for. A new strategy plugs in with one line.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass

from engines.errors import UserError


@dataclass(frozen=True)
class StrategyInfo:
    target: str  # "module:function"
    description: str
    needs_retriever: bool = False


STRATEGIES: dict[str, StrategyInfo] = {
    "zero-shot": StrategyInfo("basic:zero_shot", "the question alone (chat turn or Q/A document)"),
    "few-shot": StrategyInfo("basic:few_shot", "k worked examples laid out as a document"),
    "chat": StrategyInfo("basic:chat", "the model's chat template with a system prompt"),
    "base-as-assistant": StrategyInfo(
        "basic:base_as_assistant", "a document that makes a base model act as an assistant"
    ),
    "cot": StrategyInfo("basic:cot", "chain-of-thought: 'Let's think step by step.'"),
    "cot-sure": StrategyInfo(
        "basic:cot_sure", "chain-of-thought: 'Let's work this out … the right answer.'"
    ),
    "self-consistency": StrategyInfo(
        "basic:self_consistency", "N chain-of-thought samples in one batch, majority vote"
    ),
    "constrained": StrategyInfo(
        "constrained:constrained", "output forced to the task's JSON schema (or a regex/choice)"
    ),
    "react": StrategyInfo("react:react", "Thought/Action/Observation with calculator and Python"),
    "react-rag": StrategyInfo(
        "react:react", "ReAct with calculator, Python and search over a RAG index", True
    ),
    "rag": StrategyInfo("rag:rag_answer", "retrieve top-k chunks, answer citing them", True),
    "reflection": StrategyInfo("search:reflection", "answer, self-check, retry up to k times"),
    "tot": StrategyInfo("search:tree_of_thoughts", "breadth-limited search over thought steps"),
}


def strategy(name: str):
    """The strategy function called `name`; UserError with the closest name otherwise."""
    if name not in STRATEGIES:
        close = difflib.get_close_matches(name, list(STRATEGIES), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"use one of: {', '.join(STRATEGIES)}"
        raise UserError(f"unknown strategy {name!r} — {hint}")
    module, _, function = STRATEGIES[name].target.partition(":")
    return getattr(importlib.import_module(f"pipelines.prompting.{module}"), function)
