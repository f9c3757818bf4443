"""Causal self-attention for training on the CPU, and the attention implementation that uses it.

    from engines import attention
    attention.use_for_training(model)   # a transformers model: its attention takes this path

torch's CPU flash attention runs a training step's attention at about a quarter of the rate
its GEMM reaches (docs/performance.md). Here the four matmuls of attention and their
gradients run in torch's GEMM, and the softmax between them (and its gradient) is one C pass
over each row while it is in cache (engines/csrc/train.c, built by engines.cpu_kernels).
The causal triangle is cut into row blocks: the block of query rows [r0, r1) is multiplied
against keys [0, r1) only, so with two blocks the upper right quarter of the products (half of
those the causal mask discards) is never computed. transformers' boolean masks (padding,
packed sequences) are applied in the same C pass. The softmax of each block is kept for the
backward pass (no recomputation), which is why the path is taken only when that costs at most
MAX_SAVED_BYTES per layer; everything else (dropout, inference, bf16, CUDA, long contexts,
sliding windows) goes to torch's SDPA as before.

`use_for_training(model)` registers the implementation with transformers under the name
"workbench_cpu" and switches the model to it; the name is not written to a saved config, so a
saved model loads anywhere. A model compiled afterwards keeps the path: the forward and
backward are `torch.library` ops, opaque to the compiler.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engines import cpu_kernels

__all__ = ["IMPLEMENTATION", "MAX_SAVED_BYTES", "causal_attention", "use_for_training"]

IMPLEMENTATION = "workbench_cpu"
# decoders whose masks are always within the causal one (no bidirectional spans)
CAUSAL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
# softmax kept for backward, per layer; beyond it, SDPA's flash path (which keeps a float a
# row). 16 MB: the 13.8M model at 8 × 256 keeps 9.4 MB a layer (about a sixth of its other
# activations); SmolLM2 at 4 × 512 would keep 23.6 MB a layer, 0.7 GB over 30 layers, where
# attention is about 12% of the step's FLOPs: it stays on SDPA (not measured on this path)
MAX_SAVED_BYTES = 16 << 20


def blocks_for(T: int) -> int:
    """Row blocks for a context of T: one below 128 (the extra matmul calls cost more than the
    skipped products save), then one per 128 rows, at most four."""
    return max(1, min(4, T // 128))


def _bounds(T: int, blocks: int) -> list[tuple[int, int]]:
    ends = [T * (j + 1) // blocks for j in range(blocks)]
    return list(zip([0, *ends[:-1]], ends, strict=True))


def saved_elements(R: int, T: int, blocks: int) -> int:
    """Floats of softmax kept for R (batch × heads) rows of T queries: the blocks' sizes."""
    return R * sum((r1 - r0) * r1 for r0, r1 in _bounds(T, blocks))


def _lib():
    lib = cpu_kernels.load()
    assert lib is not None, cpu_kernels.why_not
    return lib


@torch.library.custom_op("workbench::causal_attention", mutates_args=())
def _forward(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float, blocks: int
) -> tuple[Tensor, Tensor]:
    """q, k, v (B, H, T, D) contiguous fp32, mask None or bool broadcastable to (B, H, T, T)
    -> out (B, H, T, D), the softmax blocks (flat)."""
    lib, threads = _lib(), torch.get_num_threads()
    B, H, T, D = q.shape
    q3, k3, v3 = q.view(-1, T, D), k.view(-1, T, D), v.view(-1, T, D)
    R = q3.shape[0]
    saved = q.new_empty(saved_elements(R, T, blocks))
    where, strides = None, (0, 0, 0)
    if mask is not None:
        mask = mask.expand(B, H, T, T)
        if mask.stride(-1) != 1:
            mask = mask.contiguous()
        where, strides = mask.data_ptr(), mask.stride()[:3]
    outs, at = [], 0
    for r0, r1 in _bounds(T, blocks):
        p = saved[at : at + R * (r1 - r0) * r1].view(R, r1 - r0, r1)
        at += p.numel()
        torch.bmm(q3[:, r0:r1], k3[:, :r1].transpose(1, 2), out=p)  # raw scores
        lib.causal_softmax_f32(p.data_ptr(), R, r1 - r0, r1, scale, where, H, *strides, threads)
        outs.append(torch.bmm(p, v3[:, :r1]))
    out = outs[0] if blocks == 1 else torch.cat(outs, dim=1)
    return out.view(B, H, T, D), saved


