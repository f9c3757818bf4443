"""The int4 decode kernel (gemv.c's gemv_q4_multi) against dequantize-then-matmul in torch, and a
quantize="int4" model decoding through it with the numbers of its own dequantized fp32 weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engines import cpu_kernels
from engines.generate import SamplingParams, generate
from engines.llama_decode import LlamaStep, fits
from engines.quantize import GROUP, Int4Linear, quantize_model
from tests.engines.tinylm import tiny_llama, tiny_tokenizer

pytestmark = pytest.mark.skipif(not cpu_kernels.available(), reason=str(cpu_kernels.why_not))
PROMPTS = ["The quick brown fox jumps", "Paris", "def add(a, b):\n    return a"]


def _q4(N: int, K: int, seed: int):
    """Random int4 values q (N, K) in 0..15 with group scales and zeros (N, K/32)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (N, K), generator=g, dtype=torch.uint8)
    scale = torch.rand(N, K // GROUP, generator=g) * 0.1 + 1e-3
    zero = torch.randn(N, K // GROUP, generator=g) * 0.5
    return q, scale, zero


def _dense(q, scale, zero) -> torch.Tensor:
    """The reference weight, written out here rather than taken from the code under test."""
    per_column = [t.double().repeat_interleave(GROUP, 1) for t in (scale, zero)]
    return q.double() * per_column[0] + per_column[1]


SHAPES = [(1, 13, 32), (1, 576, 576), (2, 40, 1536), (3, 100, 96), (5, 7, 160), (8, 37, 64)]


@pytest.mark.parametrize("M,N,K", SHAPES + [(7, 64, 320)])
def test_kernel_matches_dequantize_then_matmul(M, N, K):
    q, scale, zero = _q4(N, K, seed=M * N + K)
    x = torch.randn(M, K, generator=torch.Generator().manual_seed(K))
    got = cpu_kernels.linear_q4(x, cpu_kernels.pack_q4(q), scale, zero)
    assert got.shape == (M, N)
    want = (x.double() @ _dense(q, scale, zero).T).float()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
    # and the torch-side unpacking (prompts, wide batches) reads the same bytes the same way
    torch.testing.assert_close(
        cpu_kernels.dequantize_q4(cpu_kernels.pack_q4(q), scale, zero),
        _dense(q, scale, zero).float(),
    )


def test_a_row_gets_the_same_numbers_in_a_batch_as_alone():
    q, scale, zero = _q4(300, 576, seed=1)
    packed = cpu_kernels.pack_q4(q)
    x = torch.randn(12, 576, generator=torch.Generator().manual_seed(1))
    for rows in (12, 8, 7, 2):  # pairs of rows, an odd row at the end, more than MAX_ROWS
        batch = cpu_kernels.linear_q4(x[:rows], packed, scale, zero)
        for m in range(rows):
            alone = cpu_kernels.linear_q4(x[m : m + 1], packed, scale, zero)[0]
            assert torch.equal(batch[m], alone), (rows, m)


def test_matmuls_do_several_int4_weights_in_one_call_up_to_q4_max_rows():
    weights = [_q4(n, 64, seed=n) for n in (64, 24, 24)]
    plan = cpu_kernels.Matmuls([(cpu_kernels.pack_q4(q), s, z) for q, s, z in weights], rows=2)
    g = torch.Generator().manual_seed(2)
    for rows in (2, 12, cpu_kernels.Q4_MAX_ROWS + 1):  # the kernel, the kernel, torch
        plan.resize(rows)
        x = torch.randn(rows, 1, 64, generator=g)
        outs = plan(x)
        assert (outs[0].data_ptr() == plan.outs[0].data_ptr()) == (rows <= 64)  # its buffers
        for y, w in zip(outs, weights):
            want = (x.double() @ _dense(*w).T).float()
            torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-4)


def test_odd_shapes_are_refused_or_left_to_torch():
    q, scale, zero = _q4(8, 64, seed=4)
    packed = cpu_kernels.pack_q4(q)
    with pytest.raises(AssertionError):  # 48 input columns: not whole groups of 32
        cpu_kernels.Matmuls([(packed[:, :24].contiguous(), scale[:, :1], zero[:, :1])], rows=1)
    with pytest.raises(AssertionError):  # a scale per row, not per group
        cpu_kernels.Matmuls([(packed, scale[:, 0].contiguous(), zero)], rows=1)
    with pytest.raises(AssertionError):  # mixed with an fp32 weight
        cpu_kernels.Matmuls([(packed, scale, zero), torch.randn(8, 64)], rows=1)
    with pytest.raises(AssertionError):  # not a 4-bit value
        cpu_kernels.pack_q4(torch.full((2, 32), 16, dtype=torch.uint8))
    # a layer whose width is not whole groups stays a plain nn.Linear, and still works
    model = nn.Sequential(nn.Linear(48, 64), nn.Linear(64, 8))
    quantize_model(model, "int4")
    assert type(model[0]) is nn.Linear and type(model[1]) is Int4Linear
    with torch.no_grad():
        assert model(torch.randn(1, 48)).shape == (1, 8)


def test_int4_linear_runs_the_kernel_and_matches_its_dequantized_weight():
    torch.manual_seed(5)
    linear = nn.Linear(4 * GROUP, 48, bias=True)
    layer = Int4Linear(linear)
    assert layer.uses_kernel and layer.qweight.shape == (48, 2 * GROUP)
    w = layer.dequantized()
    for rows in (1, 3, 20):  # the kernel, and a prompt-wide input through torch
        x = torch.randn(rows, 4 * GROUP)
        with torch.no_grad():
            torch.testing.assert_close(layer(x), x @ w.T + linear.bias, rtol=1e-5, atol=1e-5)


def test_without_the_kernel_int4_falls_back_to_pytorchs_kernel_with_the_same_weights(monkeypatch):
    torch.manual_seed(6)
    linear = nn.Linear(3 * GROUP, 48, bias=False)
    fast = Int4Linear(linear)
    monkeypatch.setattr(cpu_kernels, "_lib", None)  # as if no compiler
    monkeypatch.setattr(cpu_kernels, "why_not", "switched off by the test")
    slow = Int4Linear(linear)
    assert not slow.uses_kernel and not hasattr(slow, "qweight")
    torch.testing.assert_close(slow.dequantized(), fast.dequantized(), rtol=0, atol=1e-6)
    x = torch.randn(2, 3 * GROUP)
    torch.testing.assert_close(slow(x), x @ fast.dequantized().T, rtol=1e-5, atol=1e-5)
    tok = tiny_tokenizer()  # a whole model: not the lean step, its own forward
    model = quantize_model(
        tiny_llama(len(tok), seed=6, hidden_size=64, intermediate_size=128), "int4"
    )
    assert not model.lm_head.uses_kernel and not fits(model)
    out = generate(model, tok, PROMPTS[:2], SamplingParams(max_new_tokens=3, temperature=0))
    assert all(len(g.token_ids) >= 1 for g in out)


def _int4_and_its_dequantized_twin(seed: int):
    """A tiny Llama quantized to int4, and an fp32 copy whose linear weights are the int4
    layers' dequantized weights (the embedding stays the original, as in the int4 model)."""
    tok = tiny_tokenizer()
    kw = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
          "num_key_value_heads": 2, "num_hidden_layers": 3, "initializer_range": 0.5}  # fmt: skip
    model = quantize_model(tiny_llama(len(tok), seed=seed, **kw), "int4")
    twin = tiny_llama(len(tok), seed=seed, **kw)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, Int4Linear)}
    assert len(layers) == 1 + 3 * 7  # lm_head and every projection
    for name, mod in twin.named_modules():
        if name in layers:  # a new Parameter: the tied lm_head leaves the embedding alone
            mod.weight = nn.Parameter(layers[name].dequantized().clone())
    return model, twin, tok


