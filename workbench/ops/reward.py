"""Reward-model operations both front ends call: score a completion.

reward = score(store, "reward-tiny", "What is 2 + 2?", "4")
"""

from __future__ import annotations

from typing import Any

from workbench.ops.errors import OpError, user_errors
from workbench.ops.refs import model_folder


def score(store: Any, ref: str, prompt: str, completion: str) -> float:
    """The reward model `ref`'s score of `completion` as the answer to `prompt`."""
    folder = model_folder(store, ref)
    with user_errors():
        from engines.reward_model import load_reward_model
        from engines.reward_model import score as score_all

        model, tok = load_reward_model(folder)
        return score_all(model, tok, [prompt], [completion])[0]


def check_reward_model(store: Any, ref: str) -> None:
    """OpError unless `ref` is registered as a reward model (or is a reward-model folder)."""
    model = store.get_model(ref)
    if model is not None and model["kind"] != "reward":
        raise OpError(f"{ref!r} is a {model['kind']} model, not a reward model")
