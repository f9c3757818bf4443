"""Hand-computed values for every loss in engines.losses."""

from __future__ import annotations

import math

import pytest
import torch

from engines import losses as L

LN3 = math.log(3.0)


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


def approx(x, expected):
    assert torch.allclose(
        torch.as_tensor(x, dtype=torch.float32),
        torch.as_tensor(expected, dtype=torch.float32),
        atol=1e-5,
    ), (x, expected)


def two_token_logits():
    # position 0: p(0) = 3/4; position 1: uniform; position 2: anything (ignored or masked)
    return torch.tensor([[[LN3, 0.0], [0.0, 0.0], [5.0, -5.0]]])  # (1, 3, 2)


def test_next_token_loss_skips_ignore_index():
    loss = L.next_token_loss(two_token_logits(), torch.tensor([[0, 1, -100]]))
    approx(loss, (-math.log(0.75) + math.log(2.0)) / 2)


def test_masked_lm_loss_means_over_mask_only():
    loss = L.masked_lm_loss(
        two_token_logits(), torch.tensor([[0, 1, 1]]), torch.tensor([[1, 1, 0]])
    )
    approx(loss, (-math.log(0.75) + math.log(2.0)) / 2)


def test_masked_lm_loss_empty_mask_is_zero():
    loss = L.masked_lm_loss(two_token_logits(), torch.tensor([[0, 1, 1]]), torch.zeros(1, 3))
    approx(loss, 0.0)


def test_sequence_logprobs_sums_masked_positions():
    logp = L.sequence_logprobs(
        two_token_logits(), torch.tensor([[0, 1, -100]]), torch.tensor([[1, 1, 0]])
    )
    assert logp.shape == (1,)
    approx(logp, [math.log(0.75) + math.log(0.5)])


def test_bradley_terry():
    approx(
        L.bradley_terry_loss(t(1.0, 0.0), t(0.0, 0.0)),
        (math.log(1 + math.exp(-1)) + math.log(2)) / 2,
    )


def test_ranked_bt_all_pairs():
    # pairs (2,1), (2,0), (1,0): differences 1, 2, 1
    expected = (2 * math.log(1 + math.exp(-1)) + math.log(1 + math.exp(-2))) / 3
    approx(L.ranked_bt_loss(t(2.0, 1.0, 0.0)[None]), expected)


def test_ranked_bt_mask_drops_missing_completion():
    rewards = t(2.0, 1.0, 0.0)[None]
    approx(L.ranked_bt_loss(rewards, torch.tensor([[1, 1, 0]])), math.log(1 + math.exp(-1)))


def test_ranked_bt_with_two_equals_bradley_terry():
    r = torch.randn(4, 2)
    approx(L.ranked_bt_loss(r), L.bradley_terry_loss(r[:, 0], r[:, 1]))


def test_dpo_loss_and_margin():
    loss, margins = L.dpo_loss(t(-1.0), t(-2.0), t(-1.5), t(-1.5), beta=0.1)
    approx(margins, [0.1])  # 0.1·(0.5) - 0.1·(-0.5)
    approx(loss, math.log(1 + math.exp(-0.1)))


def test_ppo_policy_loss_clips():
    old = torch.zeros(1, 3)
    logp = torch.log(t(1.5, 0.5, 9.0))[None]  # ratios 1.5, 0.5, 9 (the last is masked)
    adv = torch.ones(1, 3)
    loss, clip_frac = L.ppo_policy_loss(logp, old, adv, torch.tensor([[1, 1, 0]]), clip=0.2)
    approx(loss, (-1.2 + -0.5) / 2)  # first clipped to 1.2, second stays at 0.5
    approx(clip_frac, 0.5)


def test_ppo_policy_loss_negative_advantage():
    logp = torch.log(t(0.5))[None]
    loss, clip_frac = L.ppo_policy_loss(
        logp, torch.zeros(1, 1), -torch.ones(1, 1), torch.ones(1, 1), 0.2
    )
    approx(loss, 0.8)  # max(0.5, 0.8): pessimistic bound with the ratio clipped to 0.8
    approx(clip_frac, 1.0)


def test_ppo_value_loss_takes_worse_of_clipped():
    loss = L.ppo_value_loss(t(1.0)[None], t(0.0)[None], t(2.0)[None], torch.ones(1, 1), clip=0.5)
    approx(loss, 0.5 * 2.25)  # max((1-2)², (0.5-2)²)


def test_gae_hand_values():
    adv, ret = L.gae(
        t(0.0, 0.0, 1.0)[None], t(0.5, 0.5, 0.5)[None], torch.ones(1, 3), gamma=0.9, lam=0.5
    )
    approx(adv, [[0.02875, 0.175, 0.5]])
    approx(ret, [[0.52875, 0.675, 1.0]])


def test_gae_stops_at_mask_end():
    adv, ret = L.gae(
        t(0.0, 1.0, 7.0)[None], t(0.5, 0.5, 0.5)[None], torch.tensor([[1, 1, 0]]), 0.9, 0.5
    )
    approx(adv, [[0.175, 0.5, 0.0]])
    approx(ret, [[0.675, 1.0, 0.0]])


def test_gae_gamma_lambda_one_is_return_minus_value():
    adv, ret = L.gae(t(0.0, 0.0, 1.0)[None], t(0.5, 0.5, 0.5)[None], torch.ones(1, 3), 1.0, 1.0)
    approx(adv, [[0.5, 0.5, 0.5]])
    approx(ret, [[1.0, 1.0, 1.0]])


def test_kl_estimators():
    logp, ref = torch.log(t(0.5)), torch.log(t(0.25))
    approx(L.kl_penalty(logp, ref, "k1"), [math.log(2)])
    approx(L.kl_penalty(logp, ref, "k3"), [0.5 + math.log(2) - 1])
    with pytest.raises(ValueError):
        L.kl_penalty(logp, ref, "k9")


def test_grpo_advantages():
    s = math.sqrt(3) / 2  # 0.5 / sqrt(1/3)
    approx(L.grpo_advantages(t(1.0, 0.0, 0.0, 1.0)), [s, -s, -s, s])
    approx(L.grpo_advantages(t(1.0, 1.0)), [0.0, 0.0])


def test_rloo_advantages():
    approx(L.rloo_advantages(t(1.0, 0.0, 0.0, 1.0)), [2 / 3, -2 / 3, -2 / 3, 2 / 3])
    approx(L.rloo_advantages(t(3.0, 1.0)[None]), [[2.0, -2.0]])
