"""Cheap checks a job passes before its run exists: data readable and big enough, the device
present, the model fitting in memory. Each failure is a SpecError (exit 2) that names the
field and the fix, raised before anything is written — no run folder, no failed run.

A stage module declares `preflight(spec, store)` built from these; `registry.preflight(job)`
calls it and `runner.prepare_run` calls that first.

Memory has one rule, used by the stages and by `workbench run --dry-run`:

    shape = training_shape(spec, store)      # what the job trains (model folders read, not loaded)
    result = fit(shape, device, world_size=4, parallel="fsdp")   # per rank, by part; .fits
    check_fits(shape, device, ...)           # SpecError: the estimate and what to change

A rank needs its weights, gradients and AdamW state (split over the ranks under FSDP), its
activations and the process's runtime; the ranks that share a device's memory (all of them
on one CPU host, one a GPU) must fit in what it has free.
"""

from __future__ import annotations

import glob as globlib
import itertools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engines.memory import TrainingMemory, gpu_present, human_bytes, training_memory
from pipelines.spec import FSDP_PIPELINES, SpecError

HEAD_LINES = 5  # JSONL lines read to check a file's shape


def check_device(device: str, field: str = "train.device") -> str:
    """The device a job will use ("cpu" | "cuda"); refuses "cuda" where no GPU is visible."""
    if device == "cpu":
        return "cpu"
    if not gpu_present():
        if device == "cuda":
            raise SpecError(
                f"field {field!r}: 'cuda' but this machine has no GPU — "
                'set train.device = "auto" (or "cpu")'
            )
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise SpecError(
            f"field {field!r}: 'cuda' but torch sees no usable GPU (a CPU build of torch, or "
            'the driver) — set train.device = "auto" (or "cpu")'
        )
    return "cpu"


def cxx_name() -> str:
    """The C++ compiler torch's inductor runs on Linux: $CXX, else g++."""
    import os

    return os.environ.get("CXX") or "g++"


def cxx_compiler() -> str | None:
    """The path of that compiler, or None where it is not on the PATH."""
    import shutil

    return shutil.which(cxx_name().split()[0])


def check_compile(compile: bool, device: str, field: str = "train.compile") -> None:
    """torch.compile on a CPU writes C++ and builds it: refuses `compile` without a compiler."""
    if not compile or device != "cpu" or cxx_compiler() is not None:
        return
    raise SpecError(
        f"field {field!r}: true, but torch.compile on the CPU needs a C++ compiler and "
        f"{cxx_name()!r} is not on the PATH — install one (e.g. g++), point CXX at it, or set "
        f"{field} = false"
    )


def check_memory(
    device: str,
    *,
    params: int,
    trainable: int | None = None,
    parallel: str = "ddp",
    world_size: int | None = None,
    **shape: int,
) -> None:
    """Refuse a job whose estimated training memory exceeds what `device` has free.

    `world_size` defaults to torchrun's WORLD_SIZE (1 without it); under FSDP the weights,
    gradients and optimizer state are split over the processes."""
    train = TrainShape(
        pipeline="",
        params=params,
        trainable=params if trainable is None else trainable,
        sequences=shape["batch"],
        seq_len=shape["seq_len"],
        n_layer=shape["n_layer"],
        n_embd=shape["n_embd"],
        vocab_size=shape["vocab_size"],
        lora=None if trainable is None else True,
    )
    check_fits(train, device, world_size=world_size or world_size_env(), parallel=parallel)


# ---- the one memory rule: a training shape, its estimate per rank, what a device has free ----

PROMPT_TOKENS = 64  # assumed prompt length of RL rollouts (grpo, ppo): no spec field bounds it
RUNTIME_BYTES = {"cpu": 450 * 2**20, "cuda": 1024 * 2**20}  # per process: see runtime_bytes
LORA_SUGGESTED = (8, ("q_proj", "v_proj"))  # the LoRA the refusal suggests (r, targets)


