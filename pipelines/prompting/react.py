"""ReAct: Thought / Action / Observation loops with tools, all active items in one batch.

The model writes `Action: calculator[12 * 34]`, `Action: python[print(2 ** 10)]` or
`Action: search[population of Alaska]`; generation stops before "Observation:", the tool
runs (engines.tools; search goes to the RAG retriever), and its output, or its error, is
appended as the observation. The loop ends at "Final Answer:" or after `max_steps`, when a
last call after "Final Answer:" asks for the answer.
"""

from __future__ import annotations

import re

from engines.tools import ToolResult, calculator_tool, run_python
from pipelines.prompting.adapter import Adapter, Params
from pipelines.prompting.core import Options, Result, question_text
from pipelines.prompting.tasksets import Item

TOOL_HELP = {
    "calculator": "calculator[expression]: the value of an arithmetic expression",
    "python": "python[code]: runs Python code and returns what it prints",
    "search": "search[query]: finds passages in the document index",
}
EXAMPLE = """\
Question: What is 12 * 34 + 5?
Thought: I need to compute 12 * 34 + 5.
Action: calculator[12 * 34 + 5]
Observation: 413
Thought: I know the answer now.
Final Answer: 413
"""
SEARCH_EXAMPLE = """\
Question: How many times taller is the Osmere tower than the Carrow mill?
Thought: I need the height of the Osmere tower.
Action: search[height of the Osmere tower]
Observation: [osmere] The Osmere tower is 120 metres tall.
Thought: I need the height of the Carrow mill.
Action: search[height of the Carrow mill]
Observation: [carrow] The Carrow mill is 30 metres tall.
Thought: I divide the two heights.
Action: calculator[120 / 30]
Observation: 4
Thought: I know the answer now.
Final Answer: 4
"""
ACTION = re.compile(r"Action:\s*(\w+)\s*\[(.*?)\]\s*(?:\n|$)", re.DOTALL)
FINAL = re.compile(r"Final Answer:", re.IGNORECASE)
STOP = ("\nObservation:", "Observation:", "\nQuestion:")


def instructions(tools: tuple[str, ...]) -> str:
    lines = "\n".join(TOOL_HELP[t] for t in tools)
    example = SEARCH_EXAMPLE if "search" in tools else EXAMPLE
    return (
        f"Answer the question using these tools:\n{lines}\n\nUse this format:\nThought: …\n"
        "Action: tool[input]\nObservation: the tool's result\n(repeat as needed)\n"
        f"Final Answer: the answer\n\nExample:\n{example}\n"
    )


def react_prompt(adapter: Adapter, item: Item, opts: Options) -> str:
    text = instructions(opts.tools) + f"Question: {question_text(item)}"
    if adapter.has_chat_template:
        return adapter.chat_prompt([{"role": "user", "content": text}]) + "Thought:"
    return text + "\nThought:"


def run_tool(name: str, argument: str, opts: Options) -> ToolResult:
    """A tool's result; an unknown tool or a failing one is an error result, never a raise."""
    if name not in opts.tools:
        return ToolResult(False, f"unknown tool {name!r}: use one of {', '.join(opts.tools)}")
    if name == "calculator":
        return calculator_tool(argument)
    if name == "python":
        return run_python(argument)
    if opts.retriever is None:
        return ToolResult(False, "search has no index: build one with `workbench rag index`")
    hits = opts.retriever(argument, opts.top_k)
    return ToolResult(True, "\n".join(f"[{h['source']}] {h['text']}" for h in hits) or "nothing")


def _step(index: int, text: str, result: Result, opts: Options) -> str | None:
    """Record one generated chunk; the observation to append, or None when it is final."""
    result.steps.append(opts.emit(index, "thought", text.strip()))
    final = FINAL.search(text)
    action = ACTION.search(text)
    if final and (action is None or final.start() < action.start()):
        result.output = "Final Answer: " + text[final.end() :].strip()
        return None
    if action is None:
        return "error: write Action: tool[input] or Final Answer: …"
    name, argument = action.group(1).lower(), action.group(2).strip()
    observed = run_tool(name, argument, opts)
    result.steps.append(opts.emit(index, "action", argument, tool=name))
    result.steps.append(opts.emit(index, "observation", observed.observation(), ok=observed.ok))
    return observed.observation()


def react(adapter: Adapter, items: list[Item], opts: Options) -> list[Result]:
    if opts.retriever is None:  # search only where there is an index to search
        opts.tools = tuple(t for t in opts.tools if t != "search")
    prompts = [react_prompt(adapter, item, opts) for item in items]
    results = [Result("") for _ in items]
    active = list(range(len(items)))
    params = Params(opts.tokens(96), opts.temperature, opts.seed, STOP)
    for _ in range(opts.max_steps):
        if not active:
            break
        outs = adapter.generate([prompts[i] for i in active], params)
        still = []
        for i, out in zip(active, outs, strict=True):
            results[i].spend(out)
            text = _cut_action(out.text)
            observation = _step(i, text, results[i], opts)
            if observation is not None:
                prompts[i] += text.rstrip() + f"\nObservation: {observation}\nThought:"
                still.append(i)
        active = still
    _finish(adapter, active, prompts, results, opts)
    return results


def _cut_action(text: str) -> str:
    """The chunk up to the end of its first action (a model may run on past it)."""
    action = ACTION.search(text)
    if action is None or (FINAL.search(text) and FINAL.search(text).start() < action.start()):
        return text
    return text[: action.end()]


def _finish(adapter, active, prompts, results, opts) -> None:
    """Items still without an answer after max_steps get one last call for it."""
    if not active:
        return
    outs = adapter.generate(
        [prompts[i] + " I know the answer now.\nFinal Answer:" for i in active],
        Params(32, 0.0, opts.seed, ("\n",)),
    )
    for i, out in zip(active, outs, strict=True):
        results[i].spend(out)
        results[i].output = "Final Answer: " + out.text.strip()
        results[i].steps.append(opts.emit(i, "answer", out.text.strip()))
