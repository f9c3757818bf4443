"""Throughput arithmetic: the device's measured matmul peak, tokens/s and MFU.

peak = measure_peak_flops(torch.device("cpu"), torch.float32)  # FLOP/s, cached per process
mfu = flops_per_token * tokens_per_s / peak
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

_PEAK_CACHE: dict[tuple[str, torch.dtype], float] = {}


def measure_peak_flops(
    device: torch.device | str, dtype: torch.dtype | None = None, seconds: float = 1.0
) -> float:
    """FLOP/s of a big square matmul on `device` (fp32 on CPU, bf16 on CUDA), timed ~1 s."""
    device = torch.device(device)
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    key = (str(device), dtype)
    if key not in _PEAK_CACHE:
        _PEAK_CACHE[key] = matmul_flops(device, dtype, seconds)
    return _PEAK_CACHE[key]


def best_peak_flops(device: torch.device | str, cache_file: str | Path | None) -> float:
    """The highest peak measured on this machine so far (a busy moment reads low).

    Kept in `cache_file` (JSON, per device and dtype) so MFU is not inflated when a job
    starts while other processes hold the cores.
    """
    device = torch.device(device)
    now = measure_peak_flops(device)
    if cache_file is None:
        return now
    path, key = Path(cache_file), f"{device.type}:{torch.get_num_threads()}"
    try:
        seen = json.loads(path.read_text())
    except (OSError, ValueError):
        seen = {}
    best = max(now, float(seen.get(key, 0.0)))
    if best > seen.get(key, 0.0):
        seen[key] = best
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(seen))
        tmp.replace(path)
    return best


def matmul_flops(device: torch.device, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """One fresh (uncached) timing of square matmuls: FLOP/s over about `seconds`."""
    n = 8192 if device.type == "cuda" else 2048
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    out = torch.empty(n, n, device=device, dtype=dtype)
    torch.matmul(a, b, out=out)  # warm-up
    _sync(device)
    iters, elapsed, start = 0, 0.0, time.perf_counter()
    while elapsed < seconds or iters < 3:
        for _ in range(4 if device.type == "cuda" else 1):
            torch.matmul(a, b, out=out)
            iters += 1
        _sync(device)
        elapsed = time.perf_counter() - start
    return 2.0 * n**3 * iters / elapsed


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mfu(flops_per_token: float, tokens_per_s: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: achieved training FLOP/s over the device peak (0..1)."""
    return flops_per_token * tokens_per_s / peak_flops if peak_flops > 0 else 0.0


class Throughput:
    """Tokens/s over the interval since the last `rate()` call (CUDA-synchronised on read)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.tokens = 0
        self.start = time.perf_counter()

    def add(self, tokens: int) -> None:
        self.tokens += tokens

    def rate(self) -> float:
        _sync(self.device)
        now = time.perf_counter()
        rate = self.tokens / max(now - self.start, 1e-9)
        self.tokens, self.start = 0, now
        return rate

    def restart(self) -> None:
        """Start a new interval now (after eval or checkpointing, which are not training)."""
        _sync(self.device)
        self.tokens, self.start = 0, time.perf_counter()