@dataclass(frozen=True)
class TrainShape:
    """What a job trains, as the memory and compute estimates need it."""

    pipeline: str
    params: int  # of the trained model (base + adapter under LoRA)
    trainable: int  # of those, the ones with gradients and optimizer state
    sequences: int  # per micro-batch and rank
    seq_len: int
    n_layer: int
    n_embd: int
    vocab_size: int  # of the LM head (0: no LM logits, e.g. a reward model's score head)
    frozen_params: int = 0  # other models held in memory (reference, reward model)
    lora: bool | None = None  # None: the stage has no LoRA option
    lora_suggested: int | None = None  # trainable parameters LORA_SUGGESTED would give
    seq_field: str = "train.seq_len"  # the spec field that sets seq_len
    grad_accum: int = 1  # train.grad_accum
    sequences_per_row: int = 1  # sequences per train.batch_size row (DPO 2, reward k, GRPO G)
    notes: tuple[str, ...] = ()  # assumptions behind the numbers
    weight_params: int | None = None  # the weights' memory in fp32 parameters (QLoRA's 4-bit
    # base is smaller than `params`, which compute still counts); None: `params`

    @property
    def batch(self) -> int:
        """train.batch_size."""
        return self.sequences // self.sequences_per_row

    def memory(self, device: str, shards: int = 1) -> TrainingMemory:
        """Per-rank training memory on `device` (bf16 activations on CUDA, fp32 on CPU)."""
        return training_memory(
            params=self.params if self.weight_params is None else self.weight_params,
            trainable=self.trainable, frozen_params=self.frozen_params,
            batch=self.sequences, seq_len=self.seq_len, n_layer=self.n_layer,
            n_embd=self.n_embd, vocab_size=self.vocab_size,
            activation_bytes=2 if device == "cuda" else 4, shards=shards,
        )  # fmt: skip


@dataclass(frozen=True)
class Fit:
    """A shape's per-rank estimate against a device: the one rule every refusal uses."""

    device: str
    world_size: int
    parallel: str
    memory: TrainingMemory  # per rank
    runtime: int  # per process: torch and the libraries' resident memory (CUDA: the context)
    ranks_here: int  # processes sharing this device's memory (all of them on one CPU host)
    available: int | None

    @property
    def per_rank(self) -> int:
        return self.memory.total + self.runtime

    @property
    def need(self) -> int:
        """Bytes the device must have free: per rank, times the ranks that share it."""
        return self.per_rank * self.ranks_here

    @property
    def fits(self) -> bool:
        return self.available is None or self.need <= self.available


def runtime_bytes(device: str) -> int:
    """Resident memory of a job process besides what it trains: the interpreter with torch,
    transformers and tokenizers imported, the data pipeline and the peak-FLOPs matmul (CPU:
    a pretrain job of a 1-layer model peaked at 0.45 GB on Linux x86-64), or the CUDA
    context and the cuBLAS workspace (GPU; an assumption, not measured here)."""
    return RUNTIME_BYTES["cuda" if device == "cuda" else "cpu"]


def fit(shape: TrainShape, device: str, *, world_size: int = 1, parallel: str = "ddp") -> Fit:
    """The estimate of `shape` on `device` with `world_size` processes in `parallel` mode."""
    from engines.memory import available_bytes

    shards = world_size if parallel == "fsdp" and world_size > 1 else 1
    return Fit(
        device=device,
        world_size=world_size,
        parallel=parallel,
        memory=shape.memory(device, shards),
        runtime=runtime_bytes(device),
        ranks_here=_ranks_sharing(device, world_size),
        available=available_bytes(device),
    )


def check_fits(
    shape: TrainShape, device: str, *, world_size: int = 1, parallel: str = "ddp"
) -> Fit:
    """The estimate when it fits; a SpecError with the estimate and what to change when not."""
    result = fit(shape, device, world_size=world_size, parallel=parallel)
    if not result.fits:
        raise SpecError(refusal(shape, result))
    return result


def refusal(shape: TrainShape, result: Fit) -> str:
    """The message of a job that does not fit: the estimate by part, the device, the fixes."""
    mem, device = result.memory, result.device
    ranks = f" × {result.ranks_here} processes" if result.ranks_here > 1 else ""
    sharded = f", split over {mem.shards} processes (FSDP)" if mem.shards > 1 else ""
    parts = (
        f"weights {human_bytes(mem.weights)}, gradients {human_bytes(mem.gradients)}, "
        f"AdamW state {human_bytes(mem.optimizer)}{sharded}; activations "
        f"{human_bytes(mem.activations + mem.logits)} for batch {shape.sequences} × "
        f"{shape.seq_len} tokens × {shape.n_layer} layers × {shape.n_embd} wide; runtime "
        f"{human_bytes(result.runtime)}"
    )
    head = (
        f"this job needs about {human_bytes(result.need)} of {device} memory "
        f"({human_bytes(result.per_rank)} a process{ranks}; {shape.params:,} parameters, "
        f"{shape.trainable:,} training: {parts}) but {device} has "
        f"{human_bytes(result.available or 0)} available"
    )
    text = f"{head} — change one of: " + "; or ".join(fixes(shape, result))
    if result.device != "cuda" and result.parallel == "fsdp" and result.world_size > 1:
        text += (
            ". (FSDP on one CPU host does not lower the total: its processes share the "
            "host's memory; it pays off with one process a GPU or a machine)"
        )
    return text


