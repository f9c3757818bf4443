"""The CPU decode kernel (engines/csrc/gemv.c) and the lean Llama step, against torch and
transformers: the same numbers up to the order of float sums, and the same greedy tokens."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache
from transformers.models.llama.modeling_llama import LlamaRMSNorm, apply_rotary_pos_emb

from engines import cpu_kernels
from engines.generate import SamplingParams, generate
from engines.llama_decode import LlamaStep, fits
from tests.engines.tinylm import tiny_llama, tiny_tokenizer

pytestmark = pytest.mark.skipif(not cpu_kernels.available(), reason=str(cpu_kernels.why_not))
PROMPTS = ["The quick brown fox jumps", "Paris", "def add(a, b):\n    return a"]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.mark.parametrize(
    "M,N,K", [(1, 13, 8), (1, 576, 576), (2, 40, 1536), (3, 100, 40), (8, 37, 64)]
)
def test_linear_matches_torch(M, N, K):
    g = torch.Generator().manual_seed(M * N + K)
    x, w = torch.randn(2, 1, M, K, generator=g)[0], torch.randn(N, K, generator=g)
    got = cpu_kernels.linear(x, w)
    assert got.shape == (1, M, N)
    torch.testing.assert_close(got, x @ w.T, rtol=1e-5, atol=1e-4)


def test_matmuls_do_several_weights_in_one_call_and_reuse_their_buffers():
    g = torch.Generator().manual_seed(0)
    ws = [torch.randn(n, 64, generator=g) for n in (64, 24, 24)]
    plan = cpu_kernels.Matmuls(ws, rows=2)
    x = torch.randn(2, 1, 64, generator=g)
    outs = plan(x)
    for y, w in zip(outs, ws):
        torch.testing.assert_close(y, x @ w.T, rtol=1e-5, atol=1e-4)
    again = plan(x * 2)
    assert again[0].data_ptr() == outs[0].data_ptr()  # the same buffers, new numbers
    torch.testing.assert_close(again[1], 2 * x @ ws[1].T, rtol=1e-5, atol=1e-4)


def test_a_row_gets_the_same_numbers_in_a_batch_as_alone():
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(7, 576, generator=g), torch.randn(300, 576, generator=g)
    batch = cpu_kernels.linear(x, w)
    for m in range(7):
        assert torch.equal(batch[m], cpu_kernels.linear(x[m : m + 1], w)[0])


def test_rms_norm_and_rotary_match_transformers():
    g = torch.Generator().manual_seed(2)
    norm = LlamaRMSNorm(96, eps=1e-5)
    norm.weight.data = torch.randn(96, generator=g)
    x = torch.randn(3, 1, 96, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(cpu_kernels.rms_norm(x, norm.weight, 1e-5), norm(x))
    B, H, Hkv, d = 3, 4, 2, 16
    q, k = torch.randn(B, 1, H * d, generator=g), torch.randn(B, 1, Hkv * d, generator=g)
    cos, sin = torch.randn(B, d, generator=g), torch.randn(B, d, generator=g)
    want_q, want_k = apply_rotary_pos_emb(
        q.view(B, 1, H, d).transpose(1, 2), k.view(B, 1, Hkv, d).transpose(1, 2),
        cos[:, None], sin[:, None],
    )  # fmt: skip
    got_q = cpu_kernels.rope_(q.clone(), cos, sin, H).view(B, 1, H, d).transpose(1, 2)
    got_k = cpu_kernels.rope_(k.clone(), cos, sin, Hkv).view(B, 1, Hkv, d).transpose(1, 2)
    torch.testing.assert_close(got_q, want_q)
    torch.testing.assert_close(got_k, want_k)


def test_attend_writes_the_cache_and_matches_sdpa_with_a_mask_and_shared_kv_heads():
    g = torch.Generator().manual_seed(7)
    B, H, Hkv, d, cap, t = 3, 6, 2, 16, 12, 9
    keys, values = (
        torch.randn(B, Hkv, cap, d, generator=g),
        torch.randn(B, Hkv, cap, d, generator=g),
    )
    q, k, v = (torch.randn(B, 1, n * d, generator=g) for n in (H, Hkv, Hkv))
    keep = torch.ones(B, t + 1, dtype=torch.uint8)
    keep[1, :4] = 0  # row 1 is left-padded
    out = cpu_kernels.attend(q, k, v, keys, values, keep, t, 0.25, torch.empty(B, 1, H * d))
    assert torch.equal(keys[:, :, t], k.view(B, Hkv, d)) and torch.equal(
        values[:, :, t], v.view(B, Hkv, d)
    )
    want = torch.nn.functional.scaled_dot_product_attention(
        q.view(B, 1, H, d).transpose(1, 2), keys[:, :, : t + 1], values[:, :, : t + 1],
        attn_mask=keep.bool()[:, None, None, :], scale=0.25, enable_gqa=True,
    )  # fmt: skip
    torch.testing.assert_close(out, want.transpose(1, 2).reshape(B, 1, H * d))


def _prefilled(model, tok, prompts, extra):
    """Left-padded prompts run through the model, and a LlamaStep holding their cache with room
    for `extra` more positions: (step, ids, mask)."""
    enc = tok(prompts, padding=True, padding_side="left", return_tensors="pt")
    ids, mask = enc.input_ids, enc.attention_mask
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True)
    step = LlamaStep.after_prefill(model, cache, capacity=ids.shape[1] + extra)
    assert step is not None
    return step, ids, mask


def _check_step(model, step, ids, mask, nxt):
    """Feed `nxt` (B, 1) to the step and to the model's full forward; the logits agree."""
    ids, mask = torch.cat([ids, nxt], 1), torch.cat([mask, torch.ones_like(nxt)], 1)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    got = step(nxt, pos[:, -1:], mask)
    want = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    return ids, mask


