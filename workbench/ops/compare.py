"""Comparing models and runs for both front ends: side-by-side answers, curves, specs, lineage.

    for columns in side_by_side(store, ["base", "sft"], "Hello!"):   # streams, all at once
        print([(c.model, c.text, c.tokens_per_s) for c in columns])
    series = overlay(store, ["sft-…", "ppo-…"], "loss")      # {"sft-… train": [(step, v)], …}
    rows = spec_diff(store, "sft-…", "ppo-…")                # [(field, value in a, value in b)]
    chain = lineage(store, "ppo-…")                          # base → SFT → reward → RLHF rows

Side by side: every model generates in its own thread (torch releases the GIL, so on a CPU
they take turns a token at a time) and this generator yields a snapshot of every column each
time any of them has new text. Each column's tokens/s, length in tokens and mean log-prob
per token are final when the column is done. torch loads inside these calls.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from workbench.ops.chat import check_quantize, quantize_device, quantize_label
from workbench.ops.errors import OpError, user_errors
from workbench.ops.prompting import experiment_quantize
from workbench.ops.refs import find_run, model_folder
from workbench.ops.stores import reading

MAX_COLUMNS = 4
GENERATING_KINDS = ("base", "assistant", "adapter")  # registry kinds that can answer a prompt
ACCURACY_NAMES = ("accuracy", "pair_accuracy", "reward_accuracy", "eval_accuracy")

_models: dict[tuple[Path, str], tuple[Any, Any]] = {}  # (folder, quantize) -> loaded
_models_lock = threading.Lock()


@dataclass(frozen=True)
class Column:
    """One model's answer so far and its figures."""

    model: str
    text: str = ""
    tokens: int = 0
    seconds: float = 0.0
    mean_logprob: float | None = None
    done: bool = False
    error: str | None = None

    @property
    def tokens_per_s(self) -> float | None:
        return self.tokens / self.seconds if self.seconds > 0 and self.tokens else None


def load_many(folders: list[Path], quantize: str = "none") -> list[tuple[Any, Any]]:
    """(model, tokenizer) for each folder (weights quantized as asked), kept loaded together
    (up to MAX_COLUMNS)."""
    from engines.model_folders import load_causal_lm

    keys = [(folder, quantize) for folder in folders]
    with _models_lock:
        for stale in [k for k in _models if k not in keys]:
            del _models[stale]
        with user_errors():
            for key in keys:
                if key not in _models:
                    _models[key] = load_causal_lm(
                        key[0], device=quantize_device(quantize), quantize=quantize
                    )
        return [_models[k] for k in keys]


def _prompt_for(tok: Any, prompt: str, chat: bool | None) -> str:
    from engines.generate import chat_prompt

    use_chat = bool(getattr(tok, "chat_template", None)) if chat is None else chat
    with user_errors():
        return chat_prompt(tok, [{"role": "user", "content": prompt}]) if use_chat else prompt


def generate_batch(store: Any, ref: str, prompt: str, n: int, sampling: Any) -> list[str]:
    """N completions of one prompt in one batch (the arena's rankings, the Playground's N)."""
    from engines.generate import generate

    sampling.check()
    (model, tok), = load_many([model_folder(store, ref)], sampling.quantize)  # fmt: skip
    text = _prompt_for(tok, prompt, None)
    with user_errors():
        gens = generate(model, tok, [text] * n, sampling.engine_params())
    return [g.text for g in gens]


def side_by_side(
    store: Any, refs: list[str], prompt: str, sampling: Any = None, chat: bool | None = None,
    stop: threading.Event | None = None,
) -> Iterator[list[Column]]:  # fmt: skip
    """Stream 1–4 models' answers to one prompt at once; yields every column each time (a
    column's model reads `sft [int8]` when the sampling quantizes the weights)."""
    from workbench.ops.chat import DEFAULTS

    if not 1 <= len(refs) <= MAX_COLUMNS:
        raise OpError(f"compare 1 to {MAX_COLUMNS} models at a time, not {len(refs)}")
    if not prompt.strip():
        raise OpError("type a prompt for the models to answer")
    sampling = (sampling or DEFAULTS).check()
    loaded = load_many([model_folder(store, ref) for ref in refs], sampling.quantize)
    columns = [Column(quantize_label(ref, sampling.quantize)) for ref in refs]
    events: queue.Queue = queue.Queue()
    stop = stop or threading.Event()
    threads = [
        threading.Thread(
            target=_answer, args=(i, model, tok, prompt, sampling, chat, events, stop), daemon=True
        )
        for i, (model, tok) in enumerate(loaded)
    ]
    for t in threads:
        t.start()
    started = time.monotonic()
    try:
        while not all(c.done for c in columns):
            i, change = events.get()
            columns[i] = replace(columns[i], **change, seconds=time.monotonic() - started)
            yield list(columns)
    finally:
        stop.set()


