"""Hand-computed values for the RL pieces beside engines.losses: whitening, reward placement,
pair accuracy, DPO pair metrics, GRPO's loss on a known batch, the checker ranking, and
diversity figures."""

from __future__ import annotations

import math

import torch

from engines.diversity import distinct_n, diversity
from engines.dpo import pair_metrics
from engines.ppo import PPOConfig, last_token_rewards, token_rewards
from engines.reward_model import pair_stats
from engines.rollout import sequence_tensors, whiten
from pipelines.comparisons import pairs, rank_by_checker


def close(a, b, tol=1e-5):
    assert torch.allclose(torch.as_tensor(a, dtype=torch.float32),
                          torch.as_tensor(b, dtype=torch.float32), atol=tol), (a, b)  # fmt: skip


def test_whiten_uses_masked_positions_only():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    out = whiten(x, torch.tensor([[1.0, 1.0, 0.0]]))
    close(out, [[-1.0, 1.0, 0.0]])  # mean 2, std 1 over the first two


def test_last_token_rewards_land_on_each_rows_last_response_token():
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    close(last_token_rewards(torch.tensor([2.0, -1.0]), mask), [[0, 0, 2, 0], [0, 0, 0, -1]])


def test_token_rewards_whiten_scores_so_a_reward_models_offset_and_scale_do_not_matter():
    cfg = PPOConfig(kl_coef=0.1, clip=0.2, value_clip=0.2, vf_coef=0.5, ent_coef=0.0, gamma=1.0,
                    lam=0.95, epochs=1, minibatch=2, whiten_scores=True)  # fmt: skip
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    kl = torch.tensor([[0.5, -0.2, 0.0], [0.1, 0.3, 0.2], [0.4, 0.0, 0.0]])
    score = torch.tensor([8.0, 8.5, 9.5])  # mean 8.667, std 0.624 (population)
    r = token_rewards(score, kl, mask, cfg)
    z = (score - score.mean()) / score.std(correction=0)
    close(r, -0.1 * kl + last_token_rewards(z, mask))
    close(r[:, :].sum() + 0.1 * kl.sum(), 0.0, tol=1e-4)  # whitened scores sum to 0
    close(token_rewards(3 * score - 100, kl, mask, cfg), r, tol=1e-4)  # offset, scale: no change
    raw = token_rewards(score, kl, mask, PPOConfig(**{**cfg.__dict__, "whiten_scores": False}))
    close(raw, -0.1 * kl + last_token_rewards(score, mask))
    one = token_rewards(torch.tensor([8.0]), kl[:1], mask[:1], cfg)  # a batch of one: no signal
    close(one, -0.1 * kl[:1])


def test_sequence_tensors_label_aligned_mask():
    ids, attn, mask = sequence_tensors([[5, 6], [7]], [[8], [9, 10]], pad=0)
    assert ids.tolist() == [[5, 6, 8], [7, 9, 10]] and attn.tolist() == [[1, 1, 1], [1, 1, 1]]
    assert mask.tolist() == [[0.0, 1.0], [1.0, 1.0]]  # label t+1 is a completion token


def test_pair_stats_counts_present_pairs():
    rewards = torch.tensor([[3.0, 1.0, 2.0]])
    present = torch.tensor([[True, True, True]])
    acc, margin = pair_stats(rewards, present)  # pairs (0,1) +2, (0,2) +1, (1,2) -1
    close(acc, 2 / 3)
    close(margin, 2 / 3)
    acc, margin = pair_stats(rewards, torch.tensor([[True, True, False]]))
    close(acc, 1.0)
    close(margin, 2.0)


def test_dpo_pair_metrics_count_ties_as_half():
    m = pair_metrics(
        torch.tensor([0.5, 0.0, -0.2]), torch.tensor([-1.0, -2.0, -3.0, -2.0, -1.0, -1.0])
    )
    close(m["reward_accuracy"], 0.5)  # 1 + ½ + 0 over 3
    close(m["margin"], 0.1)
    close(m["logp_accuracy"], 1 / 3)  # only the first pair's chosen has the higher log-prob


def test_grpo_loss_on_a_known_batch():
    """One prompt, two answers: the ratio is 1, so the loss is −mean(A) = 0 and its gradient
    is that of −mean over tokens of A·log π (REINFORCE with group-normalised advantages)."""
    from engines.grpo import grpo_loss
    from engines.losses import grpo_advantages, token_logprobs

    w = torch.zeros(2, 3, 2)
    w[:, :, 0] = math.log(3.0)  # p(token 0) = 3/4 everywhere
    w.requires_grad_(True)

    class Fixed(torch.nn.Module):
        def forward(self, input_ids, attention_mask, use_cache=False):
            return type("Out", (), {"logits": w})

    adv = grpo_advantages(torch.tensor([[1.0, 0.0]])).flatten()  # ±1/√2
    close(adv, [2**-0.5, -(2**-0.5)])
    ids = torch.tensor([[0, 0, 0], [0, 1, 1]])
    batch = {"input_ids": ids, "attention_mask": torch.ones(2, 3), "mask": torch.ones(2, 2),
             "adv": adv, "reward": torch.tensor(0.5), "length": torch.tensor(2.0)}  # fmt: skip
    loss, extra = grpo_loss(kl_coef=0.0)(Fixed(), batch)
    close(loss, 0.0)
    (grad,) = torch.autograd.grad(loss, w)
    reference = -(adv[:, None] * token_logprobs(w[:, :-1], ids[:, 1:])).mean()
    (expected,) = torch.autograd.grad(reference, w)
    close(grad, expected)
    close(grad[0, 0, 0], -(2**-0.5) * 0.25 / 4)  # d(log 3/4)/d logit0 = 1 - 3/4, one of 4 tokens
    close(extra["reward"], 0.5)


def test_rank_by_checker_correct_first_then_shorter_and_strict():
    texts = ["12", "the answer is 12", "13", "99", "999", "12", ""]
    ranked = rank_by_checker(texts, lambda t: "12" in t)
    assert ranked == ["12", "the answer is 12", "13", "999", ""]  # "99" ties "13": dropped


def test_pairs_expand_every_ordered_pair():
    from engines.reward_model import Ranking

    assert pairs([Ranking("p", ["a", "b", "c"])]) == [("p", "a", "b"), ("p", "a", "c"),
                                                      ("p", "b", "c")]  # fmt: skip


def test_distinct_n_and_diversity():
    texts = ["a b a", "a b c"]
    close(distinct_n(texts, 1), 3 / 6)  # unique {a, b, c} over 6 words
    close(distinct_n(texts, 2), 3 / 4)  # (a b), (b a), (a b), (b c)
    d = diversity(texts, [[1.0, 2.0], [3.0]])
    close(d["entropy"], 2.0)
    close(d["distinct_answers"], 1.0)