def fixes(shape: TrainShape, result: Fit) -> list[str]:
    """What to change, each with the estimate it gives (marked when it fits)."""
    device, world, parallel = result.device, result.world_size, result.parallel
    out = []

    def need(s: TrainShape, w: int = world, p: str = parallel) -> str:
        f = fit(s, device, world_size=w, parallel=p)
        return f"{human_bytes(f.need)}{' (fits)' if f.fits else ''}"

    b = shape.batch
    if b > 1:
        small = _halve_until(b, lambda x: _fits(_with_batch(shape, x), device, world, parallel))
        accum = ""
        if small < b:
            accum = f" and train.grad_accum = {shape.grad_accum * b // small} (same tokens a step)"
        out.append(f"train.batch_size = {small}{accum}: {need(_with_batch(shape, small))}")
    if shape.seq_len > 32:
        t = _halve_until(
            shape.seq_len,
            lambda x: _fits(replace(shape, seq_len=x), device, world, parallel),
            floor=32,
        )
        out.append(f"a shorter context, {shape.seq_field} = {t}: {need(replace(shape, seq_len=t))}")
    if shape.lora is False and shape.lora_suggested:
        r, targets = LORA_SUGGESTED
        lora = replace(
            shape,
            params=shape.params + shape.lora_suggested,
            trainable=shape.lora_suggested,
            lora=True,
        )
        out.append(f"LoRA (lora.enabled = true, r = {r} on {', '.join(targets)}): {need(lora)}")
    if shape.pipeline in FSDP_PIPELINES:
        out.extend(_parallel_fixes(shape, result, need))
    if shape.pipeline == "pretrain":
        out.append("a smaller model (model.n_layer, model.n_embd)")
    elif not out:
        out.append("a smaller model or batch (train.batch_size, the sequence length)")
    return out


def _parallel_fixes(shape: TrainShape, result: Fit, need) -> list[str]:
    if result.device != "cuda":
        return []
    start = max(2, result.world_size * 2 if result.parallel == "fsdp" else 2)
    for n in (2, 4, 8, 16, 32, 64):
        if n >= start and _fits(shape, "cuda", n, "fsdp"):
            fix = f'train.parallel = "fsdp" over {n} GPUs (torchrun --nproc_per_node {n})'
            return [f"{fix}: {need(shape, n, 'fsdp')} a GPU"]
    return ['train.parallel = "fsdp" over more GPUs than 64 would still not fit']


def _fits(shape: TrainShape, device: str, world: int, parallel: str) -> bool:
    return fit(shape, device, world_size=world, parallel=parallel).fits


def _with_batch(shape: TrainShape, batch: int) -> TrainShape:
    return replace(shape, sequences=batch * shape.sequences_per_row)


def _halve_until(value: int, ok, floor: int = 1) -> int:
    """`value` halved until `ok(value)` or `floor`."""
    while value > floor and not ok(value):
        value = max(floor, value // 2)
    return value


# (processes, of them on this host) a dry run assumes, in place of torchrun's environment:
# per thread, so an estimate in a TUI worker never reaches the environment a job inherits.
_ASSUMED: ContextVar[tuple[int, int] | None] = ContextVar("assumed_processes", default=None)


@contextmanager
def assume_processes(world_size: int, here: int) -> Iterator[None]:
    """Checks in this block (this thread) see `world_size` processes, `here` on this host."""
    token = _ASSUMED.set((world_size, here))
    try:
        yield
    finally:
        _ASSUMED.reset(token)


def world_size_env(spec: Any = None) -> int:
    """Processes of this job: torchrun's WORLD_SIZE; without torchrun, the `[launch]` section
    of `spec` when given (nproc_per_node × nnodes), else 1 (`assume_processes` first)."""
    if (assumed := _ASSUMED.get()) is not None:
        return assumed[0]
    env = int(os.environ.get("WORLD_SIZE", "0") or 0)
    if env > 0:
        return env
    launch = getattr(spec, "launch", None)
    return max(1, launch.processes) if launch is not None else 1


def ranks_per_host(spec: Any = None) -> int:
    """Processes of this job on this host: torchrun's LOCAL_WORLD_SIZE; without torchrun, the
    `[launch]` section's nproc_per_node when given, else the world size."""
    if (assumed := _ASSUMED.get()) is not None:
        return assumed[1]
    env = int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0)
    if env > 0:
        return env
    launch = getattr(spec, "launch", None)
    return max(1, launch.nproc_per_node) if launch is not None else world_size_env(spec)


