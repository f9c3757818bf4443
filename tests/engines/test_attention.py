"""Training attention on the CPU (engines/attention.py) against torch's SDPA in float64."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from engines import attention as A
from engines import cpu_kernels
from engines.model import ModelSize, build_model
from engines.trainer import causal_lm_loss

pytestmark = pytest.mark.skipif(not cpu_kernels.available(), reason=str(cpu_kernels.why_not))


def qkv(B, H, T, D, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, T, D, generator=g).requires_grad_() for _ in range(3)]


def grads(fn, q, k, v, g):
    for x in (q, k, v):
        x.grad = None
    out = fn(q, k, v)
    out.backward(g)
    return [out.detach(), *(x.grad.clone() for x in (q, k, v))]


def sdpa64(mask=None):
    """SDPA in float64 (rows that may attend nowhere: 0, as the kernel gives)."""

    def fn(q, k, v):
        q, k, v = (x.double() for x in (q, k, v))
        if mask is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True).float()
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).nan_to_num().float()

    return fn


# T 17: one block (and a ragged row tail); 130: one; 300: two blocks; 520: four blocks of 130
@pytest.mark.parametrize("shape", [(2, 3, 17, 8), (2, 2, 130, 16), (1, 2, 300, 64), (1, 1, 520, 8)])
def test_causal_matches_sdpa(shape):
    q, k, v = qkv(*shape)
    g = torch.randn(shape)
    want = grads(sdpa64(), q, k, v, g)
    got = grads(A.causal_attention, q, k, v, g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5)
    assert A.blocks_for(shape[2]) == {17: 1, 130: 1, 300: 2, 520: 4}[shape[2]]


def test_masks_padding_and_packed_sequences():
    """Left and right padding, two packed documents, broadcast over heads; a row with nothing
    to attend to (left padding) gives 0 and no gradient."""
    B, H, T, D = 3, 2, 300, 16
    q, k, v = qkv(B, H, T, D, seed=1)
    keep = torch.ones(B, T, dtype=torch.bool)
    keep[0, :50] = False  # left padding
    keep[1, 250:] = False  # right padding
    doc = torch.zeros(B, T, dtype=torch.long)
    doc[2, 90:] = 1  # a second document from position 90
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    mask = causal[None] & keep[:, None, :] & (doc[:, None, :] == doc[:, :, None])
    mask = mask[:, None]  # (B, 1, T, T)
    g = torch.randn(B, H, T, D)
    want = grads(sdpa64(mask), q, k, v, g)
    got = grads(lambda q, k, v: A.causal_attention(q, k, v, mask), q, k, v, g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5)
    assert got[0][0, :, :50].abs().max() == 0 and got[1][0, :, :50].abs().max() == 0


SIZE = ModelSize(n_layer=2, n_head=4, n_kv_head=2, n_embd=64, block_size=160, vocab_size=300)


def loss_and_grads(model, ids):
    model.zero_grad()
    loss, _ = causal_lm_loss(model, (ids[:, :-1], ids[:, 1:]))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_model_switched_for_training_matches_sdpa(tmp_path, monkeypatch):
    """A grouped-query Llama on the path: the same loss and every gradient as on SDPA; the
    switch is not saved with the model; inference stays on SDPA."""
    ids = torch.randint(0, SIZE.vocab_size, (2, 161), generator=torch.Generator().manual_seed(0))
    sdpa = build_model(SIZE, seed=0)
    ours = build_model(SIZE, seed=0)
    assert A.use_for_training(ours) and ours.config._attn_implementation == A.IMPLEMENTATION
    calls, real = [], A._forward
    monkeypatch.setattr(A, "_forward", lambda *a: calls.append(a[0].shape) or real(*a))
    want_loss, want = loss_and_grads(sdpa, ids)
    got_loss, got = loss_and_grads(ours, ids)
    assert calls == [(2, 4, 160, 16)] * SIZE.n_layer  # every layer took the path (4 heads)
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-5, atol=1e-6)
    for name, grad in want.items():
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6, msg=name)

    ours.save_pretrained(tmp_path)
    assert "workbench" not in json.dumps(json.loads((tmp_path / "config.json").read_text()))
    with torch.no_grad():  # no gradient: SDPA's path, the same logits
        torch.testing.assert_close(ours(ids).logits, sdpa(ids).logits, rtol=1e-4, atol=1e-5)
    assert len(calls) == SIZE.n_layer


def test_compiled_model_keeps_one_graph_with_the_op():
    """Under torch.compile the op is opaque: one graph, no break at every layer (checking the
    kernel inside the attention function broke the graph once), and transformers' compiled
    mask (always materialised) takes the masked path."""
    model = build_model(SIZE, seed=0)
    assert A.use_for_training(model)
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    compiled = torch.compile(model.model, backend=backend)
    ids = torch.randint(0, SIZE.vocab_size, (2, 160), generator=torch.Generator().manual_seed(1))
    hidden = compiled(input_ids=ids, use_cache=False).last_hidden_state
    hidden.sum().backward()
    torch._dynamo.reset()
    assert len(graphs) == 1
    assert str(graphs[0].graph).count("workbench.causal_attention") == SIZE.n_layer


def test_other_models_and_devices_are_left_alone():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, attn_implementation="sdpa"))
    assert not A.use_for_training(gpt2)  # not a causal type on the list
    eager = build_model(SIZE, seed=0)
    eager.set_attn_implementation("eager")
    assert not A.use_for_training(eager) and eager.config._attn_implementation == "eager"
