"""Atomic training checkpoints: `step-N/` folders that are either complete or ignored.

Protocol: write everything into `step-N.tmp/`, fsync each file, write `COMPLETE`
(JSON with the sha256 of every file), rename to `step-N/`, fsync the parent folder, then prune
older complete checkpoints beyond `keep` and any stale `*.tmp`. A crash at any point leaves
either the previous checkpoints or the new one, never a half-written folder that looks done.

Files: model.safetensors (+ config.json for transformers models, so the folder also loads
with `from_pretrained`), optimizer.pt, scheduler.pt, rng.pt, state.pt (data position,
counters, extra). Everything non-tensor must be plain Python values (loaded weights_only).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn
from transformers import PreTrainedModel

from engines.files import sha256_file

COMPLETE = "COMPLETE"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def save_checkpoint(
    ckpt_root: str | Path,
    step: int,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    data_state: dict | None = None,
    counters: dict | None = None,
    extra: dict | None = None,
    keep: int = 2,
) -> Path:
    """Write `ckpt_root/step-{step}/` atomically and prune old ones; returns the folder."""
    root = Path(ckpt_root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"step-{step}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    _write_model(tmp, model)
    if optimizer is not None:
        _torch_save(optimizer.state_dict(), tmp / "optimizer.pt")
    if scheduler is not None:
        _torch_save(scheduler.state_dict(), tmp / "scheduler.pt")
    _torch_save(rng_state(), tmp / "rng.pt")
    state = {"step": step, "data_state": data_state or {}, "counters": counters or {}}
    _torch_save({**state, "extra": extra or {}}, tmp / "state.pt")
    _write_complete(tmp, step)
    final = _publish(tmp, root / f"step-{step}")
    prune_checkpoints(root, keep=keep)
    return final


def latest_checkpoint(ckpt_root: str | Path) -> Path | None:
    """The newest `step-N/` whose COMPLETE marker lists files with matching hashes, or None."""
    for path in _step_dirs(Path(ckpt_root)):
        if verify_checkpoint(path):
            return path
    return None


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
) -> dict:
    """Restore weights, optimizer, scheduler and every RNG; returns step, data_state, counters, extra."""
    path = Path(path)
    _load_model(path, model)
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    if scheduler is not None:
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    set_rng_state(torch.load(path / "rng.pt", weights_only=True))
    return torch.load(path / "state.pt", weights_only=True)


def verify_checkpoint(path: Path) -> bool:
    """True when `path/COMPLETE` parses and every file it lists exists with its sha256."""
    try:
        marker = json.loads((path / COMPLETE).read_text())
        files = marker["files"]
        return bool(files) and all(
            sha256_file(path / name) == digest for name, digest in files.items()
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def prune_checkpoints(ckpt_root: Path, keep: int = 2) -> None:
    """Delete complete checkpoints older than the newest `keep` (at least 1) and stale *.tmp."""
    complete = [p for p in _step_dirs(ckpt_root) if (p / COMPLETE).is_file()]
    for old in complete[max(1, keep) :]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in ckpt_root.glob("*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)


def rng_state() -> dict:
    """Every RNG the training loop may touch: python, numpy, torch CPU and CUDA."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` captured (CUDA only when saved and present here)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, key, pos, has_gauss, gauss_np = state["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, gauss_np))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_model(folder: Path, model: nn.Module) -> None:
    """Weights as safetensors; tied tensors (lm_head sharing the embedding) stored once."""
    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})
    _fsync(folder / "model.safetensors")
    if isinstance(model, PreTrainedModel):  # weight names match: the folder loads as a model
        (folder / "config.json").write_text(model.config.to_json_string())
        _fsync(folder / "config.json")


def _load_model(folder: Path, model: nn.Module) -> None:
    device = next(model.parameters()).device
    missing, unexpected = load_model(
        model, str(folder / "model.safetensors"), strict=False, device=str(device)
    )
    assert not missing and not unexpected, (
        f"checkpoint {folder} does not match the model: missing {missing}, unexpected {unexpected}"
    )


def _torch_save(obj: Any, path: Path) -> None:
    torch.save(obj, path)
    _fsync(path)


def _write_complete(folder: Path, step: int) -> None:
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}
    (folder / COMPLETE).write_text(json.dumps({"step": step, "files": files}, indent=1))
    _fsync(folder / COMPLETE)
    _fsync_dir(folder)


def _publish(tmp: Path, final: Path) -> Path:
    """Rename tmp to final; an existing final (same step written again) is replaced."""
    if final.exists():
        stale = final.with_name(final.name + ".old.tmp")
        shutil.rmtree(stale, ignore_errors=True)
        final.rename(stale)
    tmp.rename(final)
    _fsync_dir(final.parent)
    return final


def _step_dirs(root: Path) -> list[Path]:
    """step-N folders (not *.tmp), newest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found, reverse=True) if p.is_dir()]


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
