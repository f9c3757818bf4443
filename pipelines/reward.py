"""Reward modelling: an SFT model's transformer + a scalar head, trained on ranked completions.

    workbench run --preset reward-tiny        # sft-tiny's samples ranked by the task checkers
    workbench reward score reward-tiny --prompt "Is 'level' a palindrome? Answer yes or no." --completion "yes"

Loss −log σ(r_better − r_worse) over every ordered pair of each ranking (InstructGPT), the
score read at the `<|reward|>` token appended to the completion (engines.reward_model).
Held-out pair accuracy and margin are measured before training (the fresh head: chance) and at
the end, and go to the store as `eval` metrics; the model registers as kind `reward`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from pipelines.comparisons import ComparisonData, resolve_path
from pipelines.model_refs import resolve_model
from pipelines.spec import Section, SpecError, TrainSection, redefault
from pipelines.stage import Output, StageSpec, drive, lineage, made_note
from store.events import Event, Metrics, Note, Table

__all__ = ["Spec", "preflight", "run"]


class RewardModelRef(Section):
    base: str = Field(description="the SFT model whose transformer the reward model starts from")


class RewardTrain(TrainSection):
    batch_size: int = redefault(TrainSection, "batch_size", 8)
    max_steps: int = redefault(TrainSection, "max_steps", 150)
    lr: float = redefault(TrainSection, "lr", 3e-4)
    min_lr: float = redefault(TrainSection, "min_lr", 3e-5)
    warmup_steps: int = redefault(TrainSection, "warmup_steps", 10)
    weight_decay: float = redefault(TrainSection, "weight_decay", 0.0)
    eval_every: int = redefault(TrainSection, "eval_every", 50)
    eval_batches: int = redefault(TrainSection, "eval_batches", 4)
    sample_every: int = redefault(TrainSection, "sample_every", 0)
    checkpoint_every: int = redefault(TrainSection, "checkpoint_every", 50)


class Spec(StageSpec):
    pipeline: Literal["reward"] = "reward"
    model: RewardModelRef
    data: ComparisonData
    train: RewardTrain = RewardTrain()
    output: Output = Output()

    def check_files(self, base_dir: Path, where: str) -> None:
        resolve_path(self.data, base_dir, where)


def preflight(spec: Spec, store=None) -> None:
    """Before the run exists: the base model found, the rankings usable, the device there."""
    from pipelines import preflight as check

    resolve_model(store, spec.model.base)
    check_data(spec, store)
    check.check_compile(spec.train.compile, check.check_device(spec.train.device))


def check_data(spec, store) -> None:
    """Every JSONL ranking well-formed; store comparisons present when asked for."""
    from pipelines.comparisons import read_rankings, store_rankings

    if spec.data.path:
        read_rankings(spec.data.path)
    if spec.data.from_store and store is not None and not store_rankings(store)[0]:
        raise SpecError(
            "field 'data.from_store': the store has no comparisons or decisive votes yet — "
            "cast votes in the Arena or give data.path"
        )


def run(spec: Spec, ctx) -> Iterator[Event]:
    import torch

    from engines.reward_model import new_reward_model, ranking_loss
    from engines.trainer import Trainer
    from pipelines.train_events import train_config, trainer_events

    torch.manual_seed(spec.seed)
    base = ctx.resolve_model(spec.model.base)
    train, held = yield from rankings(spec, ctx, base)
    model, tok = new_reward_model(base, seed=spec.seed)
    readout = tok.convert_ids_to_tokens(model.config.readout_token_id)
    yield Note(
        text=f"reward model from {spec.model.base}: readout {readout!r}; "
        f"{len(train)} rankings, {len(held)} held out"
    )
    enc_train, enc_held = encode(tok, train, spec), encode(tok, held, spec)
    kinds = pair_kinds(held)
    before = None if ctx.resume else heldout(model, enc_held, kinds=kinds)
    if before:
        yield Metrics(step=0, values=before, split="eval")
    pad = int(model.config.pad_token_id)
    trainer = Trainer(
        model,
        train_config(spec.train, spec.seed, ctx.store.cache_dir),
        train_batches=_batches(enc_train, spec, ctx, pad, spec.seed),
        val_batches=_batches(enc_held or enc_train, spec, ctx, pad, spec.seed + 1),
        loss_fn=ranking_loss,
        ckpt_root=ctx.checkpoint_dir,
    )
    outcome = yield from trainer_events(trainer, ctx)
    if outcome is not None:
        yield outcome
        return
    model = trainer.plain_model()  # every rank: under FSDP the weights gather on rank 0
    if not ctx.is_main:
        return
    after = heldout(model, enc_held, kinds=kinds)
    yield from _report(spec, before, after, len(enc_held))
    yield from _save(spec, ctx, model, tok, base, after)


def _batches(encoded: list, spec: Spec, ctx, pad: int, seed: int):
    """This process's `train.batch_size` rankings of each global batch (one seed on every
    process: the global batch is drawn alike, each keeps its rows)."""
    from engines.reward_model import RankingBatches
    from pipelines.train_events import RankRows

    rankings = RankingBatches(encoded, spec.train.batch_size * ctx.world_size, pad=pad, seed=seed)
    return RankRows(rankings, ctx.rank, ctx.world_size)


def rankings(spec: Spec, ctx, base: Path):
    """(train, held-out) rankings from the file, the store and the generator."""
    from pipelines.comparisons import read_rankings, split_rankings, store_rankings

    found = []
    if spec.data.path:
        found += read_rankings(spec.data.path)
    if spec.data.from_store:
        stored, skipped = store_rankings(ctx.store)
        found += stored
        yield Note(text=f"store: {len(stored)} rankings ({skipped} tied or both-bad votes skipped)")
    train, held = split_rankings(found, spec.data.heldout_fraction, spec.seed)
    if spec.data.tasks:
        g_train, g_held = yield from generated(spec, ctx, base)
        train, held = train + g_train, held + g_held
    if not train:
        raise SpecError("no training rankings: every generated set was a tie — raise data.k")
    return train, held


def generated(spec: Spec, ctx, base: Path):
    """Rankings sampled from the base (SFT) model on the built-in tasks, checker-ranked."""
    import torch

    from engines.model_folders import load_causal_lm
    from pipelines.comparisons import generate_rankings

    quantize = spec.data.quantize
    lm, tok = load_causal_lm(base, device="cpu", quantize=quantize)
    with torch.no_grad():
        train = yield from _progress(
            ctx,
            generate_rankings(lm, tok, spec.data, split="train", seed=spec.seed),
            "ranking samples",
        )
        held = yield from _progress(
            ctx,
            generate_rankings(lm, tok, spec.data, split="test", seed=spec.seed),
            "held-out samples",
        )
    sizes = [len(r.completions) for r in train]
    weights = "" if quantize == "none" else f" with {quantize} weights"
    yield Note(
        text=f"generated {len(train)} + {len(held)} held-out rankings{weights} on "
        f"{spec.data.tasks} "
        f"(mean {sum(sizes) / max(1, len(sizes)):.1f} distinct completions; checker-ranked: "
        "correct first, then partial credit — a stand-in for human labellers)"
    )
    return train, held


def _progress(ctx, gen, phase: str):
    """Drive a (done, total) generator: a Progress event per step, stop between steps."""
    return drive(ctx, gen, phase, f"stopped while {phase}")


def encode(tok, rankings: list, spec: Spec) -> list[list[list[int]]]:
    """Each ranking as its completions' reward-model ids (over-long ones keep their readout)."""
    from engines.reward_model import readout_id, reward_ids

    rid, cap = readout_id(tok), spec.data.max_len
    out = []
    for r in rankings:
        rows = [reward_ids(tok, r.prompt, c, rid) for c in r.completions]
        out.append([ids if len(ids) <= cap else ids[: cap - 1] + [rid] for ids in rows])
    return out


