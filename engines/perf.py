"""Throughput arithmetic: the device's measured matmul peak, tokens/s and an honest MFU.

peak = measure_peak_flops(torch.device("cpu"), torch.float32)  # FLOP/s, best of several trials
peak = best_peak_flops("cpu", cache_file)   # the highest peak ever seen here (cached as JSON)
peak = raise_peak("cpu", cache_file, achieved)  # an achieved rate above the peak raises it
mfu = mfu(flops_per_token, tokens_per_s, peak)  # 0..1, never above 1
format_mfu(0.634) == "63.4%"

A peak measured while other processes hold the cores reads low, and MFU against a low peak
reads high (a fresh home once printed 110%). So the peak is the best of several short trials,
the best seen on this machine is kept, a job that achieves more than it raises it, and MFU is
clamped to 1 as a last guard.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

_PEAK_CACHE: dict[tuple[str, torch.dtype], float] = {}
TRIALS = 5  # short timings per peak measurement; the best one counts


def measure_peak_flops(
    device: torch.device | str, dtype: torch.dtype | None = None, seconds: float = 1.0
) -> float:
    """FLOP/s of a big square matmul on `device` (fp32 on CPU, bf16 on CUDA): best of TRIALS."""
    device = torch.device(device)
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    key = (str(device), dtype)
    if key not in _PEAK_CACHE:
        _PEAK_CACHE[key] = max(matmul_flops(device, dtype, seconds / TRIALS) for _ in range(TRIALS))
    return _PEAK_CACHE[key]


def _cache_key(device: torch.device) -> str:
    return f"{device.type}:{torch.get_num_threads()}"


def _read_cache(path: Path) -> dict:
    try:
        seen = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return seen if isinstance(seen, dict) else {}


def _remember(path: Path, key: str, value: float) -> float:
    """Store `value` under `key` when it beats what is there; return the best of the two."""
    seen = _read_cache(path)
    try:
        old = float(seen.get(key, 0.0))
    except (TypeError, ValueError):
        old = 0.0
    if value <= old:
        return old
    seen[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps(seen))
    tmp.replace(path)
    return value


def best_peak_flops(device: torch.device | str, cache_file: str | Path | None) -> float:
    """The highest peak measured on this machine so far (a busy moment reads low).

    Kept in `cache_file` (JSON, per device type and thread count) so MFU is not inflated when
    a job starts while other processes hold the cores.
    """
    device = torch.device(device)
    now = measure_peak_flops(device)
    if cache_file is None:
        return now
    return _remember(Path(cache_file), _cache_key(device), now)


def raise_peak(
    device: torch.device | str, cache_file: str | Path | None, achieved: float, peak: float
) -> float:
    """The peak to use after a job achieved `achieved` FLOP/s: never below what was achieved.

    An achieved rate above `peak` proves the peak read low; it becomes the new peak (and is
    cached, so the next job starts from it)."""
    if achieved <= peak:
        return peak
    if cache_file is not None:
        _remember(Path(cache_file), _cache_key(torch.device(device)), achieved)
    return achieved


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
    while elapsed < seconds or iters < 2:
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
    """Model FLOPs utilisation: achieved training FLOP/s over the device peak, in [0, 1]."""
    if peak_flops <= 0:
        return 0.0
    return min(1.0, flops_per_token * tokens_per_s / peak_flops)


def format_mfu(value: float) -> str:
    """MFU as a percentage for people ("63.4%"), never shown above 100%."""
    return f"{100.0 * min(max(value, 0.0), 1.0):.1f}%"


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
