"""Supervised fine-tuning: a base model into an assistant, fully or with LoRA.

    workbench run --preset sft-tiny                 # the pretrain-tiny model on built-in tasks
    workbench run --preset sft-smollm2-lora         # LoRA on SmolLM2-135M-Instruct

Loss only on assistant tokens (engines.chat). Held-out task accuracy is measured before
training (the base model's), every `train.sample_every` steps and at the end; both ends go to
the store as `eval` metrics and the `eval` table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pipelines import preflight as check
from pipelines.model_refs import resolve_model
from pipelines.sft_spec import Spec
from pipelines.stage import drive, lineage, made_note
from pipelines.train_events import publish_model, train_config, trainer_events
from store.events import Artifact, Event, Metrics, Note, Progress, Sample, Table

__all__ = ["Spec", "preflight", "run"]


def preflight(spec: Spec, store=None) -> None:
    """Before the run exists: the base model found, conversations readable, device, memory."""
    from engines.chat import record_to_messages
    from engines.errors import UserError
    from engines.model_folders import safetensors_params

    folder = resolve_model(store, spec.model.base)
    if spec.data.path:
        path = Path(spec.data.path)
        check.check_nonempty(path, "data.path")
        for lineno, record in check.jsonl_head(path, "data.path"):
            try:
                record_to_messages(record, f"{path}:{lineno}")
            except UserError as e:
                raise check.SpecError(str(e)) from None
    device = check.check_device(spec.train.device)
    check.check_compile(spec.train.compile, device)
    config = _text_config(folder)
    if not config:
        return
    params = safetensors_params(folder)
    trainable = params // 100 if spec.lora.enabled else None
    if spec.lora.enabled and spec.lora.quantize_base == "nf4":
        from engines.lora import qlora_weight_params

        params = qlora_weight_params(params, config)  # a 4-bit base weighs less
    check.check_memory(
        device, params=params, trainable=trainable,
        batch=spec.train.batch_size, seq_len=spec.data.max_len,
        n_layer=int(config.get("num_hidden_layers", 1)), n_embd=int(config.get("hidden_size", 1)),
        vocab_size=int(config.get("vocab_size", 1)), world_size=check.world_size_env(spec),
    )  # fmt: skip


def _text_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config.get("text_config") or config


def run(spec: Spec, ctx) -> Iterator[Event]:
    import torch

    from engines.chat import ensure_chat_template, set_turn_ends
    from engines.model_folders import load_causal_lm
    from engines.sft_data import SFTBatches, sft_loss
    from engines.trainer import Trainer

    torch.manual_seed(spec.seed)
    base_path = ctx.resolve_model(spec.model.base)
    yield Note(text=f"base model: {spec.model.base} ({base_path})")
    model, tok = load_causal_lm(base_path, device="cpu")
    model.float()
    if ensure_chat_template(tok):
        yield Note(
            text="the base tokenizer has no chat template: using a plain User:/Assistant: one"
        )
    set_turn_ends(model, tok)
    max_len = min(spec.data.max_len, _context(model))
    train_set, val_set = yield from _datasets(spec, tok, max_len, ctx)
    base_eval = None
    if not ctx.resume:
        base_eval = yield from _accuracy_events(model, tok, spec, ctx, "baseline eval")
        yield from _eval_events(0, base_eval, "base model")
    if spec.lora.enabled:
        from engines.lora import apply_lora

        model, share = apply_lora(
            model,
            r=spec.lora.r,
            alpha=spec.lora.alpha,
            dropout=spec.lora.dropout,
            targets=spec.lora.target_modules,
            quantize_base=spec.lora.quantize_base,
        )
        yield Note(text=f"LoRA r={spec.lora.r}: {share:.2%} of parameters train")
        yield Metrics(step=0, values={"trainable_share": share}, split="info")
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    batches = [
        SFTBatches(
            s,
            spec.train.batch_size,
            pad_id=pad,
            seed=spec.seed + i,
            rank=ctx.rank,
            world_size=ctx.world_size,
        )
        for i, s in enumerate((train_set, val_set))
    ]
    trainer = Trainer(
        model,
        train_config(spec.train, spec.seed, ctx.store.cache_dir),
        train_batches=batches[0],
        val_batches=batches[1],
        loss_fn=sft_loss,
        ckpt_root=ctx.checkpoint_dir,
        sample_fn=lambda m, step: (
            [] if step >= spec.train.max_steps else _eval_samples(m, tok, spec, ctx.should_stop)
        ),
    )
    outcome = yield from trainer_events(trainer, ctx)
    if outcome is not None:
        yield outcome
        return
    model = trainer.plain_model()  # every rank: under FSDP the weights gather on rank 0
    if not ctx.is_main:
        return
    final = yield from _accuracy_events(model, tok, spec, ctx, "final eval")
    yield from _eval_events(spec.train.max_steps, final, "fine-tuned model")
    yield Table(name="eval", rows=_eval_rows(base_eval, final))
    yield from _save(spec, ctx, model, tok, base_path, final)
    yield _summary(spec, ctx, base_eval, final)


def _summary(spec: Spec, ctx, base, final) -> Note:
    """The job's last word: what was made, where, the figure that matters, what to try next."""
    figure = "no held-out tasks"
    if final is not None:
        before = f"{base.accuracy:.0%} → " if base is not None else ""
        figure = f"held-out accuracy {before}{final.accuracy:.0%}"
    return made_note(spec, ctx, "assistant", "workbench chat {name}", figure)


