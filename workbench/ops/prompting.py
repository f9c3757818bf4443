"""The prompting lab for both front ends: run an experiment, compare them, try one prompt.

    summary = run_eval(store, EvalRequest("smollm2-135m-instruct", "cot", "arithmetic", n=10))
    columns, rows = compare(store)                       # strategies × models from the store
    result = try_prompt(store, "smollm2-135m-instruct", "react", "What is 123 * 45?",
                        on_step=print_step, on_piece=print_piece)

An experiment is stored as a prompt experiment: accuracy, tokens (in + out), latency, and as
transcripts a summary record ({"summary": {...}}: tokens in/out, seed, parse/valid shares,
agreement, hit rate, MRR) followed by one record per task. torch loads inside these calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.ops.chat import check_quantize, quantize_device, quantize_label
from workbench.ops.errors import OpError, user_errors
from workbench.ops.refs import model_folder

_adapters: dict[tuple[Path, str], Any] = {}  # (folder, quantize) -> adapter


@dataclass
class EvalRequest:
    """What `workbench eval` (and the TUI's lab) asks for."""

    model: str
    strategy: str
    tasks: str
    n: int | None = None
    seed: int = 0
    samples: int = 5
    shots: int = 3
    temperature: float = 0.0
    max_new_tokens: int | None = None
    system: str | None = None
    index: str | None = None
    json_schema: Path | None = None
    regex: str | None = None
    choice: tuple[str, ...] = ()
    quantize: str = "none"  # the weights decode reads: none, int8 or int4 (CPU)


def adapter_for(store: Any, ref: str, quantize: str = "none") -> Any:
    """The model adapter for a reference (its weights quantized as asked), loaded once per
    process (one model at a time)."""
    from pipelines.prompting.adapter import load_adapter

    check_quantize(quantize)
    key = (model_folder(store, ref), quantize)
    if key not in _adapters:
        with user_errors():
            _adapters.clear()
            _adapters[key] = load_adapter(
                key[0], ref, device=quantize_device(quantize), quantize=quantize
            )
    adapter = _adapters[key]
    adapter.name = ref
    return adapter


def experiment_quantize(experiment: dict[str, Any]) -> str:
    """The quantization a stored prompt experiment decoded with: its summary record's
    `quantize` (a diversity experiment: its metrics'), "none" when it has none."""
    first = (experiment.get("transcripts") or [None])[0]
    if not isinstance(first, dict):
        return "none"
    record = first.get("summary") or first.get("metrics") or {}
    return str(record.get("quantize") or "none") if isinstance(record, dict) else "none"


def read_constraint(json_schema: Path | None, regex: str | None, choice: tuple[str, ...]) -> Any:
    """A Constraint from --json-schema FILE / --regex / --choice (at most one), or None."""
    from pipelines.prompting.adapter import Constraint

    given = [x for x in (json_schema, regex, choice or None) if x is not None]
    if len(given) > 1:
        raise OpError("give one of --json-schema, --regex or --choice, not several")
    if json_schema is not None:
        return Constraint("json", _schema_file(Path(json_schema)))
    if regex is not None:
        return Constraint("regex", regex)
    return Constraint("choice", list(choice)) if choice else None


def _schema_file(path: Path) -> dict:
    if not path.is_file():
        raise OpError(f"JSON schema file {path} does not exist")
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise OpError(f"{path}: not valid JSON ({e}): a JSON schema file is one JSON object") from e
    if not isinstance(schema, dict):
        raise OpError(f"{path}: a JSON schema must be an object, got {type(schema).__name__}")
    return schema


def _options(store: Any, req: EvalRequest, info: Any, **hooks: Any) -> Any:
    from pipelines.prompting.core import DEFAULT_SYSTEM, Options

    opts = Options(
        temperature=req.temperature, seed=req.seed, max_new_tokens=req.max_new_tokens,
        samples=req.samples, shots=req.shots,
        system=DEFAULT_SYSTEM if req.system is None else req.system,
        constraint=read_constraint(req.json_schema, req.regex, req.choice), **hooks,
    )  # fmt: skip
    if info.needs_retriever:
        if not req.index:
            raise OpError(f"strategy {req.strategy!r} needs an index: pass --index NAME "
                          "(build one with `workbench rag index FOLDER --name NAME`)")  # fmt: skip
        from workbench.ops.rag import retriever

        opts.retriever = retriever(store, req.index)
    elif req.index:
        from workbench.ops.rag import retriever

        opts.retriever = retriever(store, req.index)
    return opts


def _strategy_info(name: str) -> Any:
    from pipelines.prompting.registry import STRATEGIES, strategy

    with user_errors():
        strategy(name)
    return STRATEGIES[name]


def run_eval(
    store: Any, req: EvalRequest, on_progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Run one experiment and store it; its summary (with `quantize`, the weights it decoded
    with) and the stored id."""
    from pipelines.prompting.experiment import run_experiment
    from pipelines.prompting.tasksets import load_taskset

    check_quantize(req.quantize)
    info = _strategy_info(req.strategy)
    with user_errors():
        tasks = load_taskset(req.tasks, seed=req.seed, n=req.n)
    opts = _options(store, req, info)
    adapter = adapter_for(store, req.model, req.quantize)
    with user_errors():
        exp = run_experiment(adapter, req.strategy, tasks, opts, on_progress)
    summary = {**exp.summary(), "seed": req.seed, "tasks": req.tasks}
    exp_id = store.add_prompt_experiment(
        req.model, req.strategy, exp.task, exp.n, exp.accuracy,
        tokens=exp.tokens_in + exp.tokens_out, latency_s=exp.latency_s,
        transcripts=[{"summary": summary}, *exp.transcripts],
    )  # fmt: skip
    return {"id": exp_id, **summary}


def try_prompt(
    store: Any, ref: str, strategy_name: str, text: str, req: EvalRequest | None = None,
    on_step: Callable[[int, dict], None] | None = None,
    on_piece: Callable[[int, str], None] | None = None, k: int | None = None,
) -> Any:  # fmt: skip
    """Run one strategy on one question, reporting steps and text as they come (k: chunks
    a retrieving strategy reads, default its own)."""
    from pipelines.prompting.tasksets import Item

    req = req or EvalRequest(ref, strategy_name, "")
    check_quantize(req.quantize)
    info = _strategy_info(strategy_name)
    hooks = {"top_k": k} if k is not None else {}
    opts = _options(store, req, info, on_step=on_step, on_piece=on_piece, **hooks)
    adapter = adapter_for(store, ref, req.quantize)
    fn = _load(strategy_name)
    with user_errors():
        return fn(adapter, [Item("prompt", text, "", "contains")], opts)[0]


def _load(name: str) -> Any:
    from pipelines.prompting.registry import strategy

    return strategy(name)


COMPARE_COLUMNS = ["task", "strategy", "model", "n", "accuracy", "tokens/q", "s/q", "extra"]
EXTRA = ("parse_rate", "valid_rate", "agreement", "hit_rate", "mrr")


def compare(store: Any, task: str | None = None, model: str | None = None) -> list[tuple]:
    """The latest experiment per (task, strategy, model): one row each, sorted. A model
    decoded with quantized weights is a row of its own, `sft [int8]`."""
    latest: dict[tuple, dict] = {}
    for exp in store.list_prompt_experiments(model=model, task=task):
        label = quantize_label(exp["model"], experiment_quantize(exp))
        latest[(exp["task"], exp["strategy"], label)] = exp
    return [_row(latest[key], key[2]) for key in sorted(latest)]


def _row(exp: dict, label: str) -> tuple:
    n = exp.get("n") or 0
    summary = _summary(exp.get("transcripts"))
    extra = " ".join(f"{k}={summary[k]:.2f}" for k in EXTRA if summary.get(k) is not None)
    per_q = (exp["tokens"] / n) if exp.get("tokens") and n else None
    latency = (exp["latency_s"] / n) if exp.get("latency_s") and n else None
    return (exp["task"], exp["strategy"], label, n, exp.get("accuracy"),
            _round(per_q, 1), _round(latency, 2), extra or "-")  # fmt: skip


def _summary(transcripts: Any) -> dict:
    if isinstance(transcripts, list) and transcripts and isinstance(transcripts[0], dict):
        return transcripts[0].get("summary", {}) or {}
    return {}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def constrained_complete(
    store: Any, ref: str, prompt: str, sampling: Any, constraint: Any, chat: bool | None = None
) -> Any:
    """Stream a completion forced to `constraint` (`workbench generate --json-schema/--regex/
    --choice`): the same checks, model and chat wrapping as `ops.chat.complete`."""
    from engines.generate import chat_prompt, stream
    from pipelines.prompting.adapter import build_processor
    from workbench.ops.chat import generative, load, model_info

    sampling.check()
    info = generative(model_info(store, ref))
    model, tok = load(info["folder"], sampling.quantize)
    use_chat = info["chat"] if chat is None else chat
    with user_errors():
        messages = [{"role": "user", "content": prompt}]
        text = chat_prompt(tok, messages, fallback=True) if use_chat else prompt
        processor = build_processor(tok, constraint)
        params = sampling.engine_params()
        yield from stream(model, tok, text, params, logits_processor=processor)


def rag_answer(
    store: Any, name: str, question: str, model: str, k: int = 3,
    on_piece: Callable[[int, str], None] | None = None, quantize: str = "none",
) -> Any:  # fmt: skip
    """A model's answer from the top-k chunks of index `name`, citing them (the `rag`
    strategy; `workbench rag query --model`). Here rather than in ops.rag, so that rag never
    imports prompting back."""
    req = EvalRequest(model, "rag", "", index=name, quantize=quantize)
    return try_prompt(store, model, "rag", question, req, on_piece=on_piece, k=k)
