"""engines.model: Llama config round-trip, init, parameter and FLOP counts, size errors."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from engines.errors import UserError
from engines.model import (
    ModelSize,
    build_model,
    count_params,
    describe,
    flops_per_token,
    llama_config,
    size_params,
)
from tests.engines.trainer_fixtures import TINY

torch.set_num_threads(1)


def test_saved_folder_loads_with_plain_auto_model(tmp_path):
    model = build_model(TINY, seed=0, bos_id=1, eos_id=0, pad_id=2).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    x = torch.randint(0, TINY.vocab_size, (2, 10))
    with torch.no_grad():
        assert torch.equal(model(x).logits, loaded(x).logits)
    assert loaded.config.model_type == "llama"
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    assert (loaded.config.bos_token_id, loaded.config.eos_token_id) == (1, 0)


def test_config_is_llama_style():
    cfg = llama_config(ModelSize(2, 4, 64, 32, 100, n_kv_head=2), eos_id=5)
    assert cfg.tie_word_embeddings and not cfg.attention_bias and not cfg.mlp_bias
    assert cfg.hidden_act == "silu" and cfg.num_key_value_heads == 2
    assert cfg.max_position_embeddings == 32 and cfg._attn_implementation == "sdpa"
    assert cfg.intermediate_size == 192  # 8/3 · 64 = 170.7, rounded up to a multiple of 32


def test_build_is_seeded_and_gpt2_initialised():
    a, b = build_model(TINY, seed=3), build_model(TINY, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.lm_head.weight, build_model(TINY, seed=4).lm_head.weight)
    state = torch.random.get_rng_state()
    build_model(TINY, seed=5)
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched
    big = build_model(ModelSize(4, 2, 64, 16, 512), seed=0)
    assert big.model.embed_tokens.weight.std().item() == pytest.approx(0.02, rel=0.1)
    residual = big.model.layers[0].mlp.down_proj.weight.std().item()
    assert residual == pytest.approx(0.02 / math.sqrt(8), rel=0.1)
    assert torch.equal(big.model.norm.weight, torch.ones(64))


def test_param_counts_match_the_built_model():
    size = ModelSize(3, 4, 64, 32, 300, n_kv_head=2, intermediate_size=100)
    model = build_model(size, seed=0)
    total, non_embedding = size_params(size)
    assert count_params(model) == total
    assert count_params(model, exclude_embeddings=True) == non_embedding == total - 300 * 64


def test_flops_per_token_formula():
    size = ModelSize(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=8192)
    _, non_embedding = size_params(size)
    expected = 6 * (non_embedding + 8192 * 384) + 12 * 6 * 6 * 64 * 256
    assert flops_per_token(size) == expected
    assert flops_per_token(build_model(TINY, seed=0)) == flops_per_token(TINY)
    assert flops_per_token(TINY, seq_len=8) < flops_per_token(TINY)


def test_describe_one_line():
    line = describe(ModelSize(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=8192))
    assert line == (
        "6 layers × 384 wide, 6 heads, ctx 256: 13.8M params (10.6M non-embedding), 90 MFLOP/token"
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_head": 5}, "n_head"),
        ({"n_kv_head": 3}, "n_kv_head"),
        ({"n_layer": 0}, "n_layer"),
    ],
)
def test_bad_sizes_name_the_field(kwargs, field):
    base = {"n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 32, "vocab_size": 100}
    with pytest.raises(UserError, match=field):
        ModelSize(**{**base, **kwargs})


def test_context_longer_than_block_size_names_the_field():
    with pytest.raises(UserError, match=r"seq_len \(64\).*block_size \(16\)"):
        TINY.check_context(64, field="seq_len")
    TINY.check_context(16)
