"""What a job will cost, before anything starts (`workbench run --dry-run`).

    est = dry_run(store, spec, nproc=2)   # memory per rank by part, compute, a wall time
    for line in report(est): print(line)
    brief(est)                             # the same in two lines (the TUI's Launch form)
    est.refusal                            # None, or the refusal (the estimate and the fixes)
    est.fixes                              # the refusal's fixes alone, each with its estimate
    dry_run(store, spec, reuse_peak=True)  # a form re-estimated as it changes: one peak timing
    as_json(est)                           # the same figures as one JSON-ready dict

Memory comes from the one rule the stages' preflight applies (`pipelines.preflight.fit`:
weights, gradients, AdamW state and activations per rank, split over the processes under
FSDP, against what the device has free). Compute is 6·N·D (N parameters, D tokens) and the
wall time divides it by an assumed model-FLOPs utilisation (MFU) of a matmul peak measured
here and now. Nothing is written: no run, no run folder, no store row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from workbench.ops.errors import OpError, user_errors
from workbench.ops.fmt import fmt_num
from workbench.ops.launch import human_duration

# The MFU assumed for the wall time unless --mfu says otherwise. A GPT-2-small-size run on
# a GPU with bf16, fused AdamW and torch.compile reaches roughly 30-50% of its bf16 matmul
# peak; small Llamas trained in fp32 on a 2-core CPU read 36-46% of the fp32 peak here.
MFU_ASSUMED = {"cpu": 0.4, "cuda": 0.35}
PEAK_SECONDS = 0.3  # the timed matmul that measures the peak (2048² fp32 on CPU)
_MEASURED: dict[str, float] = {}  # the peak this process measured, per device type and threads


@dataclass
class Estimate:
    """A job's estimate; `refusal` is set when it does not fit."""

    pipeline: str
    device: str
    nproc: int
    parallel: str
    trains: bool = True
    params: int = 0
    trainable: int = 0
    lora: bool | None = None
    memory: dict[str, int] = field(default_factory=dict)  # per rank, by part (bytes)
    runtime: int = 0  # per process
    per_rank: int = 0
    ranks_here: int = 1
    need: int = 0
    available: int | None = None
    fits: bool = True
    compare: dict[str, int] = field(default_factory=dict)  # label -> need of an alternative
    steps: int = 0
    batch: int = 0
    sequences_per_row: int = 1
    grad_accum: int = 1
    context: int = 0
    tokens: int = 0
    flops: float = 0.0
    flops_formula: str = ""
    peak_flops: float = 0.0
    peak_how: str = ""
    devices: int = 1  # peaks that add up: GPUs; a CPU host counts once
    mfu: float = 0.0
    mfu_how: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    refusal: str | None = None
    fixes: list[str] = field(default_factory=list)  # of a refusal: what to change, each's need


def dry_run(
    store: Any,
    job: Any,
    *,
    nproc: int | None = None,
    mfu: float | None = None,
    reuse_peak: bool = False,
) -> Estimate:
    """The estimate of `job` with `nproc` processes (default: torchrun's WORLD_SIZE, else the
    spec's `[launch]` nproc_per_node × nnodes, else 1; each host runs nproc_per_node of them).
    `reuse_peak`: take the matmul peak this process measured before, when it did (a front end
    that re-estimates on every edit times the matmul once, not at each keystroke).

    OpError for what the stage's preflight refuses before any estimate (a missing model, no
    GPU for device = "cuda"); a job that does not fit comes back with `refusal` set."""
    from pipelines import preflight as check

    train = getattr(job, "train", None)
    here = nproc or check.ranks_per_host(job)  # processes on this host: share its memory
    nproc = nproc or check.world_size_env(job)
    here = min(here, nproc)
    if nproc < 1:
        raise OpError(f"--nproc {nproc}: give a number of processes of at least 1")
    if mfu is not None and not 0 < mfu <= 1:
        raise OpError(f"--mfu {mfu}: give a fraction of the peak in (0, 1], e.g. 0.3")
    parallel = getattr(train, "parallel", "ddp")
    with user_errors():
        device = check.check_device(getattr(train, "device", "auto"))
        shape = check.training_shape(job, store)
    est = Estimate(pipeline=job.pipeline, device=device, nproc=nproc, parallel=parallel)
    if shape is None:
        est.trains = False
        return est
    with check.assume_processes(nproc, here):
        result = check.fit(shape, device, world_size=nproc, parallel=parallel)
        _memory(est, shape, result)
    _compute(est, shape, train, mfu, store, reuse_peak)
    if not result.fits:
        est.refusal = check.refusal(shape, result)
        est.fixes = check.fixes(shape, result)
        return est
    with user_errors(), check.assume_processes(nproc, here):
        from pipelines.registry import preflight

        preflight(job, store)  # data, models, device: what the run itself checks first
    return est


