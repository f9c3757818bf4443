"""Next-token loss without the full logits: the output layer fused with the cross-entropy.

A causal LM's last step turns hidden states (N, C) into logits (N, V) and a loss. For
SmolLM2 (V = 49152) at 8 × 1024 tokens the logits and their gradient are 3.2 GB of fp32, and
on a CPU the softmax over them is slow work beside the matmuls. `linear_cross_entropy` runs
the output layer and the loss a chunk of rows at a time and, when gradients are wanted,
computes them in the same pass (softmax minus one-hot, times the weight): the logits never
exist whole. The gradient is exact, the same as autograd through `F.cross_entropy` up to
float rounding (tests/engines/test_lm_loss.py).

`lm_loss(model, input_ids, targets)` is what the pretraining and SFT losses call: the fused
path for a single-process Hugging Face causal LM whose logits are exactly `lm_head(hidden)`
(Llama, Mistral, Qwen2/3; LoRA-wrapped ones too), and `model(...).logits` with
`F.cross_entropy` for everything else (DDP and FSDP wrappers, whose hooks must see the whole
forward; models with logit scaling or soft-capping; an `lm_head` with a bias or LoRA). A
model the trainer compiled is run as its compiled decoder.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engines import cpu_kernels
from engines.losses import next_token_loss

# model types whose forward is exactly logits = lm_head(decoder(...).last_hidden_state)
FUSABLE_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
CHUNK_ELEMENTS = 1 << 21  # logits per chunk: 8 MB of fp32, a cache-sized block


def chunk_rows(vocab: int) -> int:
    """Rows per chunk: about CHUNK_ELEMENTS logits, 64 to 1024 rows."""
    return max(64, min(1024, CHUNK_ELEMENTS // max(vocab, 1)))


class _LinearCrossEntropy(torch.autograd.Function):
    """loss = mean over targets != ignore of -log softmax(h @ w.T)[target]; grads in forward."""

    @staticmethod
    def forward(ctx, h: Tensor, w: Tensor, y: Tensor, ignore_index: int, rows: int) -> Tensor:
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dev = h.device.type
        cast = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else h.dtype
        with torch.autocast(dev, enabled=False):
            wc = w.to(cast)
            valid = y != ignore_index  # (N,)
            acc = torch.promote_types(cast, torch.float32)  # softmax and sums: fp32 at least
            n = valid.sum().clamp_min(1).to(acc)
            share = valid.to(acc) / n  # (N,) each counted row's part of the mean
            y = y.masked_fill(~valid, 0)
            chunk = _chunk_kernel(acc, h.device)
            logits = torch.empty(min(rows, h.shape[0]), w.shape[0], dtype=acc, device=h.device)
            total = torch.zeros((), dtype=acc, device=h.device)
            dh = torch.empty_like(h) if want_h else None
            dw = torch.zeros_like(w, dtype=acc) if want_w else None
            for s in range(0, h.shape[0], rows):
                hc = h[s : s + rows].to(cast)
                p = logits[: hc.shape[0]]  # (c, V), one buffer for every chunk
                if cast == acc:
                    torch.mm(hc, wc.t(), out=p)
                else:
                    p.copy_(hc @ wc.t())
                # the chunk's summed loss; p becomes d(mean loss)/d logits when grads are wanted
                total += chunk(p, y[s : s + rows], share[s : s + rows], want_h or want_w)
                if not (want_h or want_w):
                    continue
                pc = p.to(cast)
                if want_h and cast == h.dtype:
                    torch.mm(pc, wc, out=dh[s : s + rows])
                elif want_h:
                    dh[s : s + rows] = pc @ wc
                if want_w:
                    if cast == acc:
                        dw.addmm_(pc.t(), hc)
                    else:
                        dw += (pc.t() @ hc).to(acc)
        ctx.save_for_backward(dh, None if dw is None else dw.to(w.dtype))
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):
        dh, dw = ctx.saved_tensors
        return (
            None if dh is None else dh * grad.to(dh.dtype),
            None if dw is None else dw * grad.to(dw.dtype),
            None,
            None,
            None,
        )


def _chunk_torch(p: Tensor, y: Tensor, share: Tensor, grad: bool) -> Tensor:
    """sum_i share_i (logsumexp(p_i) - p_i[y_i]); p := its gradient if `grad` (in place)."""
    logp = torch.log_softmax(p, dim=-1)  # (c, V)
    loss = -(logp.gather(1, y[:, None]).squeeze(1) * share).sum()
    if grad:
        torch.exp(logp, out=p).mul_(share[:, None])  # softmax × share
        p[torch.arange(len(y), device=p.device), y] -= share  # minus the one-hot's share
    return loss


def _chunk_c(p: Tensor, y: Tensor, share: Tensor, grad: bool) -> Tensor:
    """_chunk_torch in one C pass a row (engines/csrc/train.c), fp32 on the CPU."""
    lib = cpu_kernels.load()
    c, V = p.shape
    loss = torch.empty(c, dtype=torch.float32)
    y = y.to(torch.int64).contiguous()
    lib.cross_entropy_f32(
        p.data_ptr(), y.data_ptr(), share.data_ptr(), loss.data_ptr(), c, V, int(grad),
        torch.get_num_threads(),
    )  # fmt: skip
    return (loss * share).sum()


def _chunk_kernel(dtype: torch.dtype, device: torch.device):
    if dtype == torch.float32 and device.type == "cpu" and cpu_kernels.available():
        return _chunk_c
    return _chunk_torch


def linear_cross_entropy(
    hidden: Tensor, weight: Tensor, targets: Tensor, *, ignore_index: int = -100
) -> Tensor:
    """Mean cross-entropy of `hidden @ weight.T` against `targets`, chunk by chunk.

    hidden (..., C), weight (V, C), targets (...) of ids or `ignore_index`. -> ()
    An all-ignored batch gives 0 (and zero gradients), where F.cross_entropy gives NaN.
    """
    h = hidden.reshape(-1, hidden.shape[-1])
    y = targets.reshape(-1)
    if h.shape[0] != y.shape[0]:
        raise ValueError(f"hidden has {h.shape[0]} rows, targets {y.shape[0]}")
    return _LinearCrossEntropy.apply(h, weight, y, ignore_index, chunk_rows(weight.shape[0]))


def fusable_parts(model: nn.Module) -> tuple[nn.Module, nn.Linear] | None:
    """(decoder, lm_head) when the loss may run fused on this model, else None."""
    compiled = hasattr(model, "_orig_mod")
    inner = model._orig_mod if compiled else model
    config = getattr(inner, "config", None)
    if getattr(config, "model_type", None) not in FUSABLE_TYPES:
        return None  # DDP and FSDP wrappers land here too: no config of their own
    if getattr(config, "logit_scale", None) or getattr(config, "final_logit_softcapping", None):
        return None
    if _is_fsdp(inner):
        return None  # FSDP2 puts its hooks on the root module's forward
    get_decoder = getattr(inner, "get_decoder", None)
    get_head = getattr(inner, "get_output_embeddings", None)
    if get_decoder is None or get_head is None:
        return None
    decoder, head = get_decoder(), get_head()
    if type(head) is not nn.Linear or head.bias is not None or decoder is None:
        return None
    if compiled:
        decoder = _compiled(model, decoder)
    return decoder, head


def _is_fsdp(model: nn.Module) -> bool:
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # a torch built without distributed
        return False
    return isinstance(model, FSDPModule)


def _compiled(wrapper: nn.Module, decoder: nn.Module) -> nn.Module:
    """torch.compile(decoder), made once and kept on the compiled model (not registered as a
    submodule: nothing changes in its state dict), so it lives exactly as long as it."""
    if "_fused_decoder" not in wrapper.__dict__:
        wrapper.__dict__["_fused_decoder"] = torch.compile(decoder)
    return wrapper.__dict__["_fused_decoder"]


def lm_loss(
    model: nn.Module,
    input_ids: Tensor,
    targets: Tensor,
    *,
    attention_mask: Tensor | None = None,
    ignore_index: int = -100,
) -> Tensor:
    """Mean next-token cross-entropy: targets (B, T) are the ids each position should predict
    (already shifted), `ignore_index` where a position does not count. -> ()"""
    parts = fusable_parts(model)
    kwargs = {"attention_mask": attention_mask} if attention_mask is not None else {}
    if parts is None:
        logits = model(input_ids=input_ids, use_cache=False, **kwargs).logits  # (B, T, V)
        return next_token_loss(logits, targets, ignore_index=ignore_index)
    decoder, head = parts
    hidden = decoder(input_ids=input_ids, use_cache=False, **kwargs).last_hidden_state
    return linear_cross_entropy(hidden, head.weight, targets, ignore_index=ignore_index)


@torch.no_grad()
def next_token_stats(model: nn.Module, ids: Tensor, attn: Tensor) -> tuple[Tensor, Tensor] | None:
    """(log p of each next token (N, T-1), entropy of each next-token distribution (N, T-1))
    without the full logits, chunk by chunk: for the no-grad passes of RL (reference and old
    log-probs, held-out KL). None where the model does not fuse (see `fusable_parts`)."""
    parts = fusable_parts(model)
    if parts is None:
        return None
    decoder, head = parts
    hidden = decoder(input_ids=ids, attention_mask=attn, use_cache=False).last_hidden_state
    N, T, C = hidden.shape
    h = hidden[:, :-1].reshape(-1, C)  # (N (T-1), C)
    y = ids[:, 1:].reshape(-1)
    logp = torch.empty(h.shape[0], dtype=torch.float32, device=h.device)
    entropy = torch.empty_like(logp)
    rows = chunk_rows(head.weight.shape[0])
    for s in range(0, h.shape[0], rows):
        ls = torch.log_softmax((h[s : s + rows] @ head.weight.t()).float(), dim=-1)  # (c, V)
        logp[s : s + rows] = ls.gather(1, y[s : s + rows, None]).squeeze(1)
        entropy[s : s + rows] = -(ls.exp() * ls).sum(-1)
    return logp.view(N, T - 1), entropy.view(N, T - 1)


def shift_labels(labels: Tensor, ignore_index: int = -100) -> Tensor:
    """Labels (B, T) aligned to inputs -> targets (B, T): position t predicts labels[t + 1]."""
    pad = labels.new_full((labels.shape[0], 1), ignore_index)
    return torch.cat([labels[:, 1:], pad], dim=1)
