"""Quantized decode on CPU: int8 or int4 weight-only linear layers, in place.

    model, tok = load_causal_lm(folder, quantize="int8")   # or quantize_model(model, "int4")

- int8: weight-only, one fp32 scale per output row (w ≈ q * scale, q in [-127, 127]); the
  activations stay fp32. Decode (1-8 rows) runs engines/csrc/gemv.c's int8 kernel, which reads
  a quarter of fp32's bytes; wider inputs (a prompt) dequantize the weight for torch's matmul.
  Without the kernel (no C compiler, no AVX2) every call dequantizes: correct, slower than
  fp32. (Dynamic int8, `torch.ao.quantization.quantize_dynamic`, quantizes the activations too:
  on SmolLM2-135M it answered 1 of 12 questions fp32 answers 9 of; docs/performance.md.)
- int4: weight-only, groups of GROUP input columns with an fp32 scale and zero each
  (w ≈ q * scale + zero, q in [0, 15], two a byte): 6 bits a weight, about 5x less to read
  than fp32. Decode (up to 64 rows) runs engines/csrc/gemv.c's int4 kernel; wider inputs (a
  prompt) dequantize the weight for torch's matmul. Without the kernel (no C compiler, no
  AVX2) the layer is packed for PyTorch's own CPU int4 kernel instead
  (`aten._weight_int4pack_mm_for_cpu`, the kernel torchao wraps): the same weights, but
  slower than fp32 decode on AVX2 CPUs and far slower on prompts.

Both change the numbers a little: greedy output can drift from fp32 after a while.
benchmarks/decode_limits.py reports the speed-up next to the accuracy on a task set, so a user
sees what they trade. Quantized models are for inference only (no gradients).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engines import cpu_kernels
from engines.errors import UserError

KINDS = ("none", "int8", "int4")
GROUP = cpu_kernels.Q4_GROUP  # int4: input columns sharing one scale and zero (32)


def quantize_model(model: nn.Module, kind: str | None) -> nn.Module:
    """`model` with its linear layers quantized to `kind` ("none"/None: unchanged), in eval mode."""
    kind = kind or "none"
    if kind not in KINDS:
        raise UserError(f"quantize is {kind!r}: use one of {', '.join(KINDS)}")
    if kind == "none":
        return model
    if next(model.parameters()).device.type != "cpu":
        raise UserError(f"quantize={kind} runs on the CPU only: load the model with device='cpu'")
    model.eval()
    _swap(model, Int8Linear if kind == "int8" else Int4Linear)
    return model


def _swap(module: nn.Module, kind: type) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Linear) and kind.fits(child):
            setattr(module, name, kind(child))
        else:
            _swap(child, kind)


class Int8Linear(nn.Module):
    """A frozen nn.Linear with int8 weights and one fp32 scale per output row."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        w = linear.weight.detach().float()
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127  # (N,)
        self.register_buffer(
            "qweight", (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8)
        )
        self.register_buffer("scale", scale.contiguous())
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().float())

    @staticmethod
    def fits(linear: nn.Linear) -> bool:
        return linear.weight.dtype == torch.float32

    def dequantized(self) -> torch.Tensor:
        return self.qweight.float() * self.scale[:, None]  # (N, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if cpu_kernels.fast_rows(x, self.in_features):
            y = cpu_kernels.linear_q8(x, self.qweight, self.scale)
            return y if self.bias is None else y.add_(self.bias)
        return F.linear(x, self.dequantized().to(x.dtype), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


class Int4Linear(nn.Module):
    """A frozen nn.Linear with int4 weights: w ≈ q * scale + zero per group of GROUP columns.

    Packed for engines/csrc/gemv.c where the kernel is available (buffers qweight (N, K/2)
    uint8, scale and zero (N, K/GROUP) fp32; `uses_kernel`), else for PyTorch's int4 kernel
    (packed, scales_zeros): the same q, scales and zeros either way."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        q, scale, zero = quantize_int4(linear.weight.detach().float())
        self.uses_kernel = cpu_kernels.available()
        if self.uses_kernel:
            self.register_buffer("qweight", cpu_kernels.pack_q4(q))  # (N, K/2) uint8
            self.register_buffer("scale", scale)  # (N, K/GROUP)
            self.register_buffer("zero", zero)  # (N, K/GROUP)
        else:
            packed, scales_zeros = pack_int4(q, scale, zero)
            self.register_buffer("packed", packed)  # (N, K/2) uint8, aten's layout
            self.register_buffer("scales_zeros", scales_zeros)  # (K/GROUP, N, 2)
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().float())

    @staticmethod
    def fits(linear: nn.Linear) -> bool:
        aten_ok = linear.out_features % 16 == 0  # PyTorch's packing wants rows in sixteens
        return (
            linear.in_features % GROUP == 0
            and linear.weight.dtype == torch.float32
            and (aten_ok or cpu_kernels.available())
        )

    def dequantized(self) -> torch.Tensor:
        """The fp32 weight (N, K) this layer computes with."""
        if self.uses_kernel:
            return cpu_kernels.dequantize_q4(self.qweight, self.scale, self.zero)
        return self._aten(torch.eye(self.in_features), bias=False).t().contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.uses_kernel:
            return self._aten(x, bias=True)
        if cpu_kernels.fast_rows(x, self.in_features, max_rows=cpu_kernels.Q4_MAX_ROWS):
            y = cpu_kernels.linear_q4(x, self.qweight, self.scale, self.zero)
            return y if self.bias is None else y.add_(self.bias)
        # a prompt, a gradient wanted, another dtype: dequantize for torch's matmul
        return F.linear(x, self.dequantized().to(x.dtype), self.bias)

    def _aten(self, x: torch.Tensor, bias: bool) -> torch.Tensor:
        """x @ w.T (+ bias) through PyTorch's int4 kernel."""
        shape = x.shape  # (..., K)
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(
            x.reshape(-1, shape[-1]).float().contiguous(), self.packed, GROUP, self.scales_zeros
        )  # (M, N)
        if bias and self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        kernel = "gemv.c" if self.uses_kernel else "aten"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, group={GROUP}, "
            f"kernel={kernel}"
        )