def _answer(i, model, tok, prompt, sampling, chat, events: queue.Queue, stop) -> None:
    """One column's generation (in its own thread): text pieces, then the final figures."""
    from engines.generate import generate

    class Stopped(Exception):
        pass

    state = {"text": "", "tokens": 0}

    def on_piece(_row: int, piece: str) -> None:
        if stop.is_set():
            raise Stopped
        state["text"] += piece
        state["tokens"] += 1
        events.put((i, dict(state)))

    try:
        with user_errors():
            text = _prompt_for(tok, prompt, chat)
            (gen,) = generate(model, tok, [text], sampling.engine_params(), on_piece=on_piece)
        lp = gen.logprobs
        mean = sum(lp) / len(lp) if lp else None
        events.put((i, {"text": gen.text, "tokens": len(gen.token_ids), "mean_logprob": mean,
                        "done": True}))  # fmt: skip
    except Stopped:
        events.put((i, {"done": True, "error": "stopped"}))
    except Exception as e:  # noqa: BLE001 — a column's failure is shown in that column
        events.put((i, {"done": True, "error": str(e) or type(e).__name__}))


# ---------------------------------------------------------------- runs


def overlay(store: Any, run_ids: list[str], metric: str) -> dict[str, list[tuple[float, float]]]:
    """One series per run and split of `metric`: {"<run> <split>": [(step, value)]}."""
    if not 1 <= len(run_ids) <= MAX_COLUMNS:
        raise OpError(f"overlay 1 to {MAX_COLUMNS} runs, not {len(run_ids)}")
    out: dict[str, list[tuple[float, float]]] = {}
    with reading(store):
        for run_id in run_ids:
            for row in store.metrics(run_id, [metric]):
                if row["step"] is None or row["value"] is None or row["nonfinite"]:
                    continue
                key = f"{short_id(run_id)} {row.get('split') or 'train'}"
                out.setdefault(key, []).append((float(row["step"]), float(row["value"])))
    return out


def metric_names(store: Any, run_ids: list[str]) -> list[str]:
    """Metric names logged by any of the runs, loss first."""
    with reading(store):
        names = {n.removeprefix("val_") for r in run_ids for n in store.latest_metrics(r)}
    return sorted(names, key=lambda n: (n != "loss", n))


def short_id(run_id: str) -> str:
    """`sft-20250301-114500-c3d4` → `sft-c3d4` (pipeline and the random suffix)."""
    parts = run_id.split("-")
    return f"{parts[0]}-{parts[-1]}" if len(parts) >= 3 else run_id


def spec_diff(store: Any, run_a: str, run_b: str) -> list[tuple[str, str, str]]:
    """(dotted field, value in a, value in b) for every field of the resolved specs that
    differs; a field one spec lacks shows as "—"."""
    a, b = find_run(store, run_a), find_run(store, run_b)
    flat_a, flat_b = _flatten(a.get("spec") or {}), _flatten(b.get("spec") or {})
    rows = []
    for key in sorted(set(flat_a) | set(flat_b)):
        va, vb = flat_a.get(key, "—"), flat_b.get(key, "—")
        if va != vb:
            rows.append((key, va, vb))
    return rows


