"""Spec sections and steps that PPO, DPO and GRPO share: the policy reference, held-out
tasks, loading the policy (LoRA or full), held-out accuracy and saving the tuned policy."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field, field_validator

from pipelines.comparisons import _check_tasks
from pipelines.sft_spec import LoraSpec
from pipelines.spec import Section, TrainSection, redefault
from pipelines.stage import Output, lineage
from store.events import Event, Metrics, Note, Sample

__all__ = ["EvalTasks", "LoraSpec", "Output", "PolicyRef", "RLTrain"]


class PolicyRef(Section):
    policy: str = Field(description="the SFT model to improve (also the frozen reference)")


class EvalTasks(Section):
    eval_tasks: list[str] = Field(
        default_factory=list, description="held-out task accuracy (built-in tasks)"
    )
    eval_n: int = Field(24, ge=1, description="held-out examples per eval task")
    eval_max_new_tokens: int = Field(16, ge=1)

    _eval = field_validator("eval_tasks")(lambda cls, v: _check_tasks(v))


class RLTrain(TrainSection):
    """Trainer settings with RL's defaults; sample_every is the held-out evaluation period."""

    batch_size: int = redefault(TrainSection, "batch_size", 8)
    max_steps: int = redefault(TrainSection, "max_steps", 40)
    lr: float = redefault(TrainSection, "lr", 1e-4)
    min_lr: float = redefault(TrainSection, "min_lr", 1e-5)
    warmup_steps: int = redefault(TrainSection, "warmup_steps", 2)
    weight_decay: float = redefault(TrainSection, "weight_decay", 0.0)
    eval_every: int = redefault(TrainSection, "eval_every", 0)
    sample_every: int = redefault(
        TrainSection, "sample_every", 10, description="held-out accuracy every N steps (0: ends)"
    )
    checkpoint_every: int = redefault(TrainSection, "checkpoint_every", 10)
    log_every: int = redefault(TrainSection, "log_every", 1)


def load_policy(ref_path, lora: LoraSpec):
    """(policy, tokenizer, trainable share or None): fp32 on CPU, turn ends set, LoRA when on."""
    from engines.chat import ensure_chat_template, set_turn_ends
    from engines.model_folders import load_causal_lm

    model, tok = load_causal_lm(ref_path, device="cpu")
    model.float()
    ensure_chat_template(tok)
    set_turn_ends(model, tok)
    if not lora.enabled:
        return model, tok, None
    from engines.lora import apply_lora

    model, share = apply_lora(
        model,
        r=lora.r,
        alpha=lora.alpha,
        dropout=lora.dropout,
        targets=lora.target_modules,
        quantize_base=lora.quantize_base,
    )
    return model, tok, share


def accuracy(model, tok, data: EvalTasks, seed: int):
    """Greedy held-out accuracy on data.eval_tasks (None without eval tasks)."""
    from engines.evaluate import task_accuracy

    if not data.eval_tasks:
        return None
    return task_accuracy(model, tok, data.eval_tasks, n=data.eval_n, seed=seed,
                         max_new_tokens=data.eval_max_new_tokens)  # fmt: skip


def accuracy_events(step: int, result, label: str, extra: dict | None = None) -> Iterator[Event]:
    values = dict(extra or {})
    if result is not None:
        values |= {"accuracy": result.accuracy}
        values |= {f"accuracy_{k}": v for k, v in result.per_task.items()}
    if values:
        yield Metrics(step=step, values=values, split="eval")
    if result is not None:
        yield Note(text=f"{label}: held-out accuracy {result.accuracy:.1%}")
        for row in result.transcripts[:2]:
            meta = {"task": row["task"], "correct": row["correct"], "eval": label}
            yield Sample(step=step, prompt=row["prompt"], completion=row["completion"], meta=meta)


def save_policy(spec, ctx, model, tok, ref_path, card: dict, lora: bool) -> Iterator[Event]:
    """Publish the tuned policy as an assistant model (LoRA merged; adapter kept beside it)."""
    from engines.lora import merged_model
    from pipelines.train_events import publish_model
    from store.events import Artifact

    meta = lineage(spec.model.policy, ref_path)
    if lora:
        adapter = ctx.run_dir / "adapter"
        model.save_pretrained(adapter)
        yield Artifact(type="adapter", path=str(adapter), meta={"register": False})
        model, meta["adapter"] = merged_model(model), str(adapter)
    yield from publish_model(ctx, model, tok, spec=spec, kind="assistant", card=card, meta=meta)