def quantize_int4(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric 4-bit groups of w (N, K): q (N, K) uint8 in 0..15, scale and zero (N, K/G)
    with w ≈ q * scale + zero (zero is the group's minimum, scale its range / 15)."""
    N, K = w.shape
    wg = w.reshape(N, K // GROUP, GROUP)  # (N, K/G, G)
    lo, hi = wg.amin(-1, keepdim=True), wg.amax(-1, keepdim=True)
    scale = (hi - lo).clamp(min=1e-8) / 15
    q = ((wg - lo) / scale).round().clamp(0, 15).to(torch.uint8).reshape(N, K)
    return q, scale[..., 0].contiguous(), lo[..., 0].contiguous()


def pack_int4(
    q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """quantize_int4's groups in aten's layout: (packed (N, K/2) uint8, scales_zeros (K/G, N, 2))."""
    aten_zero = zero + 8 * scale  # aten computes (q - 8) * scale + zero
    scales_zeros = torch.stack([scale, aten_zero], -1).transpose(0, 1).contiguous()
    return torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.to(torch.int32), 1), scales_zeros


def dequantize_int4(layer: Int4Linear) -> torch.Tensor:
    """The fp32 weight (N, K) an Int4Linear computes with (for tests)."""
    return layer.dequantized()


def weight_bytes(model: Any) -> int:
    """Bytes a decode step reads: parameters and buffers (packed int4, int8 packed params)."""
    total = sum(t.numel() * t.element_size() for t in model.parameters())
    total += sum(t.numel() * t.element_size() for t in model.buffers())
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    for mod in model.modules():
        if isinstance(mod, dynamic):
            weight = mod.weight()  # int8 (N, K)
            total += weight.numel() * weight.element_size()
    return total