def test_step_matches_the_models_forward_on_left_padded_rows_and_after_a_row_leaves(tok):
    model = tiny_llama(len(tok), seed=3, hidden_size=64, intermediate_size=128,
                       num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=3)  # fmt: skip
    assert fits(model)
    g = torch.Generator().manual_seed(4)
    with torch.inference_mode():
        step, ids, mask = _prefilled(model, tok, PROMPTS, extra=2)  # grows past it
        for t in range(6):
            if t == 3:  # row 1 finishes: the other two go on
                keep = torch.tensor([0, 2])
                step.select(keep)
                ids, mask = ids[keep], mask[keep]
            nxt = torch.randint(3, len(tok), (ids.shape[0], 1), generator=g)
            ids, mask = _check_step(model, step, ids, mask, nxt)


def test_step_adds_every_projections_bias(tok):
    model = tiny_llama(len(tok), seed=8, attention_bias=True, mlp_bias=True)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0, 0.5)  # transformers starts them at 0, which would hide a lost bias
    assert fits(model)
    with torch.inference_mode():
        step, ids, mask = _prefilled(model, tok, PROMPTS, extra=1)
        _check_step(model, step, ids, mask, torch.full((len(PROMPTS), 1), 7))


def test_step_takes_torchs_matmul_for_a_batch_wider_than_the_kernels(tok):
    model = tiny_llama(len(tok), seed=6, hidden_size=32, intermediate_size=64)
    prompts = [f"{p} {i}" for i in range(4) for p in PROMPTS]  # 12 rows > MAX_ROWS
    with torch.inference_mode():
        step, ids, mask = _prefilled(model, tok, prompts, extra=1)
        _check_step(model, step, ids, mask, torch.full((len(prompts), 1), 7))


def _without_kernel(monkeypatch):
    monkeypatch.setattr(cpu_kernels, "_lib", None)
    monkeypatch.setattr(cpu_kernels, "why_not", "switched off by the test")


def test_generate_gives_the_same_tokens_with_and_without_the_kernel(tok, monkeypatch):
    model = tiny_llama(len(tok), seed=1, initializer_range=1.0)
    params = SamplingParams(max_new_tokens=12, temperature=0, stop_at_eos=False)
    fast = generate(model, tok, PROMPTS, params)
    _without_kernel(monkeypatch)
    assert not fits(model)
    slow = generate(model, tok, PROMPTS, params)
    assert [g.token_ids for g in fast] == [g.token_ids for g in slow]
    for a, b in zip(fast, slow):
        torch.testing.assert_close(
            torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4, rtol=1e-4
        )


def test_a_failed_build_leaves_every_matmul_to_torch(tok, tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_kernels, "_lib", False)  # not tried yet
    monkeypatch.setenv("WORKBENCH_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    assert not cpu_kernels.available()
    assert "did not build" in cpu_kernels.why_not
    model = tiny_llama(len(tok), seed=1)
    assert cpu_kernels.accelerate(model) == 0 and not fits(model)
    out = generate(model, tok, PROMPTS[:1], SamplingParams(max_new_tokens=4, temperature=0))
    assert len(out[0].token_ids) == 4


def test_a_damaged_library_in_the_cache_is_built_again(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_kernels, "_lib", False)
    monkeypatch.setenv("WORKBENCH_KERNEL_CACHE", str(tmp_path))
    cpu_kernels.library_path().write_bytes(b"not a shared object")
    assert cpu_kernels.available(), cpu_kernels.why_not
    torch.testing.assert_close(
        cpu_kernels.linear(torch.ones(1, 8), torch.ones(3, 8)), torch.full((1, 3), 8.0)
    )


def test_patched_layers_leave_training_to_torch(tok):
    model = tiny_llama(len(tok), seed=5)
    ref = tiny_llama(len(tok), seed=5)
    assert cpu_kernels.accelerate(model) > 0
    ids = torch.tensor([[5, 6, 7, 8]])
    model.train(), ref.train()
    model(input_ids=ids, labels=ids).loss.backward()
    ref(input_ids=ids, labels=ids).loss.backward()
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        assert torch.equal(p.grad, q.grad), name
    with torch.no_grad():  # no gradient: the kernel, close to torch
        model.eval(), ref.eval()
        torch.testing.assert_close(
            model(ids[:, :1]).logits, ref(ids[:, :1]).logits, rtol=1e-4, atol=1e-4
        )
