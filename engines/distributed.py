"""Data-parallel helpers over torch.distributed, set up from torchrun's environment.

Under `torchrun --nproc_per_node N` each process calls `init_distributed()`, which joins the
process group (gloo on CPU, NCCL on CUDA); without torchrun it returns a world of one and
touches nothing. The trainer wraps its model with `wrap_model` (DDP: every rank holds the
whole model) or shards it with `shard_model` (FSDP2: each transformer block and the root are
split over the ranks, gathered one unit at a time), and averages metrics with
`all_reduce_mean`.

A sharded model is saved and loaded through full state dicts, so a checkpoint is the same
as one written by a single process (a plain HF folder; `optimizer.pt` keyed by parameter
index):

    sd = full_state_dict(model)                 # every rank calls it; rank 0 gets the tensors
    plain = plain_copy(model, sd)               # rank 0: an unsharded module holding them
    osd = full_optimizer_state(model, opt)      # rank 0: like opt.state_dict() unsharded
    load_full_state(model, plain.state_dict()); load_full_optimizer_state(model, opt, osd)
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    is_main: bool


def pick_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cuda' uses this process's local GPU."""
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun process group if WORLD_SIZE > 1, else describe a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        kwargs = {}
        if os.environ.get(PG_TIMEOUT_ENV):
            from datetime import timedelta

            kwargs["timeout"] = timedelta(seconds=float(os.environ[PG_TIMEOUT_ENV]))
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo", **kwargs)
        _PEERS[:] = all_gather_object((rank, socket.gethostname(), os.getpid()))
    return DistInfo(rank, local_rank, world_size, dev, is_main=rank == 0)


# How long a collective waits for a lost peer before it fails (default: torch's, 30 min on
# gloo, 10 min on NCCL). A rank that dies usually breaks gloo's connections at once, and
# torchrun then stops the others; the timeout is the bound when nothing else notices.
PG_TIMEOUT_ENV = "WORKBENCH_PG_TIMEOUT_S"
_PEERS: list[tuple[int, str, int]] = []  # (rank, host, pid) of every process, from init


def _gone(pid: int) -> bool:
    """The process has exited (or is a zombie its parent has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True
    except OSError:
        return False


def lost_ranks(wait_s: float = 3.0) -> list[int]:
    """The ranks on this host whose process has exited, waiting up to `wait_s` for one to go
    (a collective can fail a moment before its peer is gone). Ranks on other hosts are not
    seen: [] then."""
    import time

    host, me = socket.gethostname(), os.getpid()
    mine = [(r, pid) for r, h, pid in _PEERS if h == host and pid != me]
    deadline = time.monotonic() + wait_s
    while True:
        lost = [r for r, pid in mine if _gone(pid)]
        if lost or time.monotonic() >= deadline:
            return lost
        time.sleep(0.1)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` in a multi-process job; the model itself otherwise."""
    if not is_distributed():
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def shard_model(model: nn.Module) -> nn.Module:
    """FSDP2 in place: `fully_shard` every transformer block (the module types a transformers
    model lists in `_no_split_modules`, else the members of its ModuleLists), then the root
    (embedding, final norm, LM head). Only in a multi-process job.

    A child named `policy` (PPO's LM under its value head, engines.ppo.PolicyWithValue) is a
    unit of its own between the two, so that sampling through it alone gathers its embedding
    and LM head; the root is then initialised at once (FSDP makes the first module to run
    forward the root, and sampling runs before the first whole forward).

    Each rank keeps its shard of its own copy, so rank 0's weights and buffers are broadcast
    first (as DDP does): a stage whose initialisation is not seeded alike on every rank (a
    LoRA adapter, a fresh head) still starts from one model."""
    from torch.distributed.fsdp import fully_shard

    if not is_distributed():
        return model
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, src=0)
    for block in _blocks(model):
        fully_shard(block)
    inner = [m for name, m in model.named_children() if name == "policy"]
    for m in inner:
        fully_shard(m)
    fully_shard(model)
    if inner:
        model._get_fsdp_state()._lazy_init()
    return model


def _blocks(model: nn.Module) -> list[nn.Module]:
    names = set(getattr(model, "_no_split_modules", None) or ())
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    if blocks:
        return blocks
    return [b for m in model.modules() if isinstance(m, nn.ModuleList) for b in m]


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _full_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's state on CPU on rank 0 ({} on the others). Collective: every rank
    calls it."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = get_model_state_dict(model, options=_full_options())
    # Gathered tensors can be views into one all-gather buffer, and safetensors will not save
    # part of a shared storage: give each tensor its own, keeping tied names one tensor.
    own: dict[int, torch.Tensor] = {}
    return {k: own.setdefault(id(v), v.detach().clone()) for k, v in state.items()}


