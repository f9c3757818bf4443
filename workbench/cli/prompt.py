"""`workbench prompt` and the prompting side of `workbench eval`.

    workbench prompt smollm2-135m-instruct --strategy react "What is 123 * 456?"
    workbench eval --model smollm2-135m-instruct --strategy cot --tasks arithmetic --n 10
    workbench eval --model gemma3-270m --strategy few-shot --tasks my_tasks.jsonl
    workbench eval compare [--task arithmetic] [--json]

`prompt` streams the answer and prints each intermediate step (thoughts, tool calls and
observations, votes, retrieved chunks) as it happens; `eval` runs one strategy over a task set
and stores the experiment; `eval compare` prints the latest experiment per task × strategy ×
model from the store.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from workbench.cli.common import refreshed_store
from workbench.cli.models import QUANTIZE_HELP
from workbench.cli.tables import print_rows
from workbench.ops import prompting as lab
from workbench.ops.chat import quantize_label

Strategy = Annotated[str, typer.Option("--strategy", "-s", help="see `workbench prompt --list`")]
Seed = Annotated[int, typer.Option(help="sampling and task-set seed")]
Samples = Annotated[int, typer.Option(min=1, help="self-consistency samples")]
Shots = Annotated[int, typer.Option(min=0, help="few-shot examples")]
Temperature = Annotated[float, typer.Option(min=0.0, help="0 = greedy")]
MaxTokens = Annotated[int | None, typer.Option(min=1, help="tokens per call")]
System = Annotated[str | None, typer.Option(help="system prompt (chat strategies)")]
Index = Annotated[str | None, typer.Option(help="a RAG index (rag, react-rag)")]
Schema = Annotated[Path | None, typer.Option("--json-schema", help="JSON schema file")]
Regex = Annotated[str | None, typer.Option(help="output must match this regex")]
Choice = Annotated[list[str] | None, typer.Option(help="output is one of these (repeat)")]
Quantize = Annotated[str, typer.Option(help=QUANTIZE_HELP)]


class _Printer:
    """Streams text pieces to stdout and steps to stderr; a step whose text was already
    streamed (a chain of thought, an answer) is not printed twice."""

    def __init__(self) -> None:
        self.streamed = False

    def piece(self, _row: int, chunk: str) -> None:
        self.streamed = True
        sys.stdout.write(chunk)
        sys.stdout.flush()

    def step(self, _index: int, step: dict) -> None:
        kind, text = step["kind"], step["text"]
        extra = {k: v for k, v in step.items() if k not in ("kind", "text")}
        if kind in ("thought", "answer") and self.streamed:
            self.streamed = False
            return
        if kind == "action":
            typer.secho(f"[action] {step['tool']}[{text}]", fg="cyan", err=True)
        else:
            more = f" {extra}" if extra else ""
            typer.secho(f"[{kind}]{more} {text}", fg="yellow", err=True)


def prompt(
    model: Annotated[str, typer.Argument(help="a model name, run or folder")],
    text: Annotated[str | None, typer.Argument(help="the question or prompt")] = None,
    strategy: Strategy = "chat",
    list_: Annotated[bool, typer.Option("--list", help="list the strategies")] = False,
    seed: Seed = 0, samples: Samples = 5, shots: Shots = 3, temperature: Temperature = 0.0,
    max_new_tokens: MaxTokens = None, system: System = None, index: Index = None,
    json_schema: Schema = None, regex: Regex = None, choice: Choice = None,
    quantize: Quantize = "none",
) -> None:  # fmt: skip
    """Run one strategy on one prompt: stream the answer and show every intermediate step."""
    if list_ or text is None:
        _list_strategies()
        return
    req = lab.EvalRequest(model, strategy, "", None, seed, samples, shots, temperature,
                          max_new_tokens, system, index, json_schema, regex, tuple(choice or ()),
                          quantize)  # fmt: skip

    out = _Printer()
    result = lab.try_prompt(refreshed_store(), model, strategy, text, req, out.step, out.piece)
    typer.echo("")
    typer.secho(f"answer: {result.output}", bold=True)
    typer.echo(f"tokens: {result.tokens_in} in, {result.tokens_out} out", err=True)


def _list_strategies() -> None:
    from pipelines.prompting.registry import STRATEGIES

    for name, info in STRATEGIES.items():
        typer.echo(f"{name:<18} {info.description}")


def eval_callback(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="a model name, run or folder")] = None,
    strategy: Annotated[str | None, typer.Option("--strategy", "-s")] = None,
    tasks: Annotated[str | None, typer.Option(help="a built-in set or a .jsonl file")] = None,
    n: Annotated[int | None, typer.Option(min=1, help="first N tasks")] = None,
    seed: Seed = 0, samples: Samples = 5, shots: Shots = 3, temperature: Temperature = 0.0,
    max_new_tokens: MaxTokens = None, system: System = None, index: Index = None,
    json_schema: Schema = None, regex: Regex = None, choice: Choice = None,
    quantize: Quantize = "none",
    json_: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:  # fmt: skip
    """Run one prompting strategy on one model over a task set and store the experiment."""
    if ctx.invoked_subcommand is not None:
        return
    missing = [f"--{k}" for k, v in (("model", model), ("strategy", strategy), ("tasks", tasks))
               if v is None]  # fmt: skip
    if missing:
        typer.echo(f"error: give {', '.join(missing)} (see `workbench eval --help`)", err=True)
        raise typer.Exit(2)
    req = lab.EvalRequest(model, strategy, tasks, n, seed, samples, shots, temperature,
                          max_new_tokens, system, index, json_schema, regex, tuple(choice or ()),
                          quantize)  # fmt: skip

    def progress(done: int, total: int) -> None:
        typer.echo(f"  {done}/{total} tasks", err=True)

    summary = lab.run_eval(refreshed_store(), req, progress)
    if json_:
        import json

        typer.echo(json.dumps(summary, default=str))
        return
    _print_summary(summary)


def _print_summary(summary: dict) -> None:
    model = quantize_label(summary["model"], summary.get("quantize"))
    typer.echo(
        f"{summary['strategy']} on {model} over {summary['task']}: "
        f"accuracy {summary['accuracy']:.3f} ({summary['n']} tasks), "
        f"tokens {summary['tokens_in']} in / {summary['tokens_out']} out, "
        f"{summary['latency_s']:.1f} s"
    )
    extra = {k: round(summary[k], 3) for k in lab.EXTRA if summary.get(k) is not None}
    if extra:
        typer.echo("  " + " ".join(f"{k}={v}" for k, v in extra.items()))
    typer.echo(f"  stored as prompt experiment {summary['id']}")


def compare(
    task: Annotated[str | None, typer.Option(help="only this task set")] = None,
    model: Annotated[str | None, typer.Option(help="only this model")] = None,
    json_: Annotated[bool, typer.Option("--json", help="print JSON rows")] = False,
) -> None:
    """The latest experiment per task × strategy × model, from the store."""
    rows = lab.compare(refreshed_store(), task=task, model=model)
    print_rows(lab.COMPARE_COLUMNS, rows, style="json" if json_ else "table")


def register_eval(app: typer.Typer) -> None:
    """Add the experiment callback and `compare` to the `eval` group."""
    app.info.help = (
        "Evaluate models: prompting experiments (eval --model M --strategy S --tasks T), "
        "eval compare, eval diversity."
    )
    app.callback(invoke_without_command=True)(eval_callback)
    app.command("compare")(compare)
