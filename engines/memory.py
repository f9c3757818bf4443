"""Training memory, estimated before anything is built, and the memory a device has free.

    need = training_bytes(params=1_000_000, batch=16, seq_len=128, n_layer=4, n_embd=128,
                          vocab_size=2048)
    have = available_bytes("cpu")

The estimate is deliberately simple and a little generous: fp32 weights, gradients and AdamW's
two moments (16 bytes a parameter), plus activations kept for the backward pass, about
`ACTIVATION_FACTOR` floats per token, layer and unit of width (attention inputs and outputs,
the SwiGLU hidden states, norms and residuals), plus the logits and their gradient.
No torch import unless the device is a GPU.
"""

from __future__ import annotations

import os
from pathlib import Path

BYTES_PER_PARAM = 4 + 4 + 8  # fp32 weight, its gradient, AdamW exp_avg and exp_avg_sq
ACTIVATION_FACTOR = 24  # floats saved per token, per layer, per unit of width (n_embd)
FLOAT_BYTES = 4


def training_bytes(
    *,
    params: int,
    batch: int,
    seq_len: int,
    n_layer: int,
    n_embd: int,
    vocab_size: int,
    activation_bytes: int = FLOAT_BYTES,
) -> int:
    """Bytes one training step needs: weights + gradients + optimizer + activations.
    `activation_bytes` is 2 under bf16 autocast (CUDA), 4 in fp32 (CPU); the logits' loss
    is computed in fp32 either way."""
    tokens = batch * seq_len
    activations = tokens * n_layer * n_embd * ACTIVATION_FACTOR * activation_bytes
    logits = 3 * tokens * vocab_size * FLOAT_BYTES  # logits, log-softmax, their gradient
    return params * BYTES_PER_PARAM + activations + logits


def available_bytes(device: str) -> int | None:
    """Free memory on `device` ("cpu" or "cuda"), or None when it cannot be read."""
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free)
    return _host_available()


def _host_available() -> int | None:
    """MemAvailable from /proc/meminfo, else the free physical pages (os.sysconf)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def gpu_present() -> bool:
    """Whether this machine shows an NVIDIA GPU, without importing torch (cheap)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return Path("/dev/nvidia0").exists() or (gpus.is_dir() and any(gpus.iterdir()))


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"