def _flatten(spec: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(spec, dict):
        out: dict[str, str] = {}
        for key, value in spec.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out or {prefix.rstrip("."): "{}"}
    return {prefix.rstrip("."): json.dumps(spec, sort_keys=True, default=str)}


# ---------------------------------------------------------------- lineage

LINEAGE_COLUMNS = ("stage", "run", "status", "model", "loss", "val_loss", "accuracy",
                   "distinct_2", "duration_s")  # fmt: skip


def lineage(store: Any, ref: str) -> list[dict[str, Any]]:
    """The chain a run belongs to, root first: its ancestors (first parent each), the run,
    then its first descendants; each row with the model it made, final losses, held-out
    accuracy and diversity (distinct-2) where the store has them, and what it cost (the
    time of a finished run)."""
    with reading(store):
        run = find_run(store, ref)
        chain = _ancestors(store, run) + [run] + _descendants(store, run)
        models = store.list_models(latest_only=True)
        experiments = store.list_prompt_experiments()
        return [_lineage_row(store, r, models, experiments) for r in chain]


def _ancestors(store: Any, run: dict[str, Any]) -> list[dict[str, Any]]:
    out, seen = [], {run["run_id"]}
    parents = run.get("parents") or []
    while parents and parents[0] not in seen:
        parent = store.get_run(parents[0])
        if parent is None:
            break
        seen.add(parent["run_id"])
        out.insert(0, parent)
        parents = parent.get("parents") or []
    return out


def _descendants(store: Any, run: dict[str, Any]) -> list[dict[str, Any]]:
    out, seen, current = [], {run["run_id"]}, run
    while True:
        kids = [k for k in store.children(current["run_id"]) if k["run_id"] not in seen]
        if not kids:
            return out
        current = kids[0]
        seen.add(current["run_id"])
        out.append(current)


def _lineage_row(store: Any, run: dict, models: list[dict], experiments: list[dict]) -> dict:
    made = [m for m in models if m.get("run_id") == run["run_id"]]
    name = made[0]["name"] if made else None
    latest = store.latest_metrics(run["run_id"])
    keys = [f"val_{n}" for n in ACCURACY_NAMES] + list(ACCURACY_NAMES)
    accuracy = next((latest[k] for k in keys if k in latest), None)
    names = (name, made[0].get("ref")) if made else ()
    # the model's own weights: an experiment on a quantized copy is not this stage's figure
    mine = [e for e in experiments if e["model"] in names and experiment_quantize(e) == "none"]
    graded = [e for e in mine if e["strategy"] != "diversity" and e.get("accuracy") is not None]
    if accuracy is None and graded:
        accuracy = graded[-1]["accuracy"]
    return {
        "stage": run["pipeline"], "run": run["run_id"], "status": run["status"], "model": name,
        "loss": run.get("loss"), "val_loss": run.get("val_loss"), "accuracy": accuracy,
        "distinct_2": _distinct_2(mine),
        "duration_s": run.get("duration_s") if run.get("finished_at") else None,
    }  # fmt: skip


def _distinct_2(experiments: list[dict]) -> float | None:
    for e in reversed(experiments):
        transcripts = e.get("transcripts") or []
        if e["strategy"] == "diversity" and transcripts and isinstance(transcripts[0], dict):
            value = (transcripts[0].get("metrics") or {}).get("distinct_2")
            if value is not None:
                return float(value)
    return None


def compare_view(store: Any, run_ids: list[str], metric: str = "loss") -> dict[str, Any]:
    """What the Compare screen shows, in one store transaction: models that can answer, the
    runs, and for the selected runs (up to four, oldest first) the metric names, the `metric`
    overlay, the spec diff of the first two and the lineage of the first."""
    run_ids = run_ids[:MAX_COLUMNS]
    with reading(store):
        models = [m["name"] for m in store.list_models(latest_only=True)
                  if m["kind"] in GENERATING_KINDS]  # fmt: skip
        runs = [r["run_id"] for r in store.list_runs()]
        run_ids = [r for r in reversed(runs) if r in run_ids]  # oldest first: base → child
        return {
            "models": models,
            "runs": runs,
            "selected": run_ids,
            "metrics": metric_names(store, run_ids) if run_ids else [],
            "series": overlay(store, run_ids, metric) if run_ids else {},
            "diff": spec_diff(store, *run_ids[:2]) if len(run_ids) >= 2 else None,
            "lineage": lineage(store, run_ids[0]) if run_ids else [],
        }


# ---------------------------------------------------------------- prompt experiments

EXPERIMENT_COLUMNS = ("task", "strategy", "model", "n", "accuracy", "tokens/q", "s/q", "when")


def experiments_view(store: Any) -> list[dict[str, Any]]:
    """Every prompt experiment, newest first: strategy × model × task set with accuracy,
    tokens and latency per question, and its transcripts (the summary record first); the
    model of an experiment decoded with quantized weights reads `sft [int8]`."""
    with reading(store):
        rows = store.list_prompt_experiments()
    out = []
    for e in reversed(rows):
        n = e.get("n") or 0
        out.append({
            "id": e["id"], "task": e["task"], "strategy": e["strategy"],
            "model": quantize_label(e["model"], experiment_quantize(e)),
            "n": n, "accuracy": e.get("accuracy"),
            "tokens/q": e["tokens"] / n if e.get("tokens") and n else None,
            "s/q": e["latency_s"] / n if e.get("latency_s") and n else None,
            "when": e["created_at"], "transcripts": e.get("transcripts") or [],
        })  # fmt: skip
    return out


def transcript_lines(experiment: dict[str, Any], limit: int = 20) -> list[str]:
    """An experiment's transcripts as lines to read: the summary, then each record's
    question, answer and verdict (other fields as key=value)."""
    lines = []
    for record in experiment["transcripts"][:limit]:
        if not isinstance(record, dict):
            lines.append(str(record))
            continue
        for key, value in record.items():
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            lines.append(f"{key}: {text}")
        lines.append("")
    return lines or ["(no transcripts stored)"]


# ---------------------------------------------------------------- the playground

PLAIN = "plain"  # a completion with the full sampling (top-p too), no strategy around it


def strategies() -> list[tuple[str, str]]:
    """(name, description) of every prompting strategy, `plain` first (registry order)."""
    from pipelines.prompting.registry import STRATEGIES

    plain = (PLAIN, "the prompt as it is (chat template when the model has one)")
    return [plain, *((n, s.description) for n, s in STRATEGIES.items() if not s.needs_retriever)]


@dataclass
class PlayRequest:
    """What the Playground asks for (N: self-consistency samples; quantize: the weights
    decode reads, none, int8 or int4)."""

    model: str
    strategy: str
    prompt: str
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 128
    seed: int = 0
    n: int = 5
    constraint: str = ""  # "a|b|c": one of these; anything else: a regex
    quantize: str = "none"


def play(store: Any, req: PlayRequest, on_step: Any, on_piece: Any) -> dict[str, Any]:
    """Run one prompt through one strategy, reporting steps and text as they come; the
    exchange as a dict (prompt, output, steps, tokens, latency_s) for `save_play`."""
    from workbench.ops.chat import DEFAULTS
    from workbench.ops.prompting import EvalRequest, try_prompt

    if not req.prompt.strip():
        raise OpError("type a prompt first")
    check_quantize(req.quantize, "quantize")
    started = time.monotonic()
    if req.strategy == PLAIN:
        from workbench.ops.chat import complete

        sampling = DEFAULTS.with_(temperature=req.temperature, top_p=req.top_p,
                                  max_new_tokens=req.max_new_tokens, seed=req.seed,
                                  quantize=req.quantize)  # fmt: skip
        text = ""
        for piece in complete(store, req.model, req.prompt, sampling):
            text += piece
            on_piece(0, piece)
        steps, tokens = [], None
    else:
        choice = tuple(req.constraint.split("|")) if "|" in req.constraint else ()
        regex = req.constraint if req.constraint and not choice else None
        ereq = EvalRequest(req.model, req.strategy, "", seed=req.seed, samples=req.n,
                           temperature=req.temperature, max_new_tokens=req.max_new_tokens,
                           regex=regex, choice=choice, quantize=req.quantize)  # fmt: skip
        result = try_prompt(store, req.model, req.strategy, req.prompt, ereq, on_step, on_piece)
        text, steps, tokens = result.output, result.steps, result.tokens_in + result.tokens_out
    return {"prompt": req.prompt, "output": text, "steps": steps, "tokens": tokens,
            "latency_s": time.monotonic() - started, "request": asdict(req)}  # fmt: skip


def save_play(store: Any, exchange: dict[str, Any]) -> str:
    """Store a Playground exchange as a prompt experiment (task "playground", n 1); its
    summary is the request, quantization included."""
    req = exchange["request"]
    with user_errors():
        exp_id = store.add_prompt_experiment(
            req["model"], req["strategy"], "playground", 1, None, tokens=exchange["tokens"],
            latency_s=exchange["latency_s"], transcripts=[{"summary": req}, {
                "question": exchange["prompt"], "output": exchange["output"],
                "steps": exchange["steps"]}],
        )  # fmt: skip
    return f"saved the exchange as experiment {exp_id[:8]}"
