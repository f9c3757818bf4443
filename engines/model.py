"""GPT model sizes and construction: a Llama-style transformers model built from a `ModelSize`.

Everything pretrained here is a stock `LlamaForCausalLM` (RMSNorm, RoPE, SwiGLU, tied
embeddings, no biases), so a saved folder loads with plain
`AutoModelForCausalLM.from_pretrained` without this project installed.

    size = ModelSize(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=8192)
    model = build_model(size, seed=0, eos_id=0)
    print(describe(size))  # 6 layers × 384 wide, 6 heads, ctx 256: 13.8M params (...)
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel

from engines.model_size import ModelSize

__all__ = ["ModelSize", "build_model", "count_params", "describe", "flops_per_token"]


def llama_config(
    size: ModelSize,
    *,
    bos_id: int | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
) -> LlamaConfig:
    """A transformers LlamaConfig for `size`: RMSNorm, RoPE, SwiGLU, tied embeddings, no biases."""
    return LlamaConfig(
        vocab_size=size.vocab_size,
        hidden_size=size.n_embd,
        intermediate_size=size.ffn_size,
        num_hidden_layers=size.n_layer,
        num_attention_heads=size.n_head,
        num_key_value_heads=size.kv_heads,
        head_dim=size.head_dim,
        hidden_act="silu",
        max_position_embeddings=size.block_size,
        initializer_range=0.02,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": float(size.rope_theta)},
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=0.0,
        tie_word_embeddings=True,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        attn_implementation="sdpa",
    )


def build_model(
    size: ModelSize,
    *,
    seed: int,
    bos_id: int | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
) -> LlamaForCausalLM:
    """A freshly initialised Llama GPT (GPT-2 init), identical for the same size and seed."""
    config = llama_config(size, bos_id=bos_id, eos_id=eos_id, pad_id=pad_id)
    with torch.random.fork_rng(devices=[]):  # transformers' own init must not move the global RNG
        model = LlamaForCausalLM(config)
    init_weights(model, seed=seed)
    return model


def init_weights(model: LlamaForCausalLM, *, seed: int) -> None:
    """GPT-2 init: N(0, 0.02) weights, residual projections scaled by 1/sqrt(2 · n_layer)."""
    gen = torch.Generator().manual_seed(seed)
    residual_std = 0.02 / math.sqrt(2 * model.config.num_hidden_layers)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                if module.weight is model.get_input_embeddings().weight and isinstance(
                    module, nn.Linear
                ):
                    continue  # tied lm_head: already initialised as the embedding
                std = residual_std if name.endswith(("o_proj", "down_proj")) else 0.02
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * std)
            elif hasattr(module, "weight") and "norm" in type(module).__name__.lower():
                module.weight.fill_(1.0)


def count_params(model: nn.Module, exclude_embeddings: bool = False) -> int:
    """Parameters counted once (tied weights once); optionally without the input embedding."""
    total = sum(p.numel() for p in model.parameters())
    if exclude_embeddings and isinstance(model, PreTrainedModel):
        total -= model.get_input_embeddings().weight.numel()
    return total


def size_params(size: ModelSize) -> tuple[int, int]:
    """(total, non-embedding) parameter counts of `build_model(size)` without building it."""
    D, kv_dim = size.n_embd, size.kv_heads * size.head_dim
    attn = D * D * 2 + D * kv_dim * 2  # q, o and k, v projections
    mlp = 3 * D * size.ffn_size
    per_layer = attn + mlp + 2 * D  # two RMSNorms
    non_embedding = size.n_layer * per_layer + D  # final norm
    return non_embedding + size.vocab_size * D, non_embedding


def flops_per_token(model_or_size: nn.Module | ModelSize, seq_len: int | None = None) -> float:
    """Training FLOPs per token: 6N + 12·L·H·Q·T (PaLM appendix B, nanoGPT's estimate_mfu).

    N counts the non-embedding parameters plus the output projection (lm_head), whose
    matmul is real work even when it is tied to the embedding. T defaults to the context.
    """
    if isinstance(model_or_size, ModelSize):
        size = model_or_size
        L, H, Q, T = size.n_layer, size.n_head, size.head_dim, size.block_size
        N = size_params(size)[1] + size.vocab_size * size.n_embd
    else:
        cfg = model_or_size.config
        L, H = cfg.num_hidden_layers, cfg.num_attention_heads
        Q = getattr(cfg, "head_dim", None) or cfg.hidden_size // H
        T = cfg.max_position_embeddings
        N = count_params(model_or_size, exclude_embeddings=True)
        N += model_or_size.get_output_embeddings().weight.numel()
    T = seq_len or T
    return 6.0 * N + 12.0 * L * H * Q * T


def describe(size: ModelSize) -> str:
    """One line: '6 layers × 384 wide, 6 heads, ctx 256: 13.8M params (10.6M non-embedding), ...'."""
    total, non_embedding = size_params(size)
    heads = f"{size.n_head} heads" + (
        f" ({size.kv_heads} kv)" if size.kv_heads != size.n_head else ""
    )
    flops, unit = _scaled(flops_per_token(size), "TGMk")
    return (
        f"{size.n_layer} layers × {size.n_embd} wide, {heads}, ctx {size.block_size}: "
        f"{_count(total)} params ({_count(non_embedding)} non-embedding), "
        f"{flops:.0f} {unit}FLOP/token"
    )


def _scaled(x: float, units: str) -> tuple[float, str]:
    """(12.3, 'M') for 12_300_000; `units` names the 1e12, 1e9, 1e6 and 1e3 prefixes."""
    for scale, unit in zip((1e12, 1e9, 1e6, 1e3), units):
        if x >= scale:
            return x / scale, unit
    return x, ""


def _count(n: int) -> str:
    value, unit = _scaled(n, "TBMk")
    return f"{value:.1f}{unit}" if unit else str(n)
