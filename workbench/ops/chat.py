"""Talking to a model: one set of sampling defaults and one chat turn for every front end.

    session = ChatSession(store, "smollm2-135m-instruct", system="Be brief.")
    for piece in session.turn("Hello!"):      # streams; the answer joins the history at the end
        print(piece, end="")
    for piece in complete(store, "tiny", "Once upon a time"):   # `workbench generate`
        ...

`workbench chat`, `workbench generate` and the TUI's chat pane all sample with `DEFAULTS`
unless the user overrides a field. torch and transformers load on the first turn.
`Sampling.quantize` (none, int8, int4: `check_quantize`) picks the weights decode reads, for
every front end that decodes; what it produces is labelled `quantize_label(ref, kind)`.

What a model is decides how it is talked to (`model_info`): an assistant gets its chat
template; a base model (pretrained, not chat-tuned) gets plain completion from `complete`, and
in a chat a plain "User:/Assistant:" document (with `notice` saying so); an embedding model
cannot generate and is refused with one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from workbench.ops.errors import OpError, user_errors
from workbench.ops.refs import model_folder

QUANTIZE = ("none", "int8", "int4")  # engines.quantize.KINDS, without importing torch here
QUANTIZE_RULE = "none, int8 or int4"


def check_quantize(value: str, name: str = "--quantize") -> str:
    """`value` when it is a quantization decode knows (none, int8, int4); else an OpError
    naming the flag or field `name` and the choices."""
    if value not in QUANTIZE:
        raise OpError(f"{name} {value}: {QUANTIZE_RULE}")
    return value


def quantize_label(ref: str, quantize: str | None) -> str:
    """A model as results name it: `sft` with its own weights, `sft [int8]` quantized (the
    label of `eval diversity` rows, arena votes and rankings, the prompt lab's tables)."""
    return ref if quantize in (None, "none") else f"{ref} [{quantize}]"


def quantize_device(quantize: str | None) -> str:
    """Where a model loads for decode: quantized weights are a CPU path (engines.quantize)."""
    return "auto" if quantize in (None, "none") else "cpu"


@dataclass(frozen=True)
class Sampling:
    """How a front end samples unless told otherwise (temperature 0 is greedy)."""

    max_new_tokens: int = 128
    temperature: float = 0.7
    top_k: int = 0
    top_p: float = 0.95
    seed: int | None = 0
    stop: tuple[str, ...] = field(default_factory=tuple)
    quantize: str = "none"  # the weights decode reads: none (fp32), int8 or int4 (CPU only)

    def with_(self, **changes: Any) -> Sampling:
        """A copy with the given fields changed (None leaves a field as it is)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def check(self) -> Sampling:
        """Itself when every field is in range; else an OpError naming each bad one."""
        bad = [f"--{name.replace('_', '-')} {value}: {rule}" for name, value, ok, rule in (
            ("max_new_tokens", self.max_new_tokens, self.max_new_tokens >= 1, "at least 1"),
            ("temperature", self.temperature, self.temperature >= 0, "0 (greedy) or more"),
            ("top_k", self.top_k, self.top_k >= 0, "0 (off) or more"),
            ("top_p", self.top_p, 0 < self.top_p <= 1, "more than 0, at most 1"),
            ("quantize", self.quantize, self.quantize in QUANTIZE, QUANTIZE_RULE),
        ) if not ok]  # fmt: skip
        if bad:
            raise OpError("; ".join(bad))
        return self

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


def parse_sampling(
    temperature: str, max_new_tokens: str, base: Sampling = DEFAULTS, quantize: str | None = None
) -> Sampling:
    """Sampling from two typed fields (empty: the default) and the quantization picked (None:
    the base's); OpError names a bad one."""
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
    return base.with_(temperature=t, max_new_tokens=n, quantize=quantize).check()


_loaded: dict[tuple[Path, str], tuple[Any, Any]] = {}


def load(folder: Path, quantize: str = "none") -> tuple[Any, Any]:
    """(model, tokenizer) for a folder (its weights quantized as asked), loaded once per
    process."""
    from engines.model_folders import load_causal_lm

    key = (folder, quantize)
    if key not in _loaded:
        with user_errors():
            _loaded.clear()  # one model in memory at a time
            _loaded[key] = load_causal_lm(
                folder, device=quantize_device(quantize), quantize=quantize
            )
    return _loaded[key]


def _stream(model: Any, tok: Any, prompt: str, sampling: Sampling) -> Iterator[str]:
    from engines.generate import stream

    params = sampling.engine_params()
    with user_errors():
        yield from stream(model, tok, prompt, params)


def model_info(store: Any, ref: str) -> dict[str, Any]:
    """{"folder", "name", "kind", "chat"}: where a model is, what it is (the registry's kind,
    else a guess from its folder) and whether it is chat-tuned with a chat template."""
    folder = model_folder(store, ref)
    record = store.get_model(ref.removeprefix("model:")) or next(
        (m for m in store.list_models() if Path(m["path"]).resolve() == folder.resolve()), None
    )
    if record is None:
        from engines.model_folders import describe_model

        with user_errors():
            record = {**describe_model(folder), "name": ref}
    meta = record.get("meta") or {}
    tuned = (
        meta.get("chat_tuned", record.get("kind") == "assistant")
        if isinstance(meta, dict)
        else True
    )
    chat = bool(record.get("chat_template")) and bool(tuned) and record.get("kind") != "base"
    return {"folder": folder, "name": record.get("ref") or record["name"],
            "kind": record.get("kind") or "base", "chat": chat}  # fmt: skip


def generative(info: dict[str, Any]) -> dict[str, Any]:
    """The model's info when it can generate text; OpError for an embedding model."""
    if info["kind"] == "embedding":
        raise OpError(
            f"{info['name']} is an embedding model: it turns text into vectors and cannot "
            "generate text (use it for `workbench rag`); pick a base or assistant model from "
            "`workbench models ls`"
        )
    return info


def default_assistant(store: Any) -> str:
    """The newest registered assistant model's ref (what `chat` uses with no model given)."""
    with user_errors():
        models = store.list_models("assistant", latest_only=True)
    if not models:
        raise OpError(
            "no assistant model yet: pull one (workbench models pull smollm2-135m-instruct), "
            "fine-tune one (workbench run --preset sft-tiny), or name a model: workbench chat MODEL"
        )
    newest = max(models, key=lambda m: str(m.get("created_at") or ""))
    return newest.get("ref") or newest["name"]


class ChatSession:
    """A conversation with one model: the history, and one streamed turn at a time.

    A base model chats through a plain "User:/Assistant:" document (stopping at the next
    "User:"); `notice` then says so, for the front end to show.
    """

    def __init__(self, store: Any, ref: str, system: str | None = None) -> None:
        info = generative(model_info(store, ref))
        self.folder, self.name, self.chat = info["folder"], info["name"], info["chat"]
        self.notice = "" if self.chat else (
            f"{self.name} is a base model (not chat-tuned): it continues a plain "
            "'User: …/Assistant:' document, so answers may ramble. For an assistant, pull one "
            "or fine-tune this one (workbench run --preset sft-tiny)."
        )  # fmt: skip
        self.messages: list[dict[str, str]] = (
            [{"role": "system", "content": system}] if system else []
        )

    def turn(self, text: str, sampling: Sampling = DEFAULTS) -> Iterator[str]:
        """Stream the model's answer to `text`; the answer joins the history when complete."""
        from engines.generate import chat_prompt, plain_transcript

        sampling.check()
        model, tok = load(self.folder, sampling.quantize)
        self.messages.append({"role": "user", "content": text})
        with user_errors():
            if self.chat:
                prompt = chat_prompt(tok, self.messages, fallback=True)
            else:
                prompt = plain_transcript(self.messages)
                sampling = sampling.with_(stop=(*sampling.stop, "\nUser:"))
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
    """Stream a completion of `prompt`: wrapped in the chat template for a chat-tuned model,
    plain for a base model (or as `chat` says). Checks the sampling and the model first."""
    from engines.generate import chat_prompt

    sampling.check()
    info = generative(model_info(store, ref))
    model, tok = load(info["folder"], sampling.quantize)
    use_chat = info["chat"] if chat is None else chat
    messages = [{"role": "user", "content": prompt}]
    with user_errors():
        text = chat_prompt(tok, messages, fallback=True) if use_chat else prompt
    yield from _stream(model, tok, text, sampling)