def _ranks_sharing(device: str, world_size: int) -> int:
    """Processes whose memory comes from the same pool: on CPU every rank on this host
    (torchrun's LOCAL_WORLD_SIZE, else all of them); on CUDA one rank a GPU."""
    if device == "cuda":
        return 1
    if (assumed := _ASSUMED.get()) is not None:
        return max(1, assumed[1])
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0) or world_size)


# ---- a spec's training shape, for every stage that trains ------------------------------------


def training_shape(spec: Any, store: Any = None) -> TrainShape | None:
    """What `spec` trains (parameters, trainable ones, sequences a micro-batch, context), or
    None for a stage that trains nothing. Model folders are read (config.json and the
    safetensors headers), never loaded."""
    maker = _SHAPES.get(spec.pipeline)
    return maker(spec, store) if maker is not None else None


def _pretrain_shape(spec: Any, store: Any) -> TrainShape:
    from engines.model_size import ModelSize

    m = spec.model
    size = ModelSize(m.n_layer, m.n_head, m.n_embd, m.block_size, spec.tokenizer.vocab_size,
                     n_kv_head=m.n_kv_head)  # fmt: skip
    return TrainShape(
        pipeline="pretrain", params=size.params, trainable=size.params,
        sequences=spec.train.batch_size, seq_len=spec.train.seq_len or m.block_size,
        n_layer=m.n_layer, n_embd=m.n_embd, vocab_size=size.vocab_size,
        seq_field="train.seq_len" if spec.train.seq_len else "model.block_size",
        grad_accum=spec.train.grad_accum,
    )  # fmt: skip


def _folder_shape(
    spec: Any, store: Any, ref: str, *, per_row: int, seq_len: int, seq_field: str,
    lm_head: bool = True, notes: tuple[str, ...] = (), frozen: int = 0, reference: bool = False,
) -> TrainShape:  # fmt: skip
    """The shape of a stage that fine-tunes the model folder `ref` (with LoRA when its spec
    has a lora section); `reference`: it keeps a frozen copy of the model unless LoRA is on
    (then the reference is the base with the adapter disabled)."""
    from engines.memory import lora_params
    from engines.model_folders import safetensors_params
    from pipelines.model_refs import resolve_model

    folder = resolve_model(store, ref)
    config = _text_config(folder)
    params = safetensors_params(folder)
    lora_spec = getattr(spec, "lora", None)
    lora = None if lora_spec is None else bool(lora_spec.enabled)
    suggested = lora_params(config, LORA_SUGGESTED[0], list(LORA_SUGGESTED[1]))
    trainable, weight_params = params, None
    if lora:
        trainable = lora_params(config, lora_spec.r, list(lora_spec.target_modules))
        if trainable is None:
            trainable = params // 100
            notes = (*notes, "LoRA parameters taken as 1% (targets not Llama projections)")
        if getattr(lora_spec, "quantize_base", "none") == "nf4":
            from engines.lora import NF4_BYTES_PER_PARAM, qlora_weight_params

            weight_params = qlora_weight_params(params, config) + trainable
            nf4 = f"{NF4_BYTES_PER_PARAM:.3f}"
            notes = (*notes, f"QLoRA: the base's linear layers at {nf4} bytes a weight (NF4)")
        params += trainable
    if reference and not lora:
        frozen += params
    return TrainShape(
        pipeline=spec.pipeline, params=params, trainable=trainable,
        sequences=spec.train.batch_size * per_row, seq_len=seq_len,
        n_layer=int(config.get("num_hidden_layers", 1)), n_embd=int(config.get("hidden_size", 1)),
        vocab_size=int(config.get("vocab_size", 1)) if lm_head else 0, frozen_params=frozen,
        lora=lora, lora_suggested=suggested, seq_field=seq_field, sequences_per_row=per_row,
        notes=notes, grad_accum=spec.train.grad_accum, weight_params=weight_params,
    )  # fmt: skip


def _sft_shape(spec: Any, store: Any) -> TrainShape:
    return _folder_shape(spec, store, spec.model.base, per_row=1, seq_len=spec.data.max_len,
                         seq_field="data.max_len")  # fmt: skip


