"""The fused output layer + cross-entropy against autograd through the full logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engines import lm_loss as L
from engines.model import ModelSize, build_model
from engines.sft_data import IGNORE, sft_loss
from engines.trainer import causal_lm_loss

pytestmark = [  # torch's own inductor import, and peft on a LoRA lm_head (which must not fuse)
    pytest.mark.filterwarnings("ignore:.*torch.jit.script_method.*:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Model has .tie_word_embeddings=True.:UserWarning"),
]
SIZE = ModelSize(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=300)


def reference(h, w, y, ignore=-100):
    return F.cross_entropy(h @ w.t(), y, ignore_index=ignore)


def leaves(N=70, C=24, V=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, C, generator=g, dtype=torch.float64).requires_grad_()
    w = (torch.randn(V, C, generator=g, dtype=torch.float64) * 0.3).requires_grad_()
    y = torch.randint(0, V, (N,), generator=g)
    y[::7] = -100
    return h, w, y


def grads(loss_fn, h, w, y):
    h.grad = w.grad = None
    loss = loss_fn(h, w, y)
    (loss * 3.0).backward()  # a scale after the loss reaches the saved gradients
    return loss.detach(), h.grad.clone(), w.grad.clone()


@pytest.mark.parametrize("rows", [16, 64, 1000])  # many chunks, a ragged last chunk, one chunk
def test_loss_and_gradients_match_full_logits(monkeypatch, rows):
    monkeypatch.setattr(L, "chunk_rows", lambda vocab: rows)
    h, w, y = leaves()
    want = grads(reference, h, w, y)
    got = grads(L.linear_cross_entropy, h, w, y)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_frozen_weight_all_ignored_and_no_grad():
    h, w, y = leaves()
    w.requires_grad_(False)  # LoRA freezes the output layer
    loss = L.linear_cross_entropy(h, w, y)
    loss.backward()
    torch.testing.assert_close(h.grad, torch.autograd.grad(reference(h, w, y), h)[0])
    assert w.grad is None

    h.grad = None
    none = L.linear_cross_entropy(h, w, torch.full_like(y, -100))
    none.backward()
    assert none.item() == 0.0 and not h.grad.any()  # F.cross_entropy would give NaN

    with torch.no_grad():  # evaluation: the loss alone, chunk by chunk
        torch.testing.assert_close(L.linear_cross_entropy(h, w, y), reference(h, w, y))


def test_bf16_autocast_matches_autocast_reference():
    h, w, y = (t.float() if t.is_floating_point() else t for t in leaves(N=40))
    h, w = h.detach().requires_grad_(), w.detach().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = grads(lambda a, b, c: F.cross_entropy((a @ b.t()).float(), c), h, w, y)
        got = grads(L.linear_cross_entropy, h, w, y)
    assert got[1].dtype == torch.float32 and got[2].dtype == torch.float32
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-3)


def test_mismatched_rows_are_refused():
    h, w, y = leaves()
    with pytest.raises(ValueError, match="70 rows, targets 69"):
        L.linear_cross_entropy(h, w, y[:-1])


def test_trainer_losses_take_the_fused_path_and_match_the_logits_path(monkeypatch):
    model = build_model(SIZE, seed=0)
    decoder, head = L.fusable_parts(model)
    assert decoder is model.model and head is model.lm_head
    g = torch.Generator().manual_seed(1)
    x, y = (torch.randint(0, SIZE.vocab_size, (3, 12), generator=g) for _ in range(2))
    labels = x.clone()
    labels[:, :5] = IGNORE  # the prompt part of an SFT row
    mask = torch.ones_like(x)
    sft_batch = {"input_ids": x, "attention_mask": mask, "labels": labels}

    def losses_and_grads():
        out = []
        for loss_fn, batch in ((causal_lm_loss, (x, y)), (sft_loss, sft_batch)):
            model.zero_grad(set_to_none=True)
            loss, _ = loss_fn(model, batch)
            loss.backward()
            out.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
        return out

    calls = []
    real = L.linear_cross_entropy
    monkeypatch.setattr(L, "linear_cross_entropy", lambda *a, **k: calls.append(1) or real(*a, **k))
    fused = losses_and_grads()
    assert len(calls) == 2
    monkeypatch.setattr(L, "fusable_parts", lambda model: None)  # the full-logits path
    full = losses_and_grads()
    assert len(calls) == 2
    logits = model(input_ids=x).logits
    torch.testing.assert_close(
        full[1][0],
        F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE),
    )
    for (la, ga), (lb, gb) in zip(fused, full, strict=True):
        torch.testing.assert_close(la, lb, rtol=1e-5, atol=1e-6)
        for a, b in zip(ga, gb, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_which_models_fuse():
    from peft import LoraConfig, get_peft_model

    model = build_model(SIZE, seed=0)
    compiled = torch.compile(model)  # lazy: nothing compiles until it is called
    decoder, _ = L.fusable_parts(compiled)
    assert decoder is not model.model and decoder._orig_mod is model.model
    assert L.fusable_parts(compiled)[0] is decoder  # compiled once
    assert not any("fused" in k for k in compiled.state_dict())  # kept, not registered

    lora = get_peft_model(build_model(SIZE, seed=0), LoraConfig(r=4, target_modules=["q_proj"]))
    assert L.fusable_parts(lora) is not None
    lora_head = get_peft_model(
        build_model(SIZE, seed=0), LoraConfig(r=4, target_modules=["q_proj", "lm_head"])
    )
    assert L.fusable_parts(lora_head) is None  # the head is a LoRA layer, not a Linear

    class Wrapper(nn.Module):  # what DDP looks like from here: no config of its own
        def __init__(self, inner):
            super().__init__()
            self.module = inner

    assert L.fusable_parts(Wrapper(model)) is None
    biased = build_model(SIZE, seed=0)
    biased.lm_head = nn.Linear(SIZE.n_embd, SIZE.vocab_size)
    assert L.fusable_parts(biased) is None
    scaled = build_model(SIZE, seed=0)
    scaled.config.model_type = "gemma2"  # soft-capped logits
    assert L.fusable_parts(scaled) is None


def test_shift_labels():
    labels = torch.tensor([[5, 6, 7], [8, -100, 9]])
    assert L.shift_labels(labels).tolist() == [[6, 7, -100], [-100, 9, -100]]


def test_no_grad_token_stats_match_the_logits_path(monkeypatch):
    """RL's reference and old log-probs (no gradients) read the head chunk by chunk."""
    from peft import LoraConfig, get_peft_model

    from engines.rollout import Reference, token_logps

    monkeypatch.setattr(L, "chunk_rows", lambda vocab: 7)  # several chunks and a ragged one
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, SIZE.vocab_size, (3, 10), generator=g)
    attn = torch.ones_like(ids)
    attn[2, 7:] = 0  # a padded row
    policy = get_peft_model(build_model(SIZE, seed=0), LoraConfig(r=4, target_modules=["q_proj"]))
    with torch.no_grad():
        for p in policy.parameters():  # LoRA's B starts at zero: make the adapter matter
            if p.requires_grad:
                p.add_(0.5)
    ref = Reference(policy, lora=True)
    calls = []
    real = L.next_token_stats
    monkeypatch.setattr("engines.rollout.next_token_stats", lambda *a: calls.append(1) or real(*a))
    with torch.no_grad():
        fused = token_logps(policy, ids, attn)
        fused_ref = ref.logps(ids, attn)
    assert len(calls) == 2 and fused[0].shape == fused[1].shape == (3, 9)
    logits = policy(input_ids=ids, attention_mask=attn).logits
    full = token_logps(None, ids, attn, logits=logits)  # the path with gradients
    for a, b in zip(fused, full, strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-5)
    with policy.disable_adapter():
        base = token_logps(
            None, ids, attn, logits=policy(input_ids=ids, attention_mask=attn).logits
        )
    torch.testing.assert_close(fused_ref, base[0].detach(), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(fused_ref, fused[0])  # the adapter was off for the reference


@pytest.mark.skipif(not L.cpu_kernels.available(), reason=str(L.cpu_kernels.why_not))
@pytest.mark.parametrize("grad", [True, False])
def test_c_chunk_matches_torch_chunk(grad):
    """engines/csrc/train.c's cross-entropy of an fp32 chunk against the torch version: the
    summed loss, the gradient written over the logits, an ignored row (share 0), a ragged
    vocabulary (not a multiple of 8) and a target logit far below the rest."""
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(40, 301, generator=g) * 4
    y = torch.randint(0, 301, (40,), generator=g)
    logits[5, y[5]] = -500.0  # loss about 500: exact, not clamped by the exp
    share = torch.full((40,), 1 / 37)
    share[[2, 9, 30]] = 0.0
    want_p, got_p = logits.clone(), logits.clone()
    want = L._chunk_torch(want_p, y, share, grad)
    got = L._chunk_c(got_p, y, share, grad)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert want > 500 / 37
    if grad:
        torch.testing.assert_close(got_p, want_p, rtol=1e-5, atol=1e-7)
        assert got_p[2].abs().max() == 0  # an ignored row has no gradient
    else:
        assert torch.equal(got_p, logits)  # the logits are only read
