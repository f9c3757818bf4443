"""DPO: preference pairs straight into an SFT model, the SFT model itself as the reference.

    workbench run --preset dpo-smollm2-lora      # SmolLM2-135M + LoRA, checker-ranked pairs

Pairs come from the same sources as reward-model rankings (pipelines.comparisons): every
ordered pair of every ranking. Held-out implicit-reward accuracy and margin (engines.dpo) are
measured before training (½ by construction: π = π_ref), every `train.sample_every` steps and
at the end; held-out task accuracy too when `eval.eval_tasks` is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from pipelines.comparisons import ComparisonData, resolve_path
from pipelines.model_refs import resolve_model
from pipelines.rl_spec import EvalTasks, LoraSpec, Output, PolicyRef, RLTrain
from pipelines.spec import Section
from pipelines.stage import StageSpec
from store.events import Event, Metrics, Note, Table

__all__ = ["Spec", "preflight", "run"]


class DPOSection(Section):
    beta: float = Field(0.1, gt=0, le=10, description="β: strength of the pull to the reference")


class Spec(StageSpec):
    pipeline: Literal["dpo"] = "dpo"
    model: PolicyRef
    data: ComparisonData
    eval: EvalTasks = EvalTasks()
    dpo: DPOSection = DPOSection()
    lora: LoraSpec = LoraSpec()
    train: RLTrain = RLTrain()
    output: Output = Output()

    def check_files(self, base_dir: Path, where: str) -> None:
        resolve_path(self.data, base_dir, where)


def preflight(spec: Spec, store=None) -> None:
    from pipelines import preflight as check
    from pipelines import reward

    resolve_model(store, spec.model.policy)
    reward.check_data(spec, store)
    check.check_compile(spec.train.compile, check.check_device(spec.train.device))


def run(spec: Spec, ctx) -> Iterator[Event]:
    import torch

    from engines.dpo import dpo_loss_fn, encode_pairs
    from engines.rollout import Reference, pad_id
    from engines.trainer import Trainer
    from pipelines.comparisons import pairs
    from pipelines.reward import rankings
    from pipelines.rl_spec import accuracy_events, load_policy, save_policy
    from pipelines.train_events import train_config, trainer_events

    torch.manual_seed(spec.seed)
    path = ctx.resolve_model(spec.model.policy)
    train, held = yield from rankings(spec, ctx, path)
    policy, tok, share = load_policy(path, spec.lora)
    if share is not None:
        yield Metrics(step=0, values={"trainable_share": share}, split="info")
    enc_train = encode_pairs(tok, pairs(train), spec.data.max_len)
    held_pairs = pairs(held)
    enc_held = encode_pairs(tok, held_pairs, spec.data.max_len)
    yield Note(text=f"DPO β={spec.dpo.beta}: {len(enc_train)} pairs, {len(enc_held)} held out")
    reference = Reference(policy, spec.lora.enabled)
    before = None
    if not ctx.resume:
        before = _measure(policy, tok, reference, enc_held, spec)
        yield from accuracy_events(0, before[1], "SFT policy", before[0])
    trainer = Trainer(
        policy, train_config(spec.train, spec.seed, ctx.store.cache_dir),
        train_batches=_batches(enc_train, spec, ctx, pad_id(tok)),
        loss_fn=dpo_loss_fn(reference, spec.dpo.beta), ckpt_root=ctx.checkpoint_dir,
        sample_fn=_sampler(spec, tok, reference, enc_held, held_pairs),
    )  # fmt: skip
    reference.to(trainer.device)
    outcome = yield from trainer_events(trainer, ctx)
    if outcome is not None:
        yield outcome
        return
    model = trainer.plain_model()  # every rank: under FSDP the weights gather on rank 0
    if not ctx.is_main:
        return
    after = _measure(model, tok, _reference_of(model, reference), enc_held, spec)
    yield from accuracy_events(spec.train.max_steps, after[1], "DPO policy", after[0])
    yield from _report(before, after)
    card = {"heldout_reward_accuracy": (after[0] or {}).get("reward_accuracy")}
    yield from save_policy(spec, ctx, model, tok, path, card, spec.lora.enabled)


def _batches(encoded: list, spec: Spec, ctx, pad: int):
    """This process's `train.batch_size` pairs of each global batch: its share of the chosen
    rows and of the rejected rows (engines.dpo.collate_pairs puts all chosen rows first)."""
    from engines.dpo import PairBatches
    from pipelines.train_events import RankRows

    pairs = PairBatches(encoded, spec.train.batch_size * ctx.world_size, pad=pad, seed=spec.seed)
    return RankRows(pairs, ctx.rank, ctx.world_size, blocks=2)


def _reference_of(model, reference):
    """The reference for measuring `model` on rank 0 alone: a LoRA policy's own base (its
    adapter switched off), so a gathered copy never calls the sharded policy; the frozen
    copy of a fully fine-tuned one, which every rank holds whole."""
    from engines.rollout import Reference

    return Reference(model, lora=True) if reference.copy is None else reference


def _measure(model, tok, reference, enc_held, spec: Spec):
    """(held-out pair metrics or None, held-out task accuracy or None)."""
    from engines.dpo import heldout
    from pipelines.rl_spec import accuracy

    pair = heldout(model, tok, reference, enc_held, spec.dpo.beta)
    return pair, accuracy(model, tok, spec.eval, spec.seed)


def _sampler(spec: Spec, tok, reference, enc_held, held_pairs):
    """Every sample_every steps: held-out pair metrics (and accuracy) with one held-out pair."""

    def sample(model, step: int) -> list[dict]:
        if step >= spec.train.max_steps or not held_pairs:
            return []
        pair, acc = _measure(model, tok, _reference_of(model, reference), enc_held, spec)
        values = dict(pair or {}) | ({"accuracy": acc.accuracy} if acc else {})
        prompt, chosen, rejected = held_pairs[0]
        meta = {"rejected": rejected, "eval": "held-out pair"}
        return [{"prompt": prompt, "completion": chosen, "meta": meta, "metrics": values}]

    return sample


def _report(before, after) -> Iterator[Event]:
    rows = []
    for when, (pair, acc) in (("before", before), ("after", after)):
        if pair is not None or acc is not None:
            rows.append({"when": when, **(pair or {}), "accuracy": acc.accuracy if acc else None})
    if rows:
        yield Table(name="eval", rows=rows)
    if after[0] is not None:
        start = f"{before[0]['reward_accuracy']:.1%} → " if before and before[0] else ""
        yield Note(
            text=f"held-out implicit reward accuracy {start}{after[0]['reward_accuracy']:.1%}, "
            f"margin {after[0]['margin']:.3f}, policy prefers chosen "
            f"{after[0]['logp_accuracy']:.1%}"
        )