def _memory(est: Estimate, shape: Any, result: Any) -> None:
    from pipelines import preflight as check

    est.params, est.trainable, est.lora = shape.params, shape.trainable, shape.lora
    est.memory = result.memory.as_dict()
    est.runtime, est.per_rank = result.runtime, result.per_rank
    est.ranks_here, est.need = result.ranks_here, result.need
    est.available, est.fits = result.available, result.fits
    est.notes.extend(shape.notes)

    def need(s: Any, world: int = est.nproc, parallel: str = est.parallel) -> int:
        return check.fit(s, est.device, world_size=world, parallel=parallel).need

    if shape.lora:  # what the same job would need without LoRA
        base = shape.params - shape.trainable
        est.compare["full fine-tuning"] = need(replace(shape, params=base, trainable=base))
    elif shape.lora is False and shape.lora_suggested:
        r, targets = check.LORA_SUGGESTED
        lora = replace(shape, params=shape.params + shape.lora_suggested,
                       trainable=shape.lora_suggested, lora=True)  # fmt: skip
        est.compare[f"LoRA r={r} on {', '.join(targets)}"] = need(lora)
    if shape.pipeline in check.FSDP_PIPELINES and est.nproc > 1:
        other = "ddp" if est.parallel == "fsdp" else "fsdp"
        est.compare[f'train.parallel = "{other}"'] = need(shape, est.nproc, other)


def _best_seen(store: Any, device: Any) -> float:
    """The best peak this machine's jobs have measured (the trainer keeps it in the store's
    cache, per device type and thread count); 0 when none has."""
    from engines.perf import _cache_key, _read_cache

    cache = getattr(store, "cache_dir", None)
    if cache is None:
        return 0.0
    try:
        return float(_read_cache(cache / "peak_flops.json").get(_cache_key(device), 0.0))
    except (TypeError, ValueError):
        return 0.0


def _peak_now(device: Any, dtype: Any, reuse: bool) -> tuple[float, bool]:
    """The matmul peak of `device` timed now, or (`reuse`) the one this process timed before;
    and whether it was reused."""
    from engines.perf import _cache_key, matmul_flops

    key = _cache_key(device)
    if reuse and key in _MEASURED:
        return _MEASURED[key], True
    _MEASURED[key] = matmul_flops(device, dtype, PEAK_SECONDS)
    if device.type == "cuda":  # a long-lived caller (the TUI) keeps no GPU memory for it
        import torch

        torch.cuda.empty_cache()
    return _MEASURED[key], False


def _compute(
    est: Estimate, shape: Any, train: Any, mfu: float | None, store: Any, reuse_peak: bool
) -> None:
    import torch

    from engines.memory import training_flops

    est.steps, est.batch = int(train.max_steps), shape.batch
    est.sequences_per_row = shape.sequences_per_row
    est.grad_accum = int(getattr(train, "grad_accum", 1) or 1)
    est.context = shape.seq_len
    est.tokens = est.steps * shape.sequences * est.grad_accum * est.nproc * shape.seq_len
    est.flops = training_flops(shape.params, est.tokens, shape.trainable)
    est.flops_formula = (
        "6·N·D" if shape.trainable >= shape.params else "(4·N + 2·trainable)·D (LoRA)"
    )
    dtype = torch.bfloat16 if est.device == "cuda" else torch.float32
    device = torch.device("cuda", 0) if est.device == "cuda" else torch.device("cpu")
    now, reused = _peak_now(device, dtype, reuse_peak)
    seen = _best_seen(store, device)
    size = 8192 if est.device == "cuda" else 2048
    n = torch.get_num_threads()
    threads = f", {n} thread{'s' if n > 1 else ''}" if est.device == "cpu" else ""
    est.peak_flops = max(now, seen)
    est.peak_how = (
        f"{size}² {str(dtype).removeprefix('torch.')} matmuls{threads}: {fmt_num(now)}FLOP/s "
        f"measured {'earlier by this process' if reused else 'now'} in {PEAK_SECONDS} s"
    )
    if seen > now:
        est.peak_how += (
            f", {fmt_num(seen)}FLOP/s the best seen here (used: a busy moment reads low)"
        )
    est.devices = est.nproc if est.device == "cuda" else 1
    if mfu is not None:
        est.mfu, est.mfu_how = mfu, "given (--mfu)"
    else:
        est.mfu = MFU_ASSUMED[est.device]
        est.mfu_how = f"assumed for {est.device} (--mfu to change)"
    rate = est.mfu * est.peak_flops * est.devices
    est.seconds = est.flops / rate if rate > 0 else 0.0
    if est.device == "cpu" and est.nproc > 1:
        est.notes.append("CPU processes share this host's cores: its peak counts once")
    if shape.pipeline in ("grpo", "ppo"):
        est.notes.append("compute counts the policy updates only, not sampling the rollouts")
    if shape.pipeline == "dpo":
        est.notes.append("compute leaves out the reference model's forward passes (2·N·D)")


