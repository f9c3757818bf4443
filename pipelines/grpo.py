"""GRPO: improve an SFT model on built-in tasks with verifiable rewards — no reward model.

    workbench run --preset grpo-smollm2-lora       # SmolLM2-135M + LoRA on arithmetic

Each step: B training prompts × G sampled answers, reward 1 when the task's checker accepts
the answer, advantages normalised within each group (engines.grpo). Held-out accuracy (greedy)
is measured before training, every `train.sample_every` steps and at the end.

With several processes (or grad_accum), B is per micro-batch and process: every process
samples the step's whole global batch of rollouts with one seed, as one process would, and
trains on its own groups of it (pipelines.train_events.StepRows), so under FSDP every rank
runs the same sharded forwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field, field_validator

from pipelines.comparisons import _check_tasks
from pipelines.model_refs import resolve_model
from pipelines.rl_spec import EvalTasks, LoraSpec, Output, PolicyRef, RLTrain
from pipelines.spec import Section
from pipelines.stage import StageSpec
from store.events import Event, Metrics, Note

__all__ = ["Spec", "preflight", "run"]


class GRPOData(EvalTasks):
    tasks: list[str] = Field(min_length=1, description="built-in tasks whose checkers reward")
    n_prompts: int = Field(500, ge=1, description="training prompts per task")

    _tasks = field_validator("tasks")(lambda cls, v: _check_tasks(v))


class GRPOSection(Section):
    group_size: int = Field(8, ge=2, le=64, description="answers sampled per prompt (G)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of rollouts")
    max_new_tokens: int = Field(16, ge=1, description="tokens per sampled answer")
    kl_coef: float = Field(0.0, ge=0, description="weight of KL to the reference (0: none)")
    clip: float = Field(0.2, gt=0, lt=1, description="PPO ratio clip")


class Spec(StageSpec):
    pipeline: Literal["grpo"] = "grpo"
    model: PolicyRef
    data: GRPOData
    grpo: GRPOSection = GRPOSection()
    lora: LoraSpec = LoraSpec()
    train: RLTrain = RLTrain()
    output: Output = Output()


def preflight(spec: Spec, store=None) -> None:
    from pipelines import preflight as check

    resolve_model(store, spec.model.policy)
    check.check_compile(spec.train.compile, check.check_device(spec.train.device))


def run(spec: Spec, ctx) -> Iterator[Event]:
    import torch

    from engines.generate import SamplingParams
    from engines.grpo import GroupRollouts, grpo_loss
    from engines.reward_model import prompt_text
    from engines.rollout import Reference
    from engines.tasks import get_task
    from engines.trainer import Trainer
    from pipelines.rl_spec import accuracy, accuracy_events, load_policy, save_policy
    from pipelines.train_events import StepRows, train_config, trainer_events

    torch.manual_seed(spec.seed)
    path = ctx.resolve_model(spec.model.policy)
    policy, tok, share = load_policy(path, spec.lora)
    if share is not None:
        yield Note(text=f"LoRA r={spec.lora.r}: {share:.2%} of parameters train")
        yield Metrics(step=0, values={"trainable_share": share}, split="info")
    before = None if ctx.resume else accuracy(policy, tok, _eval(spec), spec.seed)
    yield from accuracy_events(0, before, "SFT policy")
    examples = [(t, ex) for t in spec.data.tasks
                for ex in get_task(t).examples(spec.data.n_prompts, seed=spec.seed)]  # fmt: skip
    g = spec.grpo
    reference = Reference(policy, spec.lora.enabled) if g.kl_coef > 0 else None
    batches = GroupRollouts(
        policy, tok, examples, checkers={t: get_task(t) for t in spec.data.tasks},
        prompts=[prompt_text(tok, ex.prompt) for _, ex in examples],
        batch_size=spec.train.batch_size * spec.train.grad_accum * ctx.world_size,
        group=g.group_size,
        params=SamplingParams(max_new_tokens=g.max_new_tokens, temperature=g.temperature),
        seed=spec.seed, reference=reference,
    )  # fmt: skip
    trainer = Trainer(
        policy, train_config(spec.train, spec.seed, ctx.store.cache_dir),
        train_batches=StepRows(batches, ctx.rank, ctx.world_size, spec.train.grad_accum),
        loss_fn=grpo_loss(g.kl_coef, g.clip),
        ckpt_root=ctx.checkpoint_dir, sample_fn=_sampler(spec, tok, batches),
    )  # fmt: skip
    if reference is not None:
        reference.to(trainer.device)
    outcome = yield from trainer_events(trainer, ctx)
    if outcome is not None:
        yield outcome
        return
    model = trainer.plain_model()  # every rank: under FSDP the weights gather on rank 0
    if not ctx.is_main:
        return
    after = accuracy(model, tok, _eval(spec), spec.seed)
    yield from accuracy_events(spec.train.max_steps, after, "GRPO policy")
    if before is not None and after is not None:
        yield Note(text=f"held-out accuracy {before.accuracy:.1%} → {after.accuracy:.1%}")
    card = {"final_accuracy": after.accuracy if after else None}
    yield from save_policy(spec, ctx, model, tok, path, card, spec.lora.enabled)


def _eval(spec: Spec) -> EvalTasks:
    """Held-out tasks: data.eval_tasks, else the training tasks."""
    tasks = spec.data.eval_tasks or spec.data.tasks
    return EvalTasks(eval_tasks=tasks, eval_n=spec.data.eval_n,
                     eval_max_new_tokens=spec.data.eval_max_new_tokens)  # fmt: skip


def _sampler(spec: Spec, tok, batches):
    """Every sample_every steps: held-out accuracy (as metrics) and the latest rollouts."""
    from pipelines.rl_spec import accuracy

    def sample(model, step: int) -> list[dict]:
        if step >= spec.train.max_steps:
            return list(batches.last)
        result = accuracy(model, tok, _eval(spec), spec.seed)
        out = [dict(s) for s in batches.last]
        if out and result is not None:
            out[0]["metrics"] = {"accuracy": result.accuracy}
        return out

    return sample