def test_int4_model_decodes_through_the_kernel_with_its_dequantized_numbers(monkeypatch):
    model, twin, tok = _int4_and_its_dequantized_twin(seed=7)
    assert fits(model)
    lib = cpu_kernels.load()
    calls = []
    kernel = lib.gemv_q4_multi

    def counted(*args):
        calls.append(args[1])  # rows of x
        return kernel(*args)

    monkeypatch.setattr(lib, "gemv_q4_multi", counted)
    params = SamplingParams(max_new_tokens=8, temperature=0, stop_at_eos=False)
    got = generate(model, tok, PROMPTS, params)
    # 7 steps of the batch of three rows: 4 plans a layer in 3 layers, and the lm_head (the
    # prompt, 3 x 18 rows, may take it too: up to Q4_MAX_ROWS)
    assert calls.count(3) >= 7 * (4 * 3 + 1)
    with cpu_kernels.disabled():  # the twin in plain torch: the reference numbers
        want = generate(twin, tok, PROMPTS, params)
    assert [g.token_ids for g in got] == [g.token_ids for g in want]
    for a, b in zip(got, want):
        torch.testing.assert_close(
            torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4, rtol=1e-4
        )


def test_int4_step_logits_match_the_dequantized_forward():
    model, twin, tok = _int4_and_its_dequantized_twin(seed=8)
    from transformers import DynamicCache

    enc = tok(PROMPTS, padding=True, padding_side="left", return_tensors="pt")
    ids, mask = enc.input_ids, enc.attention_mask
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True)
        step = LlamaStep.after_prefill(model, cache, capacity=ids.shape[1] + 4)
        assert step is not None
        for t in range(3):
            nxt = torch.full((len(PROMPTS), 1), 5 + t)
            ids, mask = torch.cat([ids, nxt], 1), torch.cat([mask, torch.ones_like(nxt)], 1)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            got = step(nxt, pos[:, -1:], mask)
            with cpu_kernels.disabled():
                want = twin(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1]
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