def pair_kinds(rankings: list) -> list[list[tuple[str, ...]]] | None:
    """Per ranking, each ordered pair's kinds in `pair_stats`' order (i < j, row by row):
    `right_wrong` or `wrong_wrong` where a checker ranked it, and where the generator made the
    ranking `own` (both texts the model's samples) or `made` (the reference against the wrong
    answer made from it: `data.contrast`). None when no ranking carries either."""
    if not any(r.correct or r.own for r in rankings):
        return None
    out = []
    for r in rankings:
        ok, own, n = r.correct or [], r.own or [], len(r.completions)
        kinds = []
        for i in range(n):
            for j in range(i + 1, n):
                k = []
                if ok and not ok[j]:
                    k.append("right_wrong" if ok[i] else "wrong_wrong")
                if own:
                    k += ["own"] if own[i] and own[j] else []
                    k += ["made"] if not own[i] and not own[j] else []
                kinds.append(tuple(k))
        out.append(kinds)
    return out


def heldout(model, encoded: list, batch: int = 8, kinds: list | None = None):
    """Pair accuracy and mean margin over every ordered pair of the held-out rankings; with
    `kinds` (pair_kinds), pair accuracy of each kind of pair apart."""
    import torch

    from engines.reward_model import collate_rankings, pair_stats, rewards_of

    if not encoded:
        return None
    hits = margin = n = 0.0
    by_kind: dict[str, list[float]] = {}  # kind -> [pairs in order, pairs]
    model.eval()
    with torch.no_grad():
        for i in range(0, len(encoded), batch):
            chunk = encoded[i : i + batch]
            b = collate_rankings(chunk, int(model.config.pad_token_id))
            b = {k: v.to(next(model.parameters()).device) for k, v in b.items()}
            r = rewards_of(model, b["input_ids"], b["attention_mask"]).view(b["present"].shape)
            acc, m = pair_stats(r, b["present"])
            pairs = sum(len(x) * (len(x) - 1) / 2 for x in chunk)
            hits, margin, n = hits + float(acc) * pairs, margin + float(m) * pairs, n + pairs
            if kinds is not None:
                _count_kinds(r, chunk, kinds[i : i + batch], by_kind)
    model.train()
    out = {"pair_accuracy": hits / max(1.0, n), "margin": margin / max(1.0, n), "pairs": n}
    for kind, (good, total) in sorted(by_kind.items()):
        out[f"pair_accuracy_{kind}"], out[f"pairs_{kind}"] = good / total, total
    return out


