"""Quantized decode: int8 dynamic and int4 weight-only linears on a tiny Llama."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engines.errors import UserError
from engines.generate import SamplingParams, generate
from engines.quantize import GROUP, Int4Linear, dequantize_int4, quantize_model, weight_bytes
from tests.engines.tinylm import tiny_llama, tiny_tokenizer

torch.set_num_threads(1)


def tiny_lm():
    tok = tiny_tokenizer()
    kw = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2}
    return tiny_llama(len(tok), seed=1, **kw), tok


def test_int4_linear_matches_its_dequantized_weight_and_stays_close_to_fp32():
    torch.manual_seed(0)
    linear = nn.Linear(4 * GROUP, 48, bias=True)
    q = Int4Linear(linear)
    x = torch.randn(3, 5, 4 * GROUP)  # (B, T, K)
    w = dequantize_int4(q)  # (N, K)
    assert torch.allclose(q(x), x @ w.t() + linear.bias, atol=1e-4)
    step = (linear.weight.amax() - linear.weight.amin()) / 15  # a coarse bound on a group's step
    assert (w - linear.weight).abs().max() <= step / 2 + 1e-6
    packed = q.qweight if q.uses_kernel else q.packed  # gemv.c's layout, or PyTorch's
    assert packed.dtype == torch.uint8 and packed.shape == (48, 2 * GROUP)


@pytest.mark.parametrize("kind", ["int8", "int4"])
def test_quantized_model_generates_and_reads_fewer_bytes(kind):
    model, tok = tiny_lm()
    before = weight_bytes(model)
    quantize_model(model, kind)
    assert weight_bytes(model) < before
    out = generate(model, tok, ["ab", "b"], SamplingParams(max_new_tokens=4, temperature=0))
    assert all(1 <= len(g.token_ids) <= 4 for g in out)


def test_none_is_a_no_op_and_an_unknown_kind_names_the_choices():
    model, _ = tiny_lm()
    assert quantize_model(model, "none") is model and quantize_model(model, None) is model
    with pytest.raises(UserError, match="int8, int4"):
        quantize_model(model, "int3")


def test_the_front_ends_offer_the_kinds_the_engine_has():
    from engines.quantize import KINDS
    from workbench.ops.chat import QUANTIZE  # kept apart so ops need not import torch

    assert QUANTIZE == KINDS
