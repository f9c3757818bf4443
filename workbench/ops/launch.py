"""What a front end shows before it starts a job: the preset to open on, the pipeline's
preflight (data, device, memory — before any run exists) and a one-line summary.

    preset = default_preset("pretrain")      # "pretrain-tiny": fits a laptop
    check(store, spec)                       # OpError naming the field and the fix
    summary(spec)  # "1.05M params · 1.84M tokens (900 steps × 16 × 128) · ~3 min on cpu (rough)"

A spec's `[launch]` section decides how a detached job starts (`exec_command`): one process
(`python -m workbench _exec RUN_ID`) or, with `nproc_per_node` > 1, torchrun running
`pipelines.distributed RUN_ID` on every rank (rank 0 records the one run).

engines (model size, the memory probe) are imported inside the functions: the TUI opens
without torch.
"""

from __future__ import annotations

import sys
from typing import Any

from workbench.ops.errors import OpError, user_errors
from workbench.ops.fmt import fmt_num

DEFAULT_PIPELINE = "pretrain"
DEFAULT_PRESETS = {"pretrain": "pretrain-tiny", "sft": "sft-tiny", "reward": "reward-tiny"}
# Training throughput for the rough time estimate, in model FLOP/s (6 · params · tokens):
# pretrain-tiny takes about three minutes on 2 CPU cores; a GPU is taken as ~1000× that.
FLOPS = {"cpu": 6e10, "cuda": 6e13}


def default_preset(pipeline: str, presets: list[str]) -> str | None:
    """The preset Launch opens a pipeline on: its tiny one (it runs anywhere), else the first."""
    tiny = DEFAULT_PRESETS.get(pipeline) or next((p for p in presets if "tiny" in p), None)
    return tiny if tiny in presets else (presets[0] if presets else None)


def exec_command(store: Any, run_id: str, resume: bool = False) -> list[str]:
    """The command a detached run starts with: torchrun when its spec's `[launch]` asks for
    several processes, else `workbench _exec RUN_ID` (one process)."""
    from pipelines.distributed import torchrun_command, wants_torchrun
    from pipelines.runner import load_run_spec

    with user_errors():
        job = load_run_spec(store, run_id)
    if wants_torchrun(job):
        return torchrun_command(job, run_id, resume=resume)
    return [sys.executable, "-m", "workbench", "_exec", run_id] + (["--resume"] if resume else [])


def check_foreground(spec: Any) -> None:
    """A `[launch]` job for several processes runs detached (torchrun in its own session)."""
    from pipelines.distributed import wants_torchrun

    if wants_torchrun(spec):
        raise OpError(
            f"[launch] nproc_per_node = {spec.launch.nproc_per_node} starts the job under "
            "torchrun, detached: add --detach (or run torchrun yourself; see docs/distributed.md)"
        )


def check(store: Any, spec: Any) -> None:
    """The pipeline's preflight: data readable and big enough, the device present, the model
    fitting in memory. Raises OpError before anything is written."""
    from pipelines.registry import preflight

    with user_errors():
        preflight(spec, store)


def device_of(spec: Any) -> str:
    """The device the job will train on: `train.device`, with "auto" resolved cheaply."""
    from engines.memory import gpu_present

    device = getattr(getattr(spec, "train", None), "device", "auto")
    return ("cuda" if gpu_present() else "cpu") if device == "auto" else device


def params_of(spec: Any) -> int | None:
    """Parameters of the model a pretrain spec builds (None where the spec names a model)."""
    from engines.model_size import ModelSize

    model, tok = getattr(spec, "model", None), getattr(spec, "tokenizer", None)
    if not hasattr(model, "n_layer") or not hasattr(tok, "vocab_size"):
        return None
    with user_errors():
        size = ModelSize(model.n_layer, model.n_head, model.n_embd, model.block_size,
                         tok.vocab_size, n_kv_head=model.n_kv_head)  # fmt: skip
    return size.params


def shape_of(spec: Any) -> tuple[int, int, int] | None:
    """(steps, batch, context) of a training spec, None for a spec that does not train."""
    train = getattr(spec, "train", None)
    steps, batch = getattr(train, "max_steps", None), getattr(train, "batch_size", None)
    if not steps or not batch:
        return None
    model = getattr(spec, "model", None)
    context = (getattr(train, "seq_len", None) or getattr(model, "block_size", None)
               or getattr(getattr(spec, "data", None), "max_len", None) or 0)  # fmt: skip
    return steps, batch, context


def human_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def summary(spec: Any) -> str:
    """One line: parameters, tokens, steps × batch × context, a rough time on its device."""
    parts, params, shape = [], params_of(spec), shape_of(spec)
    device = device_of(spec)
    if params:
        parts.append(f"{fmt_num(float(params))} params")
    if shape:
        steps, batch, context = shape
        tokens = steps * batch * context
        if context:
            parts.append(f"{fmt_num(float(tokens))} tokens ({steps} steps × {batch} × {context})")
        else:
            parts.append(f"{steps} steps × batch {batch}")
        if params and context:
            seconds = 6 * params * tokens / FLOPS.get(device, FLOPS["cpu"])
            parts.append(f"~{human_duration(seconds)} on {device} (rough)")
    if not parts or not (params and shape):
        parts.append(f"on {device}")
    return " · ".join(parts)
