"""The one thing a strategy talks to: a model adapter that turns prompts into completions.

    adapter = load_adapter(Path("~/.workbench/models/smollm2-135m-instruct"))   # quantize="int8"
    outs = adapter.generate(["Q: 2+2?\nA:"], Params(max_new_tokens=8, stop=["\n"]))
    outs[0].text, outs[0].tokens_in, outs[0].tokens_out

Strategies only see this interface (`Adapter`), so tests drive them with a scripted fake and
the lab runs on any registered model. `HFAdapter` wraps a transformers model and tokenizer on
the project's own batched generator (engines.generate), with constrained decoding
(engines.constrained) when a `Constraint` is given. torch loads only when one is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engines.errors import UserError

OnPiece = Callable[[int, str], None]


@dataclass(frozen=True)
class Params:
    """How to sample one call (temperature 0 is greedy)."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    seed: int | None = 0
    stop: tuple[str, ...] = ()
    top_p: float = 1.0


@dataclass(frozen=True)
class Constraint:
    """Output forced to a JSON schema (dict), a regex (str) or one of several strings."""

    kind: str  # "json" | "regex" | "choice"
    value: Any = None

    def __post_init__(self) -> None:
        if self.kind not in ("json", "regex", "choice"):
            raise UserError(f"constraint kind {self.kind!r}: use json, regex or choice")


@dataclass
class Completion:
    """One completion and what it cost."""

    text: str
    tokens_in: int
    tokens_out: int


class Adapter(Protocol):
    name: str
    has_chat_template: bool

    def generate(
        self,
        prompts: list[str],
        params: Params,
        *,
        constraint: Constraint | None = None,
        on_piece: OnPiece | None = None,
    ) -> list[Completion]: ...

    def chat_prompt(self, messages: list[dict[str, str]]) -> str: ...


@dataclass
class HFAdapter:
    """A transformers causal LM on engines.generate (batched, KV cache, stop strings)."""

    model: Any
    tok: Any
    name: str = "model"
    batch_size: int = 16
    quantize: str = "none"  # the weights it decodes with (engines.quantize): none, int8, int4
    _processors: dict[str, Any] = field(default_factory=dict)

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tok, "chat_template", None))

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        from engines.generate import chat_prompt

        return chat_prompt(self.tok, messages)

    def generate(self, prompts, params, *, constraint=None, on_piece=None) -> list[Completion]:
        out: list[Completion] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            shifted = None if on_piece is None else _shift(on_piece, start)
            out += self._generate(chunk, params, constraint, shifted)
        return out

    def _generate(self, prompts, params, constraint, on_piece) -> list[Completion]:
        import torch

        from engines.generate import SamplingParams, encode_prompt, generate

        sampling = SamplingParams(
            max_new_tokens=params.max_new_tokens, temperature=params.temperature,
            seed=params.seed, stop=list(params.stop), top_p=params.top_p,
        )  # fmt: skip
        proc = self._processor(constraint)
        with torch.inference_mode():
            gens = generate(
                self.model, self.tok, prompts, sampling, logits_processor=proc, on_piece=on_piece
            )
        sizes = [len(encode_prompt(self.tok, p)) for p in prompts]
        return [Completion(g.text, n, len(g.token_ids)) for g, n in zip(gens, sizes, strict=True)]

    def _processor(self, constraint: Constraint | None) -> Any:
        if constraint is None:
            return None
        import json

        key = f"{constraint.kind}:{json.dumps(constraint.value, sort_keys=True)}"
        if key not in self._processors:
            self._processors[key] = build_processor(self.tok, constraint)
        return self._processors[key]


def _shift(on_piece: OnPiece, start: int) -> OnPiece:
    return lambda row, piece: on_piece(row + start, piece)


def build_processor(tok: Any, constraint: Constraint) -> Any:
    """The engines.constrained logits processor for a constraint (UserError if it cannot compile)."""
    from engines import constrained

    if constraint.kind == "json":
        from pipelines.prompting.constrained import bounded_schema

        return constrained.json_schema_processor(tok, bounded_schema(constraint.value))
    if constraint.kind == "regex":
        return constrained.regex_processor(tok, constraint.value)
    return constrained.choice_processor(tok, list(constraint.value))


def load_adapter(
    folder: Path, name: str | None = None, device: str = "auto", quantize: str | None = None
) -> HFAdapter:
    """An adapter over the model in a local HF folder (fp32 on CPU, bf16 on CUDA); quantize
    "int8" or "int4" decodes with quantized weights on the CPU (engines.quantize; UserError
    for another kind)."""
    from engines.model_folders import load_causal_lm

    kind = quantize or "none"
    model, tok = load_causal_lm(folder, device="cpu" if kind != "none" else device, quantize=kind)
    return HFAdapter(model, tok, name or Path(folder).name, quantize=kind)
