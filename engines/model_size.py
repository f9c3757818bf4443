"""The shape of a GPT (`ModelSize`) and what follows from it without building it: parameter
count and training memory. Plain Python, so a job spec can be checked before torch loads.

    size = ModelSize(n_layer=4, n_head=4, n_embd=128, block_size=128, vocab_size=2048)
    size.params  # 1,050,240 (tied embeddings, as engines.model builds it)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engines.errors import UserError


@dataclass(frozen=True)
class ModelSize:
    """The shape of a GPT: depth, width, heads, context and vocabulary."""

    n_layer: int
    n_head: int
    n_embd: int
    block_size: int  # context length in tokens
    vocab_size: int
    n_kv_head: int | None = None  # None: as many as n_head (no grouped-query attention)
    intermediate_size: int | None = None  # None: SwiGLU default, about 8/3 · n_embd
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
            if int(getattr(self, name)) < 1:
                raise UserError(
                    f"model size: {name} must be a positive integer, got {getattr(self, name)}"
                )
        if self.n_embd % self.n_head:
            example = self.n_head * max(1, self.n_embd // self.n_head)
            raise UserError(
                f"model size: n_head ({self.n_head}) must divide n_embd ({self.n_embd}); "
                f"pick n_embd a multiple of n_head, e.g. {example}"
            )
        if self.kv_heads < 1 or self.n_head % self.kv_heads:
            raise UserError(
                f"model size: n_kv_head ({self.n_kv_head}) must divide n_head ({self.n_head})"
            )
        if self.intermediate_size is not None and self.intermediate_size < 1:
            raise UserError(
                f"model size: intermediate_size must be positive, got {self.intermediate_size}"
            )

    @property
    def kv_heads(self) -> int:
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def ffn_size(self) -> int:
        """SwiGLU hidden width: given, or 8/3 · n_embd rounded up to 64 (32 below 256 wide)."""
        if self.intermediate_size is not None:
            return self.intermediate_size
        multiple = 64 if self.n_embd >= 256 else 32
        return multiple * math.ceil(8 * self.n_embd / 3 / multiple)

    def check_context(self, seq_len: int, field: str = "seq_len") -> None:
        """Raise a UserError naming `field` when `seq_len` exceeds this size's context."""
        if seq_len > self.block_size:
            raise UserError(
                f"{field} ({seq_len}) is longer than the model context block_size "
                f"({self.block_size}); lower {field} or raise block_size"
            )

    @property
    def params(self) -> int:
        """Parameters of the Llama engines.model builds: tied embedding, per layer attention
        (q, k, v, o), SwiGLU (gate, up, down) and two RMSNorms, and a final RMSNorm."""
        d, kv = self.n_embd, self.kv_heads * self.head_dim
        layer = 2 * d * d + 2 * d * kv + 3 * d * self.ffn_size + 2 * d
        return self.vocab_size * d + self.n_layer * layer + d
