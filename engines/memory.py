"""Training memory and compute, estimated before anything is built, and the memory a device
has free.

    mem = training_memory(params=1_000_000, batch=16, seq_len=128, n_layer=4, n_embd=128,
                          vocab_size=2048)             # per rank, by part
    mem.total == training_bytes(params=1_000_000, batch=16, ...)
    mem = training_memory(..., trainable=lora_params(config, 8, ["q_proj", "v_proj"]))
    mem = training_memory(..., shards=4)               # FSDP over 4 processes: per rank
    have = available_bytes("cpu")
    flops = training_flops(params, tokens)             # 6·N·D (4·N·D when most are frozen)

The estimate is deliberately simple and a little generous: fp32 weights (4 bytes a
parameter), fp32 gradients (4) and AdamW's two moments (8) for the parameters that train,
plus activations kept for the backward pass, about `ACTIVATION_FACTOR` floats per token, layer
and unit of width (attention inputs and outputs, the SwiGLU hidden states, norms and
residuals), plus the logits and their gradient. Frozen weights (LoRA's base, a DPO reference,
a reward model) keep no gradient and no optimizer state. Under FSDP the weights, gradients
and optimizer state are split over the processes, and each one also holds the unsharded
weights of the unit it computes (one block, the next one prefetched, and the root's
embedding); activations are per rank either way.
No torch import unless the device is a GPU.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

BYTES_PER_PARAM = 4 + 4 + 8  # fp32 weight, its gradient, AdamW exp_avg and exp_avg_sq
# Floats saved per token, per layer and unit of width (n_embd) for the backward pass. 30 is
# measured: a 4 × 256 Llama (SDPA attention, SwiGLU) trained in fp32 on CPU at batch 32 and 64
# × 128 tokens grew its peak RSS by 18.75 MB a sequence, 3 MB of it the logits.
ACTIVATION_FACTOR = 30
FLOAT_BYTES = 4


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes one training step needs on one rank, by part."""

    weights: int  # the trained model's (its shard under FSDP) plus frozen models held
    gradients: int
    optimizer: int  # AdamW's exp_avg and exp_avg_sq
    activations: int  # kept for the backward pass
    logits: int  # logits, log-softmax and their gradient, in fp32
    gathered: int  # FSDP: unsharded weights and gradients of the units being computed
    shards: int  # processes the weights, gradients and optimizer state are split over

    @property
    def total(self) -> int:
        return (
            self.weights
            + self.gradients
            + self.optimizer
            + self.activations
            + self.logits
            + self.gathered
        )

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


def training_memory(
    *,
    params: int,
    batch: int,
    seq_len: int,
    n_layer: int,
    n_embd: int,
    vocab_size: int,
    trainable: int | None = None,
    frozen_params: int = 0,
    activation_bytes: int = FLOAT_BYTES,
    shards: int = 1,
) -> TrainingMemory:
    """Per-rank training memory of a model with `params` parameters (`trainable` of them
    train; all by default) on `batch` sequences of `seq_len` tokens per micro-batch.

    `frozen_params`: parameters of other models held beside it (a reference, a reward model),
    weights only and never sharded. `activation_bytes` is 2 under bf16 autocast (CUDA), 4 in
    fp32 (CPU); the logits' loss is computed in fp32 either way (`vocab_size` 0: no LM head).
    `shards` > 1 is FSDP over that many processes."""
    trainable = params if trainable is None else min(trainable, params)
    shards = max(1, shards)
    tokens = batch * seq_len
    activations = tokens * n_layer * n_embd * ACTIVATION_FACTOR * activation_bytes
    logits = 3 * tokens * vocab_size * FLOAT_BYTES
    gathered = 0
    if shards > 1:
        root = vocab_size * n_embd  # the embedding (tied lm_head): gathered with the root
        block = max(0, params - root) // max(1, n_layer)
        gathered = (root + 2 * block) * FLOAT_BYTES + block * FLOAT_BYTES  # + a block's grads
    return TrainingMemory(
        weights=ceil_div(params * FLOAT_BYTES, shards) + frozen_params * FLOAT_BYTES,
        gradients=ceil_div(trainable * FLOAT_BYTES, shards),
        optimizer=ceil_div(trainable * 2 * FLOAT_BYTES, shards),
        activations=activations,
        logits=logits,
        gathered=gathered,
        shards=shards,
    )


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
    return training_memory(
        params=params,
        batch=batch,
        seq_len=seq_len,
        n_layer=n_layer,
        n_embd=n_embd,
        vocab_size=vocab_size,
        activation_bytes=activation_bytes,
    ).total


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def training_flops(params: int, tokens: int, trainable: int | None = None) -> float:
    """FLOPs of training on `tokens` tokens: 6·N·D (forward 2N, backward 4N a token).

    When only a few parameters train (LoRA), the backward pass still carries the activation
    gradients through every weight (2N) but computes weight gradients only for the trainable
    ones: (4N + 2·trainable)·D."""
    if trainable is None or trainable >= params:
        return 6.0 * params * tokens
    return (4.0 * params + 2.0 * trainable) * tokens


# Input and output width of each projection of a Llama-style block, from its HF config.
_LLAMA_PROJ = {
    "q_proj": ("d", "q"),
    "k_proj": ("d", "kv"),
    "v_proj": ("d", "kv"),
    "o_proj": ("q", "d"),
    "gate_proj": ("d", "ffn"),
    "up_proj": ("d", "ffn"),
    "down_proj": ("ffn", "d"),
}


def lora_params(config: dict, r: int, targets: list[str]) -> int | None:
    """LoRA's trainable parameters, r·(in + out) per targeted projection and layer, from a
    Llama-style HF config; None when a target is not one of its projections."""
    try:
        d = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        head_dim = int(config.get("head_dim") or d // heads)
        widths = {
            "d": d,
            "q": heads * head_dim,
            "kv": int(config.get("num_key_value_heads") or heads) * head_dim,
            "ffn": int(config["intermediate_size"]),
        }
        layers = int(config["num_hidden_layers"])
    except (KeyError, TypeError, ValueError):
        return None
    if not targets or any(t not in _LLAMA_PROJ for t in targets):
        return None
    per_layer = sum(r * (widths[_LLAMA_PROJ[t][0]] + widths[_LLAMA_PROJ[t][1]]) for t in targets)
    return layers * per_layer


def available_bytes(device: str) -> int | None:
    """Free memory on `device` ("cpu" or "cuda"), or None when it cannot be read."""
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free)
    return _host_available()


def _proc_kib(path: str, field: str) -> int | None:
    """A `Field:  N kB` line of a /proc file, in bytes; None when absent or unreadable."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _host_available() -> int | None:
    """MemAvailable from /proc/meminfo, else the free physical pages (os.sysconf)."""
    if (found := _proc_kib("/proc/meminfo", "MemAvailable")) is not None:
        return found
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def process_rss() -> int | None:
    """This process's resident memory (VmRSS) in bytes, or None off Linux."""
    return _proc_kib("/proc/self/status", "VmRSS")


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