@_forward.register_fake
def _(q, k, v, mask, scale, blocks):
    B, H, T, _ = q.shape
    return torch.empty_like(q), q.new_empty(saved_elements(B * H, T, blocks))


@torch.library.custom_op("workbench::causal_attention_backward", mutates_args=())
def _backward(
    grad: Tensor, q: Tensor, k: Tensor, v: Tensor, saved: Tensor, scale: float, blocks: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of q, k, v from the output's gradient and the forward's softmax blocks."""
    lib, threads = _lib(), torch.get_num_threads()
    B, H, T, D = q.shape
    q3, k3, v3, g3 = (x.reshape(-1, T, D) for x in (q, k, v, grad))
    R = q3.shape[0]
    spans, at = [], 0
    for r0, r1 in _bounds(T, blocks):
        spans.append((r0, r1, saved[at : at + R * (r1 - r0) * r1].view(R, r1 - r0, r1)))
        at += R * (r1 - r0) * r1
    dqs, dk, dv = [], None, None
    for r0, r1, p in reversed(spans):  # the last block spans every key: it sizes dk and dv
        g = g3[:, r0:r1]
        dv_j = torch.bmm(p.transpose(1, 2), g)
        ds = torch.bmm(g, v3[:, :r1].transpose(1, 2))  # d(scores) once the kernel has run
        lib.causal_softmax_bwd_f32(ds.data_ptr(), p.data_ptr(), R, r1 - r0, r1, scale, threads)
        dqs.append(torch.bmm(ds, k3[:, :r1]))
        dk_j = torch.bmm(ds.transpose(1, 2), q3[:, r0:r1])
        if dk is None:
            dk, dv = dk_j, dv_j
        else:
            dk[:, :r1] += dk_j
            dv[:, :r1] += dv_j
    dq = dqs[0] if blocks == 1 else torch.cat(dqs[::-1], dim=1)
    return dq.view(B, H, T, D), dk.view(B, H, T, D), dv.view(B, H, T, D)


@_backward.register_fake
def _(grad, q, k, v, saved, scale, blocks):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _setup_context(ctx, inputs, output) -> None:
    q, k, v, _mask, scale, blocks = inputs
    ctx.save_for_backward(q, k, v, output[1])
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)  # no zeros for the softmax blocks' (absent) gradient
    ctx.scale, ctx.blocks = scale, blocks


def _autograd(ctx, grad_out: Tensor, _grad_saved: Tensor | None):
    q, k, v, saved = ctx.saved_tensors
    dq, dk, dv = _backward(grad_out.contiguous(), q, k, v, saved, ctx.scale, ctx.blocks)
    return dq, dk, dv, None, None, None


_forward.register_autograd(_autograd, setup_context=_setup_context)


def causal_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, scale: float | None = None
) -> Tensor:
    """softmax(q k^T · scale) v over the causal positions (and where the bool `mask`,
    broadcastable to (B, H, T, T), is True) for fp32 CPU q, k, v (B, H, T, D): SDPA's
    `is_causal=True` (with the mask: SDPA's `attn_mask=mask & causal`; a row that may attend
    nowhere gives 0), computed as described above. -> (B, H, T, D)"""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    blocks = blocks_for(q.shape[2])
    qkv = q.contiguous(), k.contiguous(), v.contiguous()
    out, _ = _forward(*qkv, mask, float(scale), blocks)
    return out


def usable(q: Tensor, k: Tensor, v: Tensor) -> bool:
    """Whether q, k, v (B, H, T, D) take this path: fp32 on the CPU, a gradient wanted, and the
    softmax kept for backward within MAX_SAVED_BYTES (use_for_training has checked that the
    kernel is built; checking here would break a compiled graph at every layer)."""
    B, H, T, _ = q.shape
    return (
        q.device.type == "cpu"
        and q.dtype == k.dtype == v.dtype == torch.float32
        and torch.is_grad_enabled()
        and (q.requires_grad or k.requires_grad or v.requires_grad)
        and T > 1
        and k.shape[2] == T
        and 4 * saved_elements(B * H, T, blocks_for(T)) <= MAX_SAVED_BYTES
    )


def _mask_fits(mask: Tensor | None, q: Tensor) -> bool:
    """None, or a bool mask (B or 1, H or 1, T, T) as transformers' SDPA masks are."""
    if mask is None:
        return True
    B, H, T, _ = q.shape
    return (
        mask.dtype == torch.bool
        and mask.dim() == 4
        and mask.shape[0] in (1, B)
        and mask.shape[1] in (1, H)
        and tuple(mask.shape[2:]) == (T, T)
    )


def _attention_forward(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs,
) -> tuple[Tensor, None]:
    """transformers' attention interface: this path where it applies, SDPA's otherwise. The
    models switched to it are causal decoders (use_for_training), whose masks are the causal
    one with padding or packed-sequence boundaries taken out: the causal blocks stay exact."""
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    if (
        _mask_fits(attention_mask, query)
        and causal
        and dropout == 0.0
        and kwargs.get("softcap") is None
        and kwargs.get("sliding_window") is None
        and usable(query, key, value)
    ):
        groups = getattr(module, "num_key_value_groups", 1)
        if groups > 1:
            key, value = repeat_kv(key, groups), repeat_kv(value, groups)
        out = causal_attention(query, key, value, attention_mask, scaling)
        return out.transpose(1, 2).contiguous(), None
    return sdpa_attention_forward(
        module,
        query,
        key,
        value,
        attention_mask,
        dropout=dropout,
        scaling=scaling,
        is_causal=is_causal,
        **kwargs,
    )


def _mask(**kwargs) -> Tensor | None:
    """transformers' mask for this implementation: none for a plain causal mask over a whole
    sequence (the attention is causal itself), SDPA's otherwise. transformers' own SDPA mask
    makes the same skip in eager mode but never while compiling (torch < 2.14)."""
    from transformers.masking_utils import causal_mask_function, sdpa_mask

    q_length, kv_length = kwargs.get("q_length"), kwargs.get("kv_length")
    if (
        kwargs.get("attention_mask") is None
        and kwargs.get("mask_function", causal_mask_function) is causal_mask_function
        and kwargs.get("local_size") is None
        and kwargs.get("allow_is_causal_skip", True)
        and isinstance(q_length, int)
        and q_length == kv_length
        and all(isinstance(kwargs.get(k, 0), int) for k in ("q_offset", "kv_offset"))
        and kwargs.get("q_offset", 0) == kwargs.get("kv_offset", 0) == 0
    ):
        return None
    return sdpa_mask(**kwargs)


def register() -> None:
    """Make IMPLEMENTATION known to transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(IMPLEMENTATION, _attention_forward)
    AttentionMaskInterface.register(IMPLEMENTATION, _mask)


def use_for_training(model: nn.Module) -> bool:
    """Switch a CPU Llama, Mistral or Qwen2/3 model (a causal LM or a reward model on one) whose
    attention is SDPA to this implementation; True if it was switched. Other models are left
    as they are."""
    config = getattr(model, "config", None)
    setter = getattr(model, "set_attn_implementation", None)
    if (
        config is None
        or setter is None
        or getattr(config, "_attn_implementation", None) != "sdpa"
        or getattr(config, "model_type", None) not in CAUSAL_TYPES
        or getattr(config, "is_causal", True) is False
    ):
        return False
    try:
        device = next(model.parameters()).device
    except StopIteration:
        return False
    if device.type != "cpu" or not cpu_kernels.available():
        return False
    register()
    setter(IMPLEMENTATION)
    return config._attn_implementation == IMPLEMENTATION