def _count_kinds(rewards, chunk: list, kinds: list, by_kind: dict) -> None:
    for row, (ranking, pair_kinds_) in enumerate(zip(chunk, kinds, strict=True)):
        n, p = len(ranking), 0
        for i in range(n):
            for j in range(i + 1, n):
                for kind in pair_kinds_[p]:
                    tally = by_kind.setdefault(kind, [0.0, 0.0])
                    tally[0] += float(rewards[row, i] > rewards[row, j])
                    tally[1] += 1
                p += 1


PAIR_LABELS = {
    "right_wrong": "right-vs-wrong",
    "wrong_wrong": "wrong-vs-wrong",
    "own": "the model's own samples",
    "made": "reference-vs-made-wrong",
}


def _report(spec: Spec, before, after, n_held: int) -> Iterator[Event]:
    if after is None:
        yield Note(level="warning", text="no held-out rankings: pair accuracy not measured")
        return
    yield Metrics(step=spec.train.max_steps, values=after, split="eval")
    start = f"{before['pair_accuracy']:.1%} → " if before else ""
    apart = "".join(
        f"; {label} {after[f'pair_accuracy_{kind}']:.1%} of {after[f'pairs_{kind}']:.0f}"
        for kind, label in PAIR_LABELS.items()
        if f"pairs_{kind}" in after
    )
    yield Note(
        text=f"held-out pair accuracy {start}{after['pair_accuracy']:.1%} "
        f"({after['pairs']:.0f} pairs from {n_held} rankings{apart}), margin {after['margin']:.3f}"
    )
    rows = [{"when": "before", **before}] if before else []
    yield Table(name="eval", rows=rows + [{"when": "after", **after}])


def _save(spec: Spec, ctx, model, tok, base: Path, after) -> Iterator[Event]:
    from transformers import GenerationConfig

    from engines.vocab import REWARD
    from pipelines.train_events import publish_model

    model.generation_config = GenerationConfig()  # publish_model saves one; harmless here
    meta = lineage(spec.model.base, base) | {"readout_token": REWARD}
    card = {"heldout_pair_accuracy": after["pair_accuracy"] if after else None,
            "readout_token": REWARD}  # fmt: skip
    yield from publish_model(ctx, model, tok, spec=spec, kind="reward", card=card, meta=meta)
    prompt, answer = "What is 2 + 2?", "4"
    if spec.data.tasks:  # a question of the kind the model was trained to judge
        from engines.tasks import get_task

        ex = get_task(spec.data.tasks[0]).examples(1, seed=0, split="test")[0]
        prompt, answer = ex.prompt, ex.answer
    args = f"--prompt {json.dumps(prompt)} --completion {json.dumps(answer)}"
    try_it = "workbench reward score {name} " + args.replace("{", "{{").replace("}", "}}")
    yield made_note(spec, ctx, "reward", try_it)
