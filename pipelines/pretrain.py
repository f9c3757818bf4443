"""Pretraining: data mixture → BPE tokenizer → packed B×T batches → a GPT trained from scratch.

    workbench run --preset pretrain-tiny
    workbench data inspect my-pretrain.toml

The run ends with an HF model folder (`runs/<id>/model`) that loads with plain
`AutoModelForCausalLM.from_pretrained`, registered in the store with its lineage.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipelines import preflight as check
from pipelines.pretrain_data import prepare_data
from pipelines.pretrain_spec import SourceSpec, Spec
from pipelines.train_events import publish_model, train_config, trainer_events
from store.events import Event, Note, Progress, RunFinished, Table

__all__ = ["Spec", "inspect", "preflight", "run"]


def preflight(spec: Spec, store=None) -> None:
    """Before the run exists: data files readable and large enough, device, memory (per
    process, split over the processes under train.parallel = "fsdp")."""
    T = spec.train.seq_len or spec.model.block_size
    for i, src in enumerate(spec.data.sources):
        _check_source(src, f"data.sources.{i}", T + 1)
    device = check.check_device(spec.train.device)
    check.check_compile(spec.train.compile, device)
    check.check_fits(
        check.training_shape(spec, store), device,
        world_size=check.world_size_env(spec), parallel=spec.train.parallel,
    )  # fmt: skip


def _check_source(src: SourceSpec, field: str, window: int) -> None:
    if src.kind == "glob":
        check.check_glob(src.glob, f"{field}.glob")
    if src.kind not in ("file", "jsonl") or not src.path:
        return
    path = Path(src.path)
    size = check.check_nonempty(path, f"{field}.path")
    if src.kind == "jsonl":
        check.check_text_field(path, src.text_field, f"{field}.path")
    check.check_enough_tokens(size + 1, window, src.label, f"{field}.path")


def run(spec: Spec, ctx) -> Iterator[Event]:
    import torch

    from engines import model as M
    from engines.distributed import barrier
    from engines.packing import MixtureBatches
    from engines.trainer import Trainer, causal_lm_loss

    torch.manual_seed(spec.seed)
    _check_resume_data(spec, ctx)
    data = yield from _data(spec, ctx, barrier)
    tok = data.tokenizer
    T = spec.train.seq_len or spec.model.block_size
    size = M.ModelSize(
        n_layer=spec.model.n_layer,
        n_head=spec.model.n_head,
        n_embd=spec.model.n_embd,
        block_size=spec.model.block_size,
        vocab_size=len(tok),
        n_kv_head=spec.model.n_kv_head,
    )
    model = M.build_model(size, seed=spec.seed, **_special_ids(tok))
    yield Note(text=f"model: {M.describe(size)}")
    _check_resume(spec, ctx, size, data.key)
    train = MixtureBatches(
        data.paths("train"),
        data.weights,
        spec.train.batch_size,
        T,
        seed=spec.seed,
        dtype=data.dtype,
        rank=ctx.rank,
        world_size=ctx.world_size,
    )
    val = _val_batches(spec, data, T, ctx)
    if val is None:
        yield Note(
            level="warning",
            text="no source has enough held-out tokens for a "
            f"validation batch of {T + 1}: val_loss is not measured (raise data.val_fraction)",
        )
    trainer = Trainer(
        model,
        train_config(spec.train, spec.seed, ctx.store.cache_dir),
        train_batches=train,
        val_batches=val,
        loss_fn=causal_lm_loss,
        ckpt_root=ctx.checkpoint_dir,
        sample_fn=_sampler(tok, spec),
        flops_per_token=M.flops_per_token(size, T),
        data_state_fn=lambda: {
            "model_config": dict(size.__dict__),
            "data_key": data.key,
            "data_files": data.files,
        },
    )
    outcome = yield from trainer_events(trainer, ctx)
    if outcome is not None:
        yield outcome
        return
    yield Table(name="mixture", rows=data.report(train.drawn_shares(), train.tokens_drawn))
    model = trainer.plain_model()  # every rank: under FSDP the weights gather on rank 0
    if ctx.is_main:
        yield from _save(spec, ctx, model, tok, data, trainer.last_val)


def _val_batches(spec: Spec, data, T: int, ctx):
    """Validation windows from every source with at least T+1 held-out tokens (None if none)."""
    from engines.packing import MixtureBatches

    ok = {s["source"] for s in data.sources if s["tokens_val"] > T + 1}
    if not ok:
        return None
    paths = {k: v for k, v in data.paths("val").items() if k in ok}
    weights = {k: v for k, v in data.weights.items() if k in ok}
    return MixtureBatches(
        paths,
        weights,
        spec.train.batch_size,
        T,
        seed=spec.seed + 1,
        dtype=data.dtype,
        rank=ctx.rank,
        world_size=ctx.world_size,
    )


def _data(spec: Spec, ctx, barrier):
    """Tokenizer and shards, prepared once by rank 0 and cached by content."""
    cache = ctx.store.cache_dir / "data"
    if ctx.is_main:
        data = yield from prepare_data(spec, cache, ctx.store, ctx.should_stop)
    if ctx.world_size > 1:
        barrier()
    if not ctx.is_main:
        gen = prepare_data(spec, cache, ctx.store, ctx.should_stop)
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            data = stop.value
    yield Table(name="sources", rows=data.source_rows())
    return data


def _special_ids(tok) -> dict[str, int]:
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    return {"eos_id": tok.eos_token_id, "pad_id": tok.pad_token_id, "bos_id": bos}


def _sampler(tok, spec: Spec):
    """Samples from fixed prompts with a fixed seed, so they are comparable across steps."""

    def sample(model, step: int) -> list[dict]:
        from engines.generate import SamplingParams, generate

        params = SamplingParams(
            max_new_tokens=spec.train.sample_tokens,
            temperature=0.8,
            top_k=50,
            seed=spec.seed,
            stop_at_eos=True,
        )
        gens = generate(model, tok, list(spec.train.sample_prompts), params)
        return [
            {"prompt": p, "completion": g.text} for p, g in zip(spec.train.sample_prompts, gens)
        ]

    return sample


def _checkpoint_data_state(ctx) -> tuple[str | None, dict]:
    """(checkpoint name, its data_state) of the newest complete checkpoint when resuming."""
    if not ctx.resume:
        return None, {}
    import torch

    from engines.checkpoint import latest_checkpoint

    ckpt = latest_checkpoint(ctx.checkpoint_dir)
    if ckpt is None:
        return None, {}
    return ckpt.name, torch.load(ckpt / "state.pt", weights_only=True)["data_state"]


def _check_resume_data(spec: Spec, ctx) -> None:
    """Refuse, before any data preparation, to resume on data files that changed."""
    from engines.errors import UserError
    from pipelines.pretrain_data import data_files, files_diff

    name, saved = _checkpoint_data_state(ctx)
    if "data_files" not in saved:
        return
    diffs = files_diff(saved["data_files"], data_files(spec))
    if diffs:
        raise UserError(
            f"cannot resume {ctx.run_id} from {name}: the data changed since it was "
            "written — " + "; ".join(diffs) + " (start a new run to train on the new data)"
        )


def _check_resume(spec: Spec, ctx, size, data_key: str) -> None:
    """Refuse to resume when the model shape or the tokenizer/data changed since the checkpoint."""
    from engines.errors import UserError

    name, saved = _checkpoint_data_state(ctx)
    if name is None:
        return
    diffs = [
        f"model.{k}: {v} → {size.__dict__.get(k)}"
        for k, v in saved.get("model_config", {}).items()
        if size.__dict__.get(k) != v
    ]
    if saved.get("data_key") not in (None, data_key):
        diffs.append("tokenizer/data: the tokenizer settings or the data mixture changed")
    if diffs:
        raise UserError(f"cannot resume {ctx.run_id} from {name}: " + "; ".join(diffs))


def _save(spec: Spec, ctx, model, tok, data, last_val: dict) -> Iterator[Event]:
    tokenizer = spec.tokenizer.from_model or "byte-level BPE (trained here)"
    val_loss = last_val.get("loss")
    yield from publish_model(
        ctx,
        model,
        tok,
        spec=spec,
        kind="base",
        card={"data": data.source_rows(), "final_val_loss": val_loss},
        meta={"tokenizer": tokenizer, "data": data.source_rows(), "final_val_loss": val_loss},
    )
    name = spec.output.model_name or ctx.run_id
    figure = f"final validation loss {val_loss:.3f}" if val_loss is not None else "no val loss"
    yield Note(
        text=f"made base model {name!r} in {ctx.run_dir / 'model'}: {figure}. Try it: "
        f'workbench generate {name} "Once upon a time" — or fine-tune it into an '
        f"assistant: workbench run --preset sft-tiny --set model.base={name}"
    )


def inspect(spec: Spec, ctx, draws: int = 4000) -> Iterator[Event]:
    """Per source: documents, bytes, tokens, weight, drawn share, epochs — without training."""
    from engines.packing import MixtureBatches

    data = yield from prepare_data(spec, ctx.store.cache_dir / "data", ctx.store, ctx.should_stop)
    T = spec.train.seq_len or spec.model.block_size
    batches = MixtureBatches(
        data.paths("train"), data.weights, 1, T, seed=spec.seed, dtype=data.dtype
    )
    for i in range(draws):
        batches.next_batch()
        if i % 500 == 0:
            yield Progress(step=i, total=draws, phase="drawing")
    yield Table(name="mixture", rows=data.report(batches.drawn_shares(), batches.tokens_drawn))
    yield RunFinished(status="done")
