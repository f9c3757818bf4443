"""One decode step of a Llama model, without the framework around it.

    step = LlamaStep.after_prefill(model, cache, capacity)   # None: use model() instead
    logits = step(ids, positions, mask)                      # (B, V) for the next token

At batch 1 on a CPU a decode step of SmolLM2-135M reads 538 MB of weights, and everything
else it does is small. Through `model(...)` that everything else cost a third of a step on
this project's CPUs: the transformers cache concatenates keys and values every step, the
attention mask and rotary tables are rebuilt in every call, RMSNorm is six ops. This step keeps
keys and values in preallocated buffers (written in place, doubled when outgrown), computes
the rotary angles once a step for every layer, and runs RMSNorm, rotary, attention and the
matmuls through engines.cpu_kernels (C, one call each; q/k/v and gate/up in one pass). Same
numbers as the model's forward up to the order of float sums
(tests/engines/test_llama_decode.py).

The prompt still runs through `model(...)` (one big batched pass, where the framework's cost is
small); its transformers cache is copied into the buffers once. Plain transformers
LlamaForCausalLM models on the CPU qualify, fp32 or with engines.quantize's int8 or int4 layers
(SmolLM2 and the models trained here); LoRA-wrapped, sharded or other architectures, and int4
layers packed for PyTorch's kernel (no C kernel when quantized), keep `model(...)`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engines import cpu_kernels
from engines.quantize import Int4Linear, Int8Linear

STATIC_ROPE = ("default", "linear", "llama3")  # inv_freq fixed at load (no dynamic rescaling)
PROJ_ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
PROJ_MLP = ("gate_proj", "up_proj", "down_proj")


def fits(model: Any) -> bool:
    """Whether `model` can decode through LlamaStep (else its own forward is used)."""
    from transformers import LlamaForCausalLM

    if type(model) is not LlamaForCausalLM or model.training:
        return False
    cfg, inner = model.config, model.model
    rope = getattr(inner.rotary_emb, "rope_type", "default")
    linears = [model.lm_head] + [
        getattr(part, name)
        for layer in inner.layers
        for part, names in ((layer.self_attn, PROJ_ATTN), (layer.mlp, PROJ_MLP))
        for name in names
    ]
    return (
        cpu_kernels.available()
        and all(type(m) in (nn.Linear, Int8Linear, Int4Linear) for m in linears)
        and all(m.uses_kernel for m in linears if type(m) is Int4Linear)
        and all(
            len({type(getattr(part, n)) for n in names}) == 1
            for layer in inner.layers
            for part, names in ((layer.self_attn, PROJ_ATTN[:3]), (layer.mlp, PROJ_MLP[:2]))
        )
        and rope in STATIC_ROPE
        and getattr(cfg, "pretraining_tp", 1) == 1
        and all(m.in_features % 8 == 0 for m in linears)  # the kernel's vector width
        and _head_dim(cfg) % 8 == 0
        and cfg.hidden_act == "silu"
        and all(
            p.device.type == "cpu"
            and p.dtype == torch.float32
            and type(p) is nn.Parameter
            and p.is_contiguous()
            for p in model.parameters()
        )
    )


def _head_dim(cfg: Any) -> int:
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


class _Layer:
    """One decoder layer's weights, read once from its modules (attribute lookups on
    nn.Module cost microseconds each), and its matmul plans."""

    def __init__(self, layer: Any, rows: int) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        self.norm1, self.norm2 = layer.input_layernorm.weight, layer.post_attention_layernorm.weight
        self.scaling = attn.scaling
        self.qkv_bias = [attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]
        self.gate_up_bias = [mlp.gate_proj.bias, mlp.up_proj.bias]
        self.o_bias, self.down_bias = attn.o_proj.bias, mlp.down_proj.bias
        Matmuls = cpu_kernels.Matmuls
        self.qkv = Matmuls([_weight(attn.q_proj), _weight(attn.k_proj), _weight(attn.v_proj)], rows)
        self.gate_up = Matmuls([_weight(mlp.gate_proj), _weight(mlp.up_proj)], rows)
        self.o_mm = Matmuls([_weight(attn.o_proj)], rows)
        self.down_mm = Matmuls([_weight(mlp.down_proj)], rows)

    def resize(self, rows: int) -> None:
        for plan in (self.qkv, self.gate_up, self.o_mm, self.down_mm):
            plan.resize(rows)


def _weight(layer: nn.Module) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """What the kernel reads: an fp32 weight, an int8 one with its row scales, or an int4 one
    with its group scales and zeros."""
    if isinstance(layer, Int8Linear):
        return layer.qweight, layer.scale
    if isinstance(layer, Int4Linear):
        return layer.qweight, layer.scale, layer.zero
    return layer.weight


def _add_bias(ys: list[torch.Tensor], biases: list[torch.Tensor | None]) -> list[torch.Tensor]:
    return [y if b is None else y + b for y, b in zip(ys, biases)]


class LlamaStep:
    """Decode steps of a LlamaForCausalLM over a preallocated KV cache."""

    def __init__(self, model: Any, batch: int, capacity: int) -> None:
        cfg, inner = model.config, model.model
        self.model, self.embed, self.lm_head = model, inner.embed_tokens, model.lm_head
        self.final_norm = inner.norm.weight
        self.layers = [_Layer(layer, batch) for layer in inner.layers]
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = _head_dim(cfg)
        self.attn_out = torch.empty((batch, 1, self.heads * self.head_dim))
        self.eps = cfg.rms_norm_eps
        self.inv_freq = inner.rotary_emb.inv_freq.float()  # (d/2,)
        self.rope_scale = float(getattr(inner.rotary_emb, "attention_scaling", 1.0))
        shape = (batch, self.kv_heads, capacity, self.head_dim)
        self.keys = [torch.empty(shape) for _ in self.layers]
        self.values = [torch.empty(shape) for _ in self.layers]
        self.length = 0  # positions filled (the same for every row: prompts are left-padded)

    @classmethod
    def after_prefill(cls, model: Any, cache: Any, capacity: int) -> LlamaStep | None:
        """A step whose buffers hold `cache` (a transformers DynamicCache after the prompt),
        room for `capacity` positions in all; None where the model does not fit."""
        if not fits(model):
            return None
        layers = cache.layers
        if len(layers) != len(model.model.layers) or any(not hasattr(c, "keys") for c in layers):
            return None
        batch, _, length, _ = layers[0].keys.shape
        step = cls(model, batch, max(capacity, length + 1))
        for i, layer in enumerate(layers):
            step.keys[i][:, :, :length] = layer.keys
            step.values[i][:, :, :length] = layer.values
        step.length = length
        return step

    def select(self, index: torch.Tensor) -> None:
        """Keep only these batch rows (finished rows leave the batch)."""
        self.keys = [k[index] for k in self.keys]
        self.values = [v[index] for v in self.values]
        for layer in self.layers:
            layer.resize(len(index))
        self.attn_out = torch.empty((len(index), 1, self.heads * self.head_dim))

    def __call__(
        self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Logits (B, V) after feeding `ids` (B, 1) at `positions` (B, 1); `mask` (B, length+1)
        marks real (1) and padding (0) positions, this one included."""
        t = self.length
        if t >= self.keys[0].shape[2]:
            self._grow()
        B, H, Hkv = ids.shape[0], self.heads, self.kv_heads
        x = self.embed(ids)  # (B, 1, C)
        freqs = positions.float() * self.inv_freq  # (B, d/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (B, d)
        cos, sin = emb.cos().mul_(self.rope_scale), emb.sin().mul_(self.rope_scale)
        keep = None if bool(mask.all()) else mask.to(torch.uint8).contiguous()  # (B, t+1)
        rms_norm, rope_, eps = cpu_kernels.rms_norm, cpu_kernels.rope_, self.eps
        for i, layer in enumerate(self.layers):
            q, k, v = _add_bias(layer.qkv(rms_norm(x, layer.norm1, eps)), layer.qkv_bias)
            rope_(q, cos, sin, H)
            rope_(k, cos, sin, Hkv)
            a = cpu_kernels.attend(
                q, k, v, self.keys[i], self.values[i], keep, t, layer.scaling, self.attn_out
            )  # (B, 1, H*d); k and v now at position t of the cache
            (o,) = _add_bias(layer.o_mm(a), [layer.o_bias])
            x = x + o
            gate, up = _add_bias(layer.gate_up(rms_norm(x, layer.norm2, eps)), layer.gate_up_bias)
            (down,) = _add_bias(layer.down_mm(F.silu(gate).mul_(up)), [layer.down_bias])
            x = x + down
        self.length = t + 1
        x = rms_norm(x[:, -1], self.final_norm, eps)
        if isinstance(self.lm_head, (Int8Linear, Int4Linear)):
            return self.lm_head(x)
        if B > cpu_kernels.MAX_ROWS:
            return F.linear(x, self.lm_head.weight)
        return cpu_kernels.linear(x, self.lm_head.weight)  # (B, V), a fresh tensor

    def _grow(self) -> None:
        """Double the buffers (a long generation outgrew the first allocation)."""

        def grown(t: torch.Tensor) -> torch.Tensor:
            out = t.new_empty((*t.shape[:2], 2 * t.shape[2], t.shape[3]))
            out[:, :, : self.length] = t[:, :, : self.length]
            return out

        self.keys = [grown(k) for k in self.keys]
        self.values = [grown(v) for v in self.values]
