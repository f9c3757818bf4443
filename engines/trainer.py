"""The trainer core shared by pretraining, SFT, reward modelling and DPO.

A `Trainer` owns the optimizer (AdamW), the warmup + cosine schedule, gradient accumulation
and clipping, bf16 autocast on CUDA (fp32 on CPU), optional torch.compile, DDP or FSDP2
(`parallel = "fsdp"`) under torchrun, periodic eval, samples and atomic checkpoints. A sharded
model's checkpoints hold the full state dict, written by rank 0: the same files a single
process writes, so the model folder loads with `from_pretrained`. `train()` is a generator of plain dict records:

    trainer = Trainer(model, cfg, train_batches=batches,
                      loss_fn=causal_lm_loss, ckpt_root="runs/x/checkpoints")
    for record in trainer.train(should_stop=stop_flag.is_set, resume=True):
        print(record)  # {"type": "metrics", "step": 10, "split": "train", "values": {...}}

Batches objects have `next_batch()` (a tuple or dict of tensors), `state_dict()` and
`load_state_dict()`. `loss_fn(model, batch) -> (loss, extra_metrics)`; the model it gets may be
wrapped (DDP, compile), so it should only call it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from engines import attention
from engines import distributed as D
from engines.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from engines.errors import UserError
from engines.lm_loss import lm_loss
from engines.model import flops_per_token as model_flops_per_token
from engines.perf import Throughput, best_peak_flops, mfu, raise_peak

Batch = Any  # a tuple/list or dict of tensors
LossFn = Callable[[nn.Module, Batch], tuple[Tensor, dict]]


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping settings; saved with every checkpoint.

    The fields a job spec sets have no defaults here: their defaults, ranges and meanings are
    declared once, in the spec's train section (pipelines.spec.TrainSection), which builds this.
    """

    max_steps: int
    lr: float
    min_lr: float
    warmup_steps: int
    weight_decay: float
    grad_clip: float  # 0: no clipping (the norm is still checked)
    grad_accum: int
    eval_every: int  # 0: only before training and at the end
    eval_batches: int
    sample_every: int  # 0: never
    checkpoint_every: int  # 0: only when stopped and at the end
    keep_checkpoints: int
    log_every: int
    compile: bool
    device: str  # "auto" | "cpu" | "cuda"
    betas: tuple[float, float] = (0.9, 0.95)
    seed: int = 0
    peak_flops: float | None = None  # None: measured with a matmul on the device
    peak_cache: str | None = None  # a JSON file keeping the best peak seen on this machine
    parallel: str = "ddp"  # "ddp" | "fsdp": how several processes share the model


class _Saved:
    """A state dict already gathered, handed to save_checkpoint as its optimizer."""

    def __init__(self, state: dict) -> None:
        self.state = state

    def state_dict(self) -> dict:
        return self.state


class WarmupCosine:
    """LR multiplier: linear warmup to 1, then cosine down to min_ratio at max_steps."""

    def __init__(self, warmup_steps: int, max_steps: int, min_ratio: float) -> None:
        self.warmup_steps, self.max_steps, self.min_ratio = warmup_steps, max_steps, min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.max_steps - self.warmup_steps))
        return self.min_ratio + 0.5 * (1.0 - self.min_ratio) * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on ≥2-D parameters only, fused kernels on CUDA and CPU."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=fused)


def causal_lm_loss(model: nn.Module, batch: Batch) -> tuple[Tensor, dict]:
    """Next-token loss for a batch (x, y) or {"input_ids", "labels"} of (B, T) ids."""
    x, y = (batch["input_ids"], batch["labels"]) if isinstance(batch, dict) else batch
    return lm_loss(model, x, y), {}


def _first_tensor(batch: Batch) -> Tensor:
    if isinstance(batch, dict):
        return batch["input_ids"] if "input_ids" in batch else next(iter(batch.values()))
    return batch[0]