def _context(model) -> int:
    return int(getattr(model.config, "max_position_embeddings", 2048) or 2048)


def _conversations(spec: Spec, split: str) -> list[list[dict]]:
    from engines.chat import read_conversations
    from engines.tasks import get_task

    system = [{"role": "system", "content": spec.data.system}] if spec.data.system else []
    convs = []
    tasks = spec.data.tasks if split == "train" else (spec.data.eval_tasks or spec.data.tasks)
    n = spec.data.n_per_task if split == "train" else spec.data.eval_n
    for name in tasks:
        for ex in get_task(name).examples(n, seed=spec.seed, split=split):
            convs.append(
                system
                + [
                    {"role": "user", "content": ex.prompt},
                    {"role": "assistant", "content": ex.answer},
                ]
            )
    if spec.data.path and split == "train":
        convs.extend(system + c for c in read_conversations(spec.data.path))
    return convs


def _datasets(spec: Spec, tok, max_len: int, ctx):
    """Encoded training and held-out conversations (5% of a file when no eval tasks)."""
    train = yield from _encode(_conversations(spec, "train"), "training", tok, max_len, ctx)
    test = _conversations(spec, "test")
    if test:
        val = yield from _encode(test, "held-out", tok, max_len, ctx)
    else:
        k = max(1, len(train) // 20)
        val, train = train[-k:], (train[:-k] if len(train) > k else train)
    n_tok = sum(len(e.ids) for e in train)
    yield Note(
        text=f"data: {len(train)} training conversations ({n_tok} tokens), {len(val)} held out"
    )
    return train, val


ENCODE_CHUNK = 256  # conversations between two progress events / stop checks


def _encode(convs: list[list[dict]], label: str, tok, max_len: int, ctx):
    from engines.chat import encode_conversation
    from engines.errors import UserError
    from pipelines.runner import Cancelled

    encoded = []
    for i, conv in enumerate(convs):
        if i % ENCODE_CHUNK == 0:
            if ctx.should_stop():
                raise Cancelled("stopped while encoding the data")
            yield Progress(step=i, total=len(convs), phase="data", message=f"{label} examples")
        encoded.append(encode_conversation(tok, conv, max_len))
    lost = sum(1 for e in encoded if e.n_target == 0)
    if encoded and lost == len(encoded):
        raise UserError(
            f"all {len(encoded)} {label} examples are longer than the context ({max_len} "
            "tokens) before any assistant token: raise data.max_len or shorten the prompts"
        )
    if lost:
        yield Note(
            level="warning",
            text=f"{lost} {label} example(s) lost every assistant "
            f"token to truncation at {max_len} tokens and are skipped",
        )
    return [e for e in encoded if e.n_target > 0]


def _accuracy_gen(model, tok, spec: Spec):
    """engines.evaluate.iter_task_accuracy on the spec's held-out tasks (None: no tasks)."""
    from engines.evaluate import iter_task_accuracy

    tasks = spec.data.eval_tasks or spec.data.tasks
    if not tasks:
        return None
    return iter_task_accuracy(
        model,
        tok,
        tasks,
        n=spec.data.eval_n,
        seed=spec.seed,
        max_new_tokens=spec.data.eval_max_new_tokens,
        system=spec.data.system,
    )


def _accuracy(model, tok, spec: Spec, should_stop=lambda: False):
    """Held-out accuracy without events; None when there are no tasks or when stopped."""
    gen = _accuracy_gen(model, tok, spec)
    if gen is None:
        return None
    while not should_stop():
        try:
            next(gen)
        except StopIteration as done:
            return done.value
    gen.close()
    return None


def _accuracy_events(model, tok, spec: Spec, ctx, phase: str):
    """Held-out accuracy with a Progress event per batch; stops between batches when asked."""
    gen = _accuracy_gen(model, tok, spec)
    if gen is None:
        return None
    return (yield from drive(ctx, gen, phase, f"stopped during the {phase}"))


def _eval_values(result) -> dict[str, float]:
    values = {"accuracy": result.accuracy, "ended_turn": result.ended_turn}
    values |= {f"accuracy_{k}": v for k, v in result.per_task.items()}
    return values


def _eval_events(step: int, result, label: str) -> Iterator[Event]:
    if result is None:
        return
    yield Metrics(step=step, values=_eval_values(result), split="eval")
    yield Note(
        text=f"{label}: held-out accuracy {result.accuracy:.1%} "
        f"({', '.join(f'{k} {v:.0%}' for k, v in result.per_task.items())}), "
        f"ended its turn {result.ended_turn:.0%}"
    )
    for row in result.transcripts[:3]:
        yield Sample(
            step=step,
            prompt=row["prompt"],
            completion=row["completion"],
            meta={"task": row["task"], "correct": row["correct"], "eval": label},
        )


def _eval_samples(model, tok, spec: Spec, should_stop) -> list[dict]:
    """Called by the trainer every sample_every steps: accuracy plus a few transcripts
    (nothing when the run is stopped meanwhile: the trainer then stops at its next step)."""
    result = _accuracy(model, tok, spec, should_stop)
    if result is None:
        return []
    rows = result.transcripts[:2]
    out = [
        {
            "prompt": r["prompt"],
            "completion": r["completion"],
            "meta": {"task": r["task"], "correct": r["correct"]},
        }
        for r in rows
    ]
    if out:
        out[0]["metrics"] = _eval_values(result)
    return out


def _eval_rows(base, final) -> list[dict]:
    if final is None:
        return []
    rows = []
    for task, acc in final.per_task.items():
        rows.append(
            {
                "task": task,
                "base_accuracy": base.per_task.get(task) if base else None,
                "final_accuracy": acc,
            }
        )
    rows.append(
        {
            "task": "all",
            "base_accuracy": base.accuracy if base else None,
            "final_accuracy": final.accuracy,
        }
    )
    return rows


def _save(spec: Spec, ctx, model, tok, base_path, final) -> Iterator[Event]:
    from engines.lora import merged_model

    meta = lineage(spec.model.base, base_path)
    if spec.lora.enabled:
        adapter = ctx.run_dir / "adapter"
        model.save_pretrained(adapter)
        tok.save_pretrained(adapter)
        yield Artifact(type="adapter", path=str(adapter), meta={"register": False})
        model = merged_model(model)
        meta["adapter"] = str(adapter)
    card = {"final_accuracy": final.accuracy if final else None}
    yield from publish_model(ctx, model, tok, spec=spec, kind="assistant", card=card, meta=meta)
