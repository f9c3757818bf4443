"""Reward models: a causal LM's transformer with a scalar head read at a reward readout token.

The model is a plain `transformers` sequence classifier (`LlamaForSequenceClassification` for
the Llama models trained or pulled here) with `num_labels = 1` and `pad_token_id` set, so HF
reads the score at the last non-pad token. We make that token the readout token, appended
after the completion: `<|reward|>` for tokenizers trained here; a tokenizer without one gets
`<|reward|>` added (and the embedding grows by one row). A saved reward model therefore loads
without this project:

    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    rm = AutoModelForSequenceClassification.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    msgs = [{"role": "user", "content": p}, {"role": "assistant", "content": c}]
    text = tok.apply_chat_template(msgs, tokenize=False).rstrip()
    ids = tok(text).input_ids + [rm.config.readout_token_id]
    reward = rm(torch.tensor([ids])).logits[0, 0]

Here: `new_reward_model(lm_folder)`, `load_reward_model(folder)`, `reward_ids(...)`,
`score(rm, tok, prompts, completions)`, `RankingBatches` and `ranking_loss` for training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engines.errors import UserError
from engines.losses import ranked_bt_loss
from engines.vocab import REWARD


@dataclass
class Ranking:
    """One prompt's completions, best first (strict order)."""

    prompt: str
    completions: list[str]
    correct: list[bool] | None = None  # per completion, when a checker ranked them
    own: list[bool] | None = None  # per completion, whether the model sampled it (generator)


def readout_id(tok) -> int | None:
    """The id of the reward readout token in this tokenizer, or None."""
    return tok.get_vocab().get(REWARD)


def ensure_readout(model, tok) -> int:
    """The readout id, adding `<|reward|>` (and an embedding row) when the tokenizer lacks it."""
    rid = readout_id(tok)
    if rid is None:
        tok.add_special_tokens({"additional_special_tokens": [REWARD]})
        model.resize_token_embeddings(len(tok))
        rid = readout_id(tok)
    return int(rid)


def pad_id(tok) -> int:
    for value in (tok.pad_token_id, tok.eos_token_id, 0):
        if value is not None:
            return int(value)
    return 0


def new_reward_model(lm_folder, *, seed: int = 0):
    """(reward model, tokenizer) from a causal LM folder: its transformer + a fresh head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "score.weight newly initialised" is the point here
    tok = AutoTokenizer.from_pretrained(lm_folder, local_files_only=True)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        lm_folder, num_labels=1, dtype=torch.float32, local_files_only=True
    )
    rid = ensure_readout(model, tok)
    model.config.pad_token_id = pad_id(tok)
    model.config.readout_token_id = rid
    assert model.config.pad_token_id != rid, "the readout token must differ from padding"
    torch.nn.init.normal_(model.score.weight, std=1.0 / (model.config.hidden_size + 1) ** 0.5)
    return model, tok


def load_reward_model(folder, device: str = "cpu"):
    """(reward model in eval mode, tokenizer) from a saved reward-model folder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            folder, dtype=torch.float32, local_files_only=True
        )
    except (OSError, ValueError) as e:
        raise UserError(f"{folder} is not a reward-model folder ({e})") from None
    if getattr(model.config, "readout_token_id", None) is None or model.config.num_labels != 1:
        raise UserError(f"{folder} is a classifier but not a reward model (no readout token)")
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return model.to(device).eval(), tok


def prompt_text(tok, prompt: str) -> str:
    """The chat-formatted prompt a policy answers (plain User:/Assistant: without a template)."""
    from engines.generate import chat_prompt

    return chat_prompt(tok, [{"role": "user", "content": prompt}], fallback=True)


def turn_end_id(tok) -> int | None:
    """The token that ends an assistant turn in this tokenizer's template."""
    from engines.chat import END_OF_TURN

    vocab = tok.get_vocab()
    for t in END_OF_TURN:
        if t in vocab:
            return vocab[t]
    return tok.eos_token_id


def reward_ids(tok, prompt: str, completion: str, readout: int) -> list[int]:
    """Prompt (chat-formatted) + completion + end of turn + readout: what the RM reads."""
    from engines.generate import encode_prompt

    ids = encode_prompt(tok, prompt_text(tok, prompt))
    ids += tok(completion, add_special_tokens=False)["input_ids"]
    end = turn_end_id(tok)
    return ids + ([end] if end is not None else []) + [readout]


def right_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (N, T), attention mask (N, T)) right-padded to the longest row."""
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def rewards_of(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Scalar rewards (N,) of right-padded sequences ending in the readout token."""
    return model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, 0].float()


@torch.no_grad()
def score(model, tok, prompts: list[str], completions: list[str], batch: int = 16) -> list[float]:
    """The reward of each (prompt, completion)."""
    readout, out = int(model.config.readout_token_id), []
    rows = [reward_ids(tok, p, c, readout) for p, c in zip(prompts, completions)]
    for i in range(0, len(rows), batch):
        ids, mask = right_pad(rows[i : i + batch], int(model.config.pad_token_id))
        out += rewards_of(model, ids, mask).tolist()
    return out


class RankingBatches:
    """B rankings a batch, drawn with a seeded generator; K padded to the longest ranking.

    next_batch() -> {"input_ids" (B·K, T), "attention_mask" (B·K, T), "present" (B, K)}.
    """

    def __init__(self, encoded: list[list[list[int]]], batch_size: int, *, pad: int, seed: int):
        if not encoded:
            raise UserError("no rankings to train on: give more comparisons")
        self.encoded, self.B, self.pad = encoded, batch_size, pad
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def next_batch(self) -> dict[str, torch.Tensor]:
        idx = self.rng.integers(0, len(self.encoded), size=self.B)
        return collate_rankings([self.encoded[i] for i in idx], self.pad)

    def state_dict(self) -> dict:
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["bit_generator"]


def collate_rankings(rankings: list[list[list[int]]], pad: int) -> dict[str, torch.Tensor]:
    K = max(len(r) for r in rankings)
    rows, present = [], torch.zeros((len(rankings), K), dtype=torch.bool)
    for b, ranking in enumerate(rankings):
        for k in range(K):
            present[b, k] = k < len(ranking)
            rows.append(ranking[k] if k < len(ranking) else ranking[-1])
    ids, mask = right_pad(rows, pad)
    return {"input_ids": ids, "attention_mask": mask, "present": present}


def pair_stats(rewards: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Share of ordered pairs scored in order, and their mean margin: (B, K) -> (), ()"""
    K = rewards.shape[1]
    i, j = torch.triu_indices(K, K, offset=1)
    valid = (present[:, i] & present[:, j]).float()  # (B, P)
    diff = rewards[:, i] - rewards[:, j]  # (B, P)
    n = valid.sum().clamp_min(1.0)
    return ((diff > 0).float() * valid).sum() / n, (diff * valid).sum() / n


def ranking_loss(model, batch: dict[str, torch.Tensor]):
    """InstructGPT's loss over every ordered pair of each ranking, plus pair accuracy/margin."""
    B, K = batch["present"].shape
    r = rewards_of(model, batch["input_ids"], batch["attention_mask"]).view(B, K)  # (B, K)
    loss = ranked_bt_loss(r, batch["present"])
    acc, margin = pair_stats(r.detach(), batch["present"])
    return loss, {"pair_accuracy": acc, "margin": margin}