def _duration(seconds: float) -> str:
    days = seconds / 86400
    if days >= 365:
        return f"{days / 365:,.1f} years"
    return f"{days:.1f} days" if days >= 2 else human_duration(seconds)


def _b(n: float | None) -> str:
    from engines.memory import human_bytes

    return "unknown" if n is None else human_bytes(n)


def report(est: Estimate) -> list[str]:
    """The estimate as lines for people."""
    if not est.trains:
        return [f"{est.pipeline}: trains nothing — nothing to estimate"]
    m = est.memory
    mode = f"{est.nproc} process{'es' if est.nproc > 1 else ''}"
    if est.nproc > 1:
        mode += f', train.parallel = "{est.parallel}"'
    lora = " (LoRA)" if est.lora else ""
    share = f" ({est.trainable / est.params:.2%})" if est.trainable < est.params else ""
    split = f" (FSDP: split over {m['shards']})" if m["shards"] > 1 else ""
    acts = _b(m["activations"] + m["logits"])
    seqs = est.batch * est.sequences_per_row
    lines = [
        f"dry run: {est.pipeline} on {est.device}, {mode} — nothing started",
        f"parameters       {est.params:,}; training {est.trainable:,}{share}{lora}",
        f"memory per rank{split}",
        f"  weights        {_b(m['weights'])}",
        f"  gradients      {_b(m['gradients'])}",
        f"  AdamW state    {_b(m['optimizer'])}",
        f"  activations    {acts} (batch {seqs} × {est.context} tokens; logits {_b(m['logits'])})",
    ]
    if m["gathered"]:
        lines.append(f"  FSDP gathered  {_b(m['gathered'])} (unsharded units in flight)")
    lines.append(f"  runtime        {_b(est.runtime)} (the process: torch, libraries)")
    lines.append(f"  total          {_b(est.per_rank)}")
    where = f" ({est.ranks_here} processes on this host)" if est.ranks_here > 1 else ""
    verdict = "fits" if est.fits else "DOES NOT FIT"
    free = _b(est.available)
    lines.append(f"needs {_b(est.need)} of {est.device} memory{where}; free {free} — {verdict}")
    lines += [f"  with {label}: {_b(need)}" for label, need in est.compare.items()]
    shape = _shape(est, batch="batch ")
    gpus = f" × {est.devices} GPUs" if est.devices > 1 else ""
    time = _duration(est.seconds)
    lines += [
        f"tokens D         {est.tokens:,} ({shape} × {est.context} context)",
        f"compute          {est.flops:.3e} FLOPs = {est.flops_formula}, N = {est.params:,}",
        f"peak             {fmt_num(est.peak_flops)}FLOP/s{gpus} ({est.peak_how})",
        f"wall time        ~{time} at MFU {est.mfu:.0%} ({est.mfu_how})",
    ]
    lines += [f"note: {n}" for n in est.notes]
    return lines


def _shape(est: Estimate, batch: str = "") -> str:
    """steps × batch (× sequences a row × accumulation × processes): D over the context."""
    shape = f"{est.steps} steps × {batch}{est.batch}"
    if est.sequences_per_row > 1:
        shape += f" × {est.sequences_per_row} sequences"
    if est.grad_accum > 1:
        shape += f" × {est.grad_accum} accum"
    return shape + (f" × {est.nproc} processes" if est.nproc > 1 else "")


def brief(est: Estimate) -> list[str]:
    """The estimate in two lines, compute then memory per rank (none for a job that trains
    nothing): what a form shows as it changes."""
    if not est.trains:
        return []
    m = est.memory
    gpus = f" × {est.devices} GPUs" if est.devices > 1 else ""
    compute = (
        f"{fmt_num(float(est.params))} params · {fmt_num(float(est.tokens))} tokens "
        f"({_shape(est)} × {est.context}) · {est.flops:.2e} FLOPs ({est.flops_formula}) · "
        f"~{_duration(est.seconds)} at MFU {est.mfu:.0%} of {fmt_num(est.peak_flops)}FLOP/s{gpus}"
    )
    split = f", FSDP split over {m['shards']}" if m["shards"] > 1 else ""
    parts = (
        f"weights {_b(m['weights'])}, gradients {_b(m['gradients'])}, AdamW "
        f"{_b(m['optimizer'])}{split}, activations {_b(m['activations'] + m['logits'])}, "
        f"runtime {_b(est.runtime)}"
    )
    here = f" × {est.ranks_here} processes here" if est.ranks_here > 1 else ""
    verdict = "fits" if est.fits else "DOES NOT FIT"
    memory = (
        f"memory {_b(est.per_rank)} a rank ({parts}){here}: needs {_b(est.need)} of "
        f"{_b(est.available)} free on {est.device} — {verdict}"
    )
    return [compute, memory]


def as_json(est: Estimate) -> dict[str, Any]:
    """Every figure of the estimate, JSON-ready."""
    return asdict(est)
