"""Data-parallel helpers over torch.distributed, set up from torchrun's environment.

Under `torchrun --nproc_per_node N` each process calls `init_distributed()`, which joins the
process group (gloo on CPU, NCCL on CUDA); without torchrun it returns a world of one and
touches nothing. The trainer wraps its model with `wrap_model` and averages metrics with
`all_reduce_mean`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

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
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, local_rank, world_size, dev, is_main=rank == 0)


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


def cleanup() -> None:
    """Leave the process group (safe to call when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
