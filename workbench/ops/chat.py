"""Talking to a model: one set of sampling defaults and one chat turn for every front end.

    session = ChatSession(store, "smollm2-135m-instruct", system="Be brief.")
    for piece in session.turn("Hello!"):      # streams; the answer joins the history at the end
        print(piece, end="")
    for piece in complete(store, "tiny", "Once upon a time"):   # `workbench generate`
        ...

`workbench chat`, `workbench generate` and the TUI's chat pane all sample with `DEFAULTS`
unless the user overrides a field. torch and transformers load on the first turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from workbench.ops.errors import OpError, user_errors
from workbench.ops.refs import model_folder


@dataclass(frozen=True)
class Sampling:
    """How a front end samples unless told otherwise (temperature 0 is greedy)."""

    max_new_tokens: int = 128
    temperature: float = 0.7
    top_k: int = 0
    top_p: float = 0.95
    seed: int | None = 0
    stop: tuple[str, ...] = field(default_factory=tuple)

    def with_(self, **changes: Any) -> Sampling:
        """A copy with the given fields changed (None leaves a field as it is)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def engine_params(self) -> Any:
        from engines.generate import SamplingParams

        with user_errors():
            return SamplingParams(
                max_new_tokens=self.max_new_tokens,
                temperature=self.temperature,
                top_k=self.top_k,
                top_p=self.top_p,
                seed=self.seed,
                stop=list(self.stop),
            )


DEFAULTS = Sampling()


def parse_sampling(temperature: str, max_new_tokens: str, base: Sampling = DEFAULTS) -> Sampling:
    """Sampling from two typed fields (empty: the default); OpError names a bad one."""
    try:
        t = float(temperature) if temperature.strip() else base.temperature
    except ValueError:
        raise OpError(f"temperature {temperature!r} is not a number (0 = greedy)") from None
    try:
        n = int(max_new_tokens) if max_new_tokens.strip() else base.max_new_tokens
    except ValueError:
        raise OpError(f"max tokens {max_new_tokens!r} is not a whole number") from None
    if t < 0 or n < 1:
        raise OpError("temperature must be ≥ 0 and max tokens ≥ 1")
    return base.with_(temperature=t, max_new_tokens=n)


_loaded: dict[Path, tuple[Any, Any]] = {}


def load(folder: Path) -> tuple[Any, Any]:
    """(model, tokenizer) for a folder, loaded once per process."""
    from engines.model_folders import load_causal_lm

    if folder not in _loaded:
        with user_errors():
            _loaded.clear()  # one model in memory at a time
            _loaded[folder] = load_causal_lm(folder)
    return _loaded[folder]


def _stream(model: Any, tok: Any, prompt: str, sampling: Sampling) -> Iterator[str]:
    from engines.generate import stream

    params = sampling.engine_params()
    with user_errors():
        yield from stream(model, tok, prompt, params)


class ChatSession:
    """A conversation with one model: the history, and one streamed turn at a time."""

    def __init__(self, store: Any, ref: str, system: str | None = None) -> None:
        self.folder = model_folder(store, ref)
        self.messages: list[dict[str, str]] = (
            [{"role": "system", "content": system}] if system else []
        )

    def turn(self, text: str, sampling: Sampling = DEFAULTS) -> Iterator[str]:
        """Stream the model's answer to `text`; the answer joins the history when complete."""
        from engines.generate import chat_prompt

        model, tok = load(self.folder)
        self.messages.append({"role": "user", "content": text})
        with user_errors():
            prompt = chat_prompt(tok, self.messages, fallback=True)
        answer = []
        try:
            for piece in _stream(model, tok, prompt, sampling):
                answer.append(piece)
                yield piece
        finally:
            self.messages.append({"role": "assistant", "content": "".join(answer).strip()})


def complete(
    store: Any, ref: str, prompt: str, sampling: Sampling = DEFAULTS, chat: bool | None = None
) -> Iterator[str]:
    """Stream a completion of `prompt`; wrapped in the chat template if the model has one
    (or as `chat` says)."""
    from engines.generate import chat_prompt

    model, tok = load(model_folder(store, ref))
    use_chat = bool(getattr(tok, "chat_template", None)) if chat is None else chat
    with user_errors():
        text = chat_prompt(tok, [{"role": "user", "content": prompt}]) if use_chat else prompt
    yield from _stream(model, tok, text, sampling)