def _to_device(batch: Batch, device: torch.device) -> Batch:
    if device.type == "cpu":
        return batch
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch.to(device, non_blocking=True) if isinstance(batch, Tensor) else batch


class Trainer:
    """One training run of `model` on `train_batches`; see the module docstring."""

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        *,
        train_batches: Any,
        val_batches: Any = None,
        loss_fn: LossFn,
        ckpt_root: Any,
        sample_fn: Callable[[nn.Module, int], list[dict]] | None = None,
        flops_per_token: float | None = None,
        data_state_fn: Callable[[], dict] | None = None,
    ) -> None:
        self.cfg, self.loss_fn, self.ckpt_root = cfg, loss_fn, ckpt_root
        self.train_batches, self.val_batches = train_batches, val_batches
        self.sample_fn, self.data_state_fn = sample_fn, data_state_fn
        self.device = D.pick_device(cfg.device, D.local_rank())
        self.is_main = D.rank() == 0
        self.model = model.to(self.device)  # checkpoints and samples (sharded under FSDP)
        self.sharded = cfg.parallel == "fsdp" and D.is_distributed()
        if self.sharded:
            D.shard_model(self.model)  # in place, before compile and the optimizer
        attention.use_for_training(self.model)  # CPU: causal attention off torch's flash path
        self.fwd_model = torch.compile(self.model) if cfg.compile else self.model
        self.train_model = (
            self.fwd_model if self.sharded else D.wrap_model(self.fwd_model, self.device)
        )
        self.optimizer = build_optimizer(self.model, cfg, self.device)
        ratio = cfg.min_lr / cfg.lr if cfg.lr > 0 else 0.0
        schedule = WarmupCosine(cfg.warmup_steps, cfg.max_steps, ratio)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.flops_per_token = flops_per_token
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self._val_start = self._snapshot(val_batches)
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if self.device.type == "cuda"
            else nullcontext()
        )
        self.step, self.tokens_seen = 0, 0
        self.rows: int | None = None  # rows of this process's micro-batch (once one is drawn)
        self.last_val: dict[str, float] = {}  # the latest validation means ({"loss": ...})
        self.resumed: dict | None = None  # what load_checkpoint returned, after a resume

    # ---- the loop -------------------------------------------------------------------------

    def train(
        self, should_stop: Callable[[], bool] = lambda: False, resume: bool = False
    ) -> Iterator[dict]:
        """Run to max_steps (or until should_stop), yielding metrics/sample/checkpoint records."""
        cfg = self.cfg
        if not (resume and self._resume()):
            torch.manual_seed(cfg.seed + D.rank())
            yield from self._evaluate()
        self.model.train()
        self.peak = cfg.peak_flops or best_peak_flops(self.device, cfg.peak_cache)
        self._reset_interval()
        asked = False  # this process was asked to stop (checked after each step)
        while self.step < cfg.max_steps:
            reason, agreed = self._train_step(asked)
            if reason is not None:
                yield {"type": "diverged", "step": self.step + 1, "reason": reason}
                return
            self.step += 1
            yield {"type": "progress", "step": self.step, "total": cfg.max_steps}
            last, asked = self.step == cfg.max_steps, should_stop()
            # Alone, a request stops after this step. With several processes, a request
            # seen after step N is agreed in step N+1's sync, and every rank stops after it.
            stop = agreed if D.is_distributed() else asked
            if self.step % cfg.log_every == 0 or last or stop:
                yield self._train_metrics()
            yield from self._periodic(last, stop)
            if stop and not last:
                yield {"type": "stopped", "step": self.step}
                return

    def _periodic(self, last: bool, stop: bool) -> Iterator[dict]:
        """Eval, samples and checkpoint when due; their time is left out of tokens/s."""
        cfg, step, busy = self.cfg, self.step, False
        if last or (cfg.eval_every and step % cfg.eval_every == 0):
            busy = True
            yield from self._evaluate()
        if self.sample_fn and cfg.sample_every and (last or step % cfg.sample_every == 0):
            busy = True
            yield from self._samples()
        if last or stop or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
            busy = True
            yield from self._checkpoint()
        if busy:
            self.throughput.restart()

    def _train_step(self, asked: bool) -> tuple[str | None, bool]:
        """One optimizer step over grad_accum micro-batches: (a reason string if not finite,
        whether any rank was `asked` to stop). Both are agreed by every rank in the step's
        one sync, so a signal that reached one process (`runs stop` signals rank 0) stops
        them all at the same step, and none waits forever in a collective the others left."""
        accum, model = self.cfg.grad_accum, self.train_model
        step_loss, n_tokens = None, 0
        for micro in range(accum):
            batch = _to_device(self.train_batches.next_batch(), self.device)
            tokens = _first_tensor(batch)
            n_tokens += tokens.numel()
            self.rows = tokens.shape[0]  # this process's rows of a micro-batch
            if self.flops_per_token is None:
                self.flops_per_token = self._guess_flops(tokens.shape[-1])
            sync = (
                model.no_sync()
                if micro < accum - 1 and hasattr(model, "no_sync")
                else nullcontext()
            )
            with sync:
                with self.autocast:
                    loss, extra = self.loss_fn(model, batch)
                (loss / accum).backward()
            step_loss = loss.detach() if step_loss is None else step_loss + loss.detach()
            self._accumulate(extra)
        step_loss = step_loss / accum
        total_norm = torch.nn.utils.get_total_norm(
            [p.grad for p in self.params if p.grad is not None]
        )  # a replicated DTensor under FSDP: the clip needs it so
        grad_norm = D.local_value(total_norm)
        finite = torch.isfinite(step_loss) & torch.isfinite(grad_norm)
        go_on = torch.tensor(0.0 if asked else 1.0, device=finite.device)
        # the one sync per step: every rank finite, and no rank asked to stop
        all_finite, no_stop = D.all_reduce_min(torch.stack([finite.float(), go_on])).tolist()
        if not all_finite:
            self.optimizer.zero_grad(set_to_none=True)
            reason = f"non-finite loss ({step_loss.item()}) or gradient norm ({grad_norm.item()})"
            return reason, False
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grads_with_norm_(self.params, self.cfg.grad_clip, total_norm)
        self.last_lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.loss_sum = self.loss_sum + step_loss
        self.grad_norm, self.steps_in_interval = grad_norm, self.steps_in_interval + 1
        self.throughput.add(n_tokens)
        self.tokens_seen += n_tokens * D.world_size()
        return None, not no_stop

    def _accumulate(self, extra: dict) -> None:
        for k, v in extra.items():
            v = v.detach().float() if isinstance(v, Tensor) else float(v)
            self.extra_sum[k] = self.extra_sum.get(k, 0.0) + v

    def _reset_interval(self) -> None:
        self.loss_sum = torch.zeros((), device=self.device)
        self.extra_sum: dict[str, Any] = {}
        self.steps_in_interval = 0
        self.throughput = Throughput(self.device)

    # ---- records ---------------------------------------------------------------------------

    def _train_metrics(self) -> dict:
        n = max(1, self.steps_in_interval)
        names = ["loss", *self.extra_sum]
        sums = [
            self.loss_sum / n,
            *(self._as_tensor(v) / (n * self.cfg.grad_accum) for v in self.extra_sum.values()),
        ]
        means = D.all_reduce_mean(torch.stack(sums)).tolist()
        tokens_per_s = self.throughput.rate() * D.world_size()
        values = dict(zip(names, means))
        values.update(
            lr=self.last_lr,
            grad_norm=float(self.grad_norm),
            tokens_per_s=tokens_per_s,
            tokens=float(self.tokens_seen),
        )
        if self.flops_per_token:
            achieved = self.flops_per_token * tokens_per_s / D.world_size()  # FLOP/s per device
            self.peak = raise_peak(self.device, self.cfg.peak_cache, achieved, self.peak)
            values["mfu"] = mfu(self.flops_per_token, tokens_per_s, self.peak * D.world_size())
        self._reset_interval()
        return {"type": "metrics", "step": self.step, "split": "train", "values": values}

    def _as_tensor(self, v: Any) -> Tensor:
        return v.to(self.device) if isinstance(v, Tensor) else torch.tensor(v, device=self.device)

    @torch.no_grad()
    def _evaluate(self) -> Iterator[dict]:
        """Mean loss (and extra metrics) over eval_batches from the same starting position."""
        if self.val_batches is None or self.cfg.eval_batches < 1:
            return
        if self._val_start is not None:
            self.val_batches.load_state_dict(copy.deepcopy(self._val_start))
        self.fwd_model.eval()
        sums: dict[str, Tensor] = {}
        for _ in range(self.cfg.eval_batches):
            batch = _to_device(self.val_batches.next_batch(), self.device)
            with self.autocast:
                loss, extra = self.loss_fn(self.fwd_model, batch)
            for k, v in {"loss": loss, **extra}.items():
                sums[k] = sums.get(k, 0.0) + self._as_tensor(v).detach().float()
        self.fwd_model.train()
        means = D.all_reduce_mean(torch.stack(list(sums.values())) / self.cfg.eval_batches)
        self.last_val = dict(zip(sums, means.tolist()))
        yield {"type": "metrics", "step": self.step, "split": "val", "values": self.last_val}

    def _samples(self) -> Iterator[dict]:
        model = self.plain_model()  # every rank gathers under FSDP; rank 0 samples
        if not self.is_main:
            return
        model.eval()
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            samples = self.sample_fn(model, self.step)
        model.train()
        for sample in samples:
            yield {"type": "sample", "step": self.step, **sample}

    # ---- checkpoints -----------------------------------------------------------------------

    def plain_model(self) -> nn.Module | None:
        """The trained model as a plain module: `self.model`, or under FSDP an unsharded copy
        on rank 0 (None on the others). Collective under FSDP: every rank calls it."""
        if not self.sharded:
            return self.model
        state = D.full_state_dict(self.model)
        return D.plain_copy(self.model, state).to(self.device) if self.is_main else None

    def _checkpoint(self) -> Iterator[dict]:
        trains = D.all_gather_object(self._snapshot(self.train_batches))  # rank order
        model, optimizer = self.model, self.optimizer
        if self.sharded:  # full state dicts, gathered on rank 0: a single process's files
            model = self.plain_model()
            optimizer = _Saved(D.full_optimizer_state(self.model, self.optimizer))
        if self.is_main:
            path = save_checkpoint(
                self.ckpt_root,
                self.step,
                model=model,
                optimizer=optimizer,
                scheduler=self.scheduler,
                data_state=self._data_state(trains),
                counters={"step": self.step, "tokens": self.tokens_seen},
                extra={
                    "train_config": asdict(self.cfg),
                    "world_size": D.world_size(),
                    "global_rows": self.rows * D.world_size() if self.rows else None,
                },
                keep=self.cfg.keep_checkpoints,
            )
            yield {"type": "checkpoint", "step": self.step, "path": str(path)}
        D.barrier()

    def _data_state(self, trains: list) -> dict:
        """{"train": position, **data_state_fn()}; every rank's position when there are several."""
        state = dict(self.data_state_fn()) if self.data_state_fn is not None else {}
        state["train"] = trains[0]
        if len(trains) > 1:
            state["train_per_rank"] = trains
        return state

    def _resume(self) -> bool:
        """Load the newest complete checkpoint; False when there is none."""
        path = latest_checkpoint(self.ckpt_root)
        if path is None:
            return False
        if self.sharded:  # every rank reads the full state, then keeps its shard
            plain = D.empty_copy(self.model)
            state = load_checkpoint(path, model=plain, scheduler=self.scheduler)
            D.load_full_state(self.model, plain.state_dict())
            saved = torch.load(path / "optimizer.pt", weights_only=True)
            D.load_full_optimizer_state(self.model, self.optimizer, saved)
        else:
            state = load_checkpoint(
                path, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler
            )
        data_state = state["data_state"]
        per_rank = data_state.get("train_per_rank", [data_state.get("train")])
        if len(per_rank) == D.world_size():
            train_state = per_rank[D.rank()]
        else:
            train_state = self._global_position(path, state, per_rank)
        if train_state is not None:
            self.train_batches.load_state_dict(train_state)
        self.step = state["counters"]["step"]
        self.tokens_seen = state["counters"].get("tokens", 0)
        self.resumed = {**state, "path": str(path)}
        return True

    def _global_position(self, path: Any, state: dict, per_rank: list) -> Any:
        """The data position of a checkpoint written by another number of processes.

        Honoured when it is one global position: every process of the saved job and of this
        one holds the same loader state (each draws the same global batch and keeps its own
        rows, as `MixtureBatches` does) and the global batch is unchanged (rows of a
        micro-batch × processes, and grad_accum); the job then continues the same sample
        order. Otherwise refused, naming why. Every rank calls it (a collective)."""
        saved_world, world = len(per_rank), D.world_size()
        fresh = D.all_gather_object(self._snapshot(self.train_batches))
        extra = state.get("extra") or {}
        old_ga = (extra.get("train_config") or {}).get("grad_accum", 1)
        old_rows, why = extra.get("global_rows"), None
        if not all(_same(s, per_rank[0]) for s in per_rank) or not all(
            _same(s, fresh[0]) for s in fresh
        ):
            why = "its data loader keeps a position per process"
        elif not old_rows:
            why = "it does not record its global batch"
        else:
            rows = self._peek_rows()
            if old_rows != rows * world or old_ga != self.cfg.grad_accum:
                fix = ""
                if old_rows % world == 0 and old_ga == self.cfg.grad_accum:
                    fix = f" — set train.batch_size = {old_rows // world}, or"
                why = (
                    f"its global batch was {old_rows} sequences × grad_accum {old_ga}, this "
                    f"job's is {world} × {rows} × grad_accum {self.cfg.grad_accum}, so the "
                    f"same samples cannot follow{fix}"
                )
        if why is not None:
            sep = "" if why.endswith("or") else ";"
            raise UserError(
                f"checkpoint {path} was written by {saved_world} processes and this job has "
                f"{world}: {why}{sep} resume it with {saved_world} processes"
            )
        return per_rank[0]

    def _peek_rows(self) -> int:
        """Rows of this process's next micro-batch, the loader's position left as it was."""
        position = self._snapshot(self.train_batches)
        rows = _first_tensor(self.train_batches.next_batch()).shape[0]
        self.train_batches.load_state_dict(position)
        return rows

    @staticmethod
    def _snapshot(batches: Any) -> dict | None:
        return copy.deepcopy(batches.state_dict()) if hasattr(batches, "state_dict") else None

    def _guess_flops(self, seq_len: int) -> float:
        """6N + 12LHQT for transformers causal LMs; 0 (no MFU) for anything else."""
        try:
            return model_flops_per_token(self.model, seq_len=seq_len)
        except (AttributeError, TypeError):
            return 0.0


def _same(a: Any, b: Any) -> bool:
    """Equal nested states (dicts, lists, tensors, numpy arrays, plain values)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return isinstance(a, Tensor) and isinstance(b, Tensor) and torch.equal(a, b)
    if hasattr(a, "shape") or hasattr(b, "shape"):  # numpy arrays
        import numpy as np

        return bool(np.array_equal(a, b))
    return bool(a == b)
