"""PPO (RLHF): an SFT policy tuned against a frozen reward model, kept near a frozen reference.

    workbench run --preset ppo-tiny          # sft-tiny against reward-tiny on built-in tasks

Prompts are built-in task prompts (train split); the reward is the reward model's score only
(the task checkers are not used for training, only for held-out accuracy). Each optimizer step
is one PPO minibatch (engines.ppo): `train.max_steps` counts minibatch steps, and one rollout
of `train.batch_size` prompts feeds `ppo.epochs × batch_size / ppo.minibatch` of them.

With several processes (or grad_accum), batch_size and minibatch are per process and
micro-batch: every process samples the step's whole global rollout (batch_size × grad_accum ×
processes prompts) with one seed, as one process would, cuts it into the same global
minibatches, and trains on its own rows of each (pipelines.train_events.StepRows), so under
FSDP every rank runs the same sharded forwards.

Per step: reward, KL to the reference, entropy, response length, clip fraction, value loss.
Before training, every `train.sample_every` steps and at the end: held-out task accuracy
(greedy) and held-out mean reward and KL (sampled answers), plus rollout samples with rewards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipelines.comparisons import _check_tasks
from pipelines.model_refs import resolve_model
from pipelines.rl_spec import EvalTasks, Output, PolicyRef, RLTrain
from pipelines.spec import Section, SpecError
from pipelines.stage import StageSpec
from store.events import Event, Note, Table

__all__ = ["Spec", "preflight", "run"]


class PPOModels(PolicyRef):
    reward: str = Field(description="the reward model (pipeline `reward`) that scores answers")


class PPOData(EvalTasks):
    tasks: list[str] = Field(min_length=1, description="built-in tasks whose prompts are used")
    n_prompts: int = Field(400, ge=1, description="training prompts per task")
    heldout_prompts: int = Field(16, ge=1, description="held-out prompts for mean reward / KL")

    _tasks = field_validator("tasks")(lambda cls, v: _check_tasks(v))


class PPOSection(Section):
    kl_coef: float = Field(0.05, ge=0, description="per-token KL penalty to the reference")
    clip: float = Field(0.2, gt=0, lt=1, description="policy ratio clip")
    value_clip: float = Field(0.2, gt=0, description="value clip around the rollout's values")
    vf_coef: float = Field(0.5, ge=0, description="weight of the value loss")
    ent_coef: float = Field(0.0, ge=0, description="weight of the entropy bonus")
    gamma: float = Field(1.0, gt=0, le=1, description="discount")
    lam: float = Field(0.95, ge=0, le=1, description="GAE λ")
    epochs: int = Field(2, ge=1, le=16, description="passes over each rollout")
    minibatch: int = Field(8, ge=1, description="rows per optimizer step")
    temperature: float = Field(1.0, gt=0, description="rollout sampling temperature")
    max_new_tokens: int = Field(16, ge=1, description="tokens per rollout answer")
    whiten_scores: bool = Field(
        True,
        description="whiten the reward model's scores over each rollout batch (mean 0, std 1) "
        "before the KL penalty is added: its offset and scale are arbitrary",
    )


class PPOTrain(RLTrain):
    lr: float = Field(1e-4, gt=0, le=1.0, description="peak learning rate")


class Spec(StageSpec):
    pipeline: Literal["ppo"] = "ppo"
    model: PPOModels
    data: PPOData
    ppo: PPOSection = PPOSection()
    train: PPOTrain = PPOTrain()
    output: Output = Output()

    @model_validator(mode="after")
    def _minibatch_divides(self) -> Spec:
        if self.train.batch_size % self.ppo.minibatch:
            raise ValueError(
                f"ppo.minibatch ({self.ppo.minibatch}) must divide train.batch_size "
                f"({self.train.batch_size}), the prompts per rollout"
            )
        return self


def preflight(spec: Spec, store=None) -> None:
    """Both models found; the reward model is one and shares the policy's tokenizer."""
    from pipelines import preflight as check

    policy = resolve_model(store, spec.model.policy)
    reward = resolve_model(store, spec.model.reward)
    _check_reward_model(reward, spec.model.reward)
    _check_same_tokenizer(policy, reward, spec)
    check.check_compile(spec.train.compile, check.check_device(spec.train.device))


def _check_reward_model(folder: Path, ref: str) -> None:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    arch = (config.get("architectures") or ["?"])[0]
    if not arch.endswith("ForSequenceClassification") or "readout_token_id" not in config:
        raise SpecError(
            f"field 'model.reward': {ref!r} ({arch}) is not a reward model — train one with "
            "`workbench run --preset reward-tiny` (pipeline reward) and name it here"
        )


def _check_same_tokenizer(policy: Path, reward: Path, spec: Spec) -> None:
    """The reward model reads the policy's token ids as they are: same vocabulary (the RM
    may add the readout token)."""
    from transformers import AutoTokenizer

    from engines.vocab import REWARD

    mine, theirs = (AutoTokenizer.from_pretrained(p, local_files_only=True).get_vocab()
                    for p in (policy, reward))  # fmt: skip
    if REWARD not in mine:
        theirs.pop(REWARD, None)
    if mine != theirs:
        raise SpecError(
            f"field 'model.reward': {spec.model.reward!r} uses a different tokenizer from the "
            f"policy {spec.model.policy!r} ({len(theirs)} vs {len(mine)} tokens) — "
            "train the reward model from this policy (model.base = the policy)"
        )