def plain_copy(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """An unsharded module like the sharded transformers `model` (its class and config; a peft
    model's base class and adapters), holding `state` (built on the meta device, so no second
    random initialisation)."""
    import copy

    plain = _unsharded_like(model)
    plain.load_state_dict(state, assign=True)
    _copy_buffers(model, plain)
    if hasattr(plain, "tie_weights"):
        plain.tie_weights()
    config = getattr(_base_of(model), "generation_config", None)
    if config is not None:
        _base_of(plain).generation_config = copy.deepcopy(config)
    return plain.train(model.training)


def empty_copy(model: nn.Module) -> nn.Module:
    """An unsharded module like the sharded `model`, its tensors allocated on CPU but not
    set (to load a checkpoint into)."""
    plain = _unsharded_like(model).to_empty(device="cpu")
    _copy_buffers(model, plain)
    if hasattr(plain, "tie_weights"):
        plain.tie_weights()
    return plain


def _unsharded_like(model: nn.Module) -> nn.Module:
    """A new module of `model`'s class (the one FSDP's wrapper class extends) and config on
    the meta device. A peft model: its base model's, with the same adapters (frozen base,
    trainable adapters, as `get_peft_model` makes them)."""
    import copy

    from torch.distributed.fsdp import FSDPModule

    if _is_peft(model):
        from peft import get_peft_model

        base = _unsharded_like(model.get_base_model())
        name = model.active_adapter
        with torch.device("meta"):
            return get_peft_model(base, copy.deepcopy(model.peft_config[name]), name)
    cls = next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))
    with torch.device("meta"):
        return cls(copy.deepcopy(model.config))


def _base_of(model: nn.Module) -> nn.Module:
    """The transformers model under a peft wrapper (`model` itself without one)."""
    return model.get_base_model() if _is_peft(model) else model


def _is_peft(model: nn.Module) -> bool:
    import sys

    return "peft" in sys.modules and isinstance(model, sys.modules["peft"].PeftModel)


def _copy_buffers(src: nn.Module, dst: nn.Module) -> None:
    """Every buffer of `src` (FSDP leaves them whole on each rank: RoPE's inv_freq, which no
    state dict holds) into `dst`, on CPU."""
    for name, buf in src.named_buffers():
        owner, _, leaf = name.rpartition(".")
        module = dst.get_submodule(owner) if owner else dst
        module._buffers[leaf] = buf.detach().to("cpu", copy=True)


def load_full_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a whole-model state (every rank holds it) into the sharded `model`."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))


def _param_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The name of each of the optimizer's parameters, in its param_groups order (the order
    `optimizer.state_dict()` numbers them in)."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for g in optimizer.param_groups for p in g["params"]]


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The sharded optimizer's whole state on rank 0 ({} on the others), keyed by parameter
    index like `optimizer.state_dict()` of the unsharded model. Collective."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    full = get_optimizer_state_dict(model, optimizer, options=_full_options())
    if not full:
        return {}
    index = {name: i for i, name in enumerate(_param_names(model, optimizer))}
    groups = [{**g, "params": [index[n] for n in g["params"]]} for g in full["param_groups"]]
    return {"state": {index[n]: v for n, v in full["state"].items()}, "param_groups": groups}


def load_full_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict
) -> None:
    """Load an index-keyed whole optimizer state (every rank holds it) into the sharded one."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_optimizer_state_dict,
    )

    names = _param_names(model, optimizer)
    groups = [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]
    full = {"state": {names[i]: v for i, v in state["state"].items()}, "param_groups": groups}
    set_optimizer_state_dict(model, optimizer, full, options=StateDictOptions(full_state_dict=True))


def local_value(t: torch.Tensor) -> torch.Tensor:
    """A plain tensor for a DTensor (a sharded model's gradient norm), `t` otherwise."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module under DDP and torch.compile wrappers."""
    while True:
        if isinstance(model, DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over all ranks (a new tensor; `x` itself when single-process)."""
    if not is_distributed():
        return x
    out = x.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


def all_reduce_min(x: torch.Tensor) -> torch.Tensor:
    """Minimum of `x` over all ranks (e.g. an 'all finite' flag)."""
    if not is_distributed():
        return x
    out = x.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.MIN)
    return out


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (`[obj]` when single-process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def leave(code: int = 0) -> NoReturn:
    """End this process now with exit status `code`, the process group and the interpreter
    left as they are: how a torchrun rank ends once its work is written (files closed).

    Destroying a gloo process group joins its worker threads while holding the GIL. A worker
    that is just then dropping a finished collective whose tensors Python owns needs the GIL
    to do so, and the two wait on each other for ever: seen in CI, rank 1 of a finished DDP
    job hung in ~ProcessGroupGloo (std::thread::join) while its gloo thread waited in
    take_gil. When that drop happens during interpreter teardown instead, the process aborts
    ("terminate called without an active exception", SIGABRT; also seen in CI, after a run
    had finished). With every collective returned there is nothing left to tear down: the
    peers' connections close with the process."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