def _reward_shape(spec: Any, store: Any) -> TrainShape:
    note = f"each ranking taken as data.k = {spec.data.k} answers of data.max_len tokens"
    return _folder_shape(spec, store, spec.model.base, per_row=spec.data.k,
                         seq_len=spec.data.max_len, seq_field="data.max_len", lm_head=False,
                         notes=(note,))  # fmt: skip


def _dpo_shape(spec: Any, store: Any) -> TrainShape:
    return _folder_shape(spec, store, spec.model.policy, per_row=2, seq_len=spec.data.max_len,
                         seq_field="data.max_len", reference=True,
                         notes=("a pair is 2 sequences (chosen, rejected)",))  # fmt: skip


def _grpo_shape(spec: Any, store: Any) -> TrainShape:
    g = spec.grpo
    note = (f"sequences of ≤ {PROMPT_TOKENS} prompt tokens (assumed) + grpo.max_new_tokens; "
            "rollout generation not counted")  # fmt: skip
    return _folder_shape(spec, store, spec.model.policy, per_row=g.group_size,
                         seq_len=PROMPT_TOKENS + g.max_new_tokens,
                         seq_field="grpo.max_new_tokens (+ the prompt)",
                         reference=g.kl_coef > 0, notes=(note,))  # fmt: skip


def _ppo_shape(spec: Any, store: Any) -> TrainShape:
    from engines.model_folders import safetensors_params
    from pipelines.model_refs import resolve_model

    p = spec.ppo
    reward = safetensors_params(resolve_model(store, spec.model.reward))
    note = (f"minibatches of ppo.minibatch sequences of ≤ {PROMPT_TOKENS} prompt tokens "
            "(assumed) + ppo.max_new_tokens; the reference and reward model held frozen; "
            "rollout generation not counted")  # fmt: skip
    shape = _folder_shape(spec, store, spec.model.policy, per_row=1,
                          seq_len=PROMPT_TOKENS + p.max_new_tokens,
                          seq_field="ppo.max_new_tokens (+ the prompt)", reference=True,
                          frozen=reward, notes=(note,))  # fmt: skip
    return replace(shape, sequences=min(p.minibatch, spec.train.batch_size))


def _text_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config.get("text_config") or config


_SHAPES = {
    "pretrain": _pretrain_shape,
    "sft": _sft_shape,
    "reward": _reward_shape,
    "dpo": _dpo_shape,
    "grpo": _grpo_shape,
    "ppo": _ppo_shape,
}


def check_nonempty(path: Path, field: str) -> int:
    """The size of a data file; an empty one is refused."""
    size = path.stat().st_size
    if size == 0:
        raise SpecError(f"field {field!r}: {path} is empty — point it at a file with data")
    return size


def jsonl_head(path: Path, field: str) -> list[tuple[int, object]]:
    """(line number, parsed record) for the first non-empty lines; bad JSON is refused."""
    out = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append((lineno, json.loads(line)))
            except json.JSONDecodeError as e:
                raise SpecError(f"{path}:{lineno}: not valid JSON ({e.msg}) — {field}") from None
            if len(out) >= HEAD_LINES:
                break
    if not out:
        raise SpecError(f"field {field!r}: {path} has no records (only blank lines)")
    return out


def check_text_field(path: Path, text_field: str, field: str) -> None:
    """The first records of a JSONL file carry `text_field` as a string."""
    for lineno, record in jsonl_head(path, field):
        if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
            keys = ", ".join(sorted(record)) if isinstance(record, dict) else "not an object"
            raise SpecError(
                f"{path}:{lineno}: no string field {text_field!r} (found: {keys}) — set "
                f"{field.rsplit('.', 1)[0]}.text_field to the field that holds the text"
            )


def check_glob(pattern: str, field: str) -> None:
    if next(itertools.islice(globlib.iglob(pattern, recursive=True), 1), None) is None:
        raise SpecError(f"field {field!r}: the glob {pattern!r} matched no files")


def check_enough_tokens(max_tokens: int, window: int, label: str, field: str) -> None:
    """A source whose every byte became a token would still not fill one training window."""
    if max_tokens < window:
        raise SpecError(
            f"field {field!r}: source {label!r} holds at most {max_tokens} tokens (one per "
            f"byte) but one training sequence needs {window} (model.block_size or "
            "train.seq_len, plus one): add data or lower model.block_size / train.seq_len"
        )