def run(spec: Spec, ctx) -> Iterator[Event]:
    from dataclasses import replace

    import torch

    from engines.ppo import PolicyWithValue, PPOConfig, PPORollouts, ppo_loss_fn
    from engines.reward_model import load_reward_model, prompt_text
    from engines.rollout import Reference
    from engines.tasks import get_task
    from engines.trainer import Trainer
    from pipelines.rl_spec import LoraSpec, load_policy, save_policy
    from pipelines.train_events import StepRows, train_config, trainer_events

    torch.manual_seed(spec.seed)
    path = ctx.resolve_model(spec.model.policy)
    policy, tok, _ = load_policy(path, LoraSpec())  # full fine-tuning: the value head shares it
    rm, _ = load_reward_model(ctx.resolve_model(spec.model.reward))
    model = PolicyWithValue(policy)
    reference = Reference(policy, lora=False)
    questions = [ex.prompt for t in spec.data.tasks
                 for ex in get_task(t).examples(spec.data.n_prompts, seed=spec.seed)]  # fmt: skip
    held = _heldout_prompts(spec, tok)
    yield Note(
        text=f"PPO: {len(questions)} training prompts, {len(held)} held out; "
        f"reward from {spec.model.reward}, KL {spec.ppo.kl_coef} to the SFT policy"
    )
    evaluate = _evaluator(spec, tok, reference, rm, held)
    before = None if ctx.resume else evaluate(model)
    if before is not None:
        yield from _eval_events(0, before, "SFT policy")
    cfg = PPOConfig(**{k: getattr(spec.ppo, k) for k in PPOConfig.__dataclass_fields__})
    parts = spec.train.grad_accum * ctx.world_size  # a global minibatch's micro-batches
    batches = PPORollouts(
        model, tok, reference, rm, prompts=[prompt_text(tok, q) for q in questions],
        questions=questions, batch_size=spec.train.batch_size * parts, params=_params(spec),
        cfg=replace(cfg, minibatch=cfg.minibatch * parts), seed=spec.seed,
    )  # fmt: skip
    trainer = Trainer(
        model, train_config(spec.train, spec.seed, ctx.store.cache_dir),
        train_batches=StepRows(batches, ctx.rank, ctx.world_size, spec.train.grad_accum),
        loss_fn=ppo_loss_fn(cfg), ckpt_root=ctx.checkpoint_dir,
        sample_fn=_sampler(spec, batches, evaluate),
    )  # fmt: skip
    reference.to(trainer.device), rm.to(trainer.device)
    outcome = yield from trainer_events(trainer, ctx)
    if outcome is not None:
        yield outcome
        return
    trained = trainer.plain_model()  # every rank: under FSDP the weights gather on rank 0
    if not ctx.is_main:
        return
    after = evaluate(trained)
    yield from _eval_events(spec.train.max_steps, after, "PPO policy")
    yield from _report(before, after)
    card = {"heldout_reward": after[0]["heldout_reward"], "reward_model": spec.model.reward}
    yield from save_policy(spec, ctx, trained.policy, tok, path, card, lora=False)


def _params(spec: Spec, seed: int | None = None):
    from engines.generate import SamplingParams

    return SamplingParams(max_new_tokens=spec.ppo.max_new_tokens,
                          temperature=spec.ppo.temperature, seed=seed)  # fmt: skip


def _heldout_prompts(spec: Spec, tok) -> list[str]:
    from engines.reward_model import prompt_text
    from engines.tasks import get_task

    n = spec.data.heldout_prompts
    return [prompt_text(tok, ex.prompt) for t in spec.data.tasks
            for ex in get_task(t).examples(n, seed=spec.seed + 1, split="test")]  # fmt: skip


def _evaluator(spec: Spec, tok, reference, rm, held: list[str]):
    """model -> (held-out reward/KL dict, task accuracy or None); the same samples each time."""
    import torch

    from engines.ppo import heldout_reward
    from pipelines.rl_spec import accuracy

    tasks = spec.data.eval_tasks or spec.data.tasks
    data = spec.data.model_copy(update={"eval_tasks": tasks})

    def evaluate(model):
        with torch.random.fork_rng():
            values = heldout_reward(model, tok, reference, rm, held, _params(spec, seed=99))
        return values, accuracy(model.policy, tok, data, spec.seed)

    return evaluate


def _sampler(spec: Spec, batches, evaluate):
    def sample(model, step: int) -> list[dict]:
        out = [dict(s) for s in batches.last]
        if step >= spec.train.max_steps or not out:
            return out
        values, acc = evaluate(model)
        out[0]["metrics"] = values | ({"accuracy": acc.accuracy} if acc else {})
        return out

    return sample


def _eval_events(step: int, result, label: str) -> Iterator[Event]:
    from pipelines.rl_spec import accuracy_events

    values, acc = result
    yield from accuracy_events(step, acc, label, values)
    yield Note(
        text=f"{label}: held-out reward {values['heldout_reward']:.3f}, "
        f"KL {values['heldout_kl']:.3f}, length {values['heldout_length']:.1f}"
    )


def _report(before, after) -> Iterator[Event]:
    rows = []
    for when, result in (("before", before), ("after", after)):
        if result is not None:
            values, acc = result
            rows.append({"when": when, **values, "accuracy": acc.accuracy if acc else None})
    yield Table(name="eval", rows=rows)
    if before is not None:
        b, a = before[0]["heldout_reward"], after[0]["heldout_reward"]
        yield Note(
            text=f"held-out mean reward {b:.3f} → {a:.3f}; "
            f"KL to the reference {after[0]['heldout_kl']:.3f}"
        )
