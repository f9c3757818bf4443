"""A scripted model adapter: strategies run on it without torch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pipelines.prompting.adapter import Completion, Constraint, Params


@dataclass
class FakeAdapter:
    """Answers each prompt with `reply(prompt, params, constraint)`; records every call."""

    reply: Callable[[str, Params, Constraint | None], str]
    has_chat_template: bool = True
    name: str = "fake"
    calls: list[tuple[list[str], Params, Constraint | None]] = field(default_factory=list)

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        body = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return body + "<assistant>"

    def generate(self, prompts, params, *, constraint=None, on_piece=None) -> list[Completion]:
        self.calls.append((list(prompts), params, constraint))
        outs = []
        for row, prompt in enumerate(prompts):
            text = self.reply(prompt, params, constraint)
            if on_piece is not None:
                on_piece(row, text)
            outs.append(Completion(text, len(prompt.split()), len(text.split()) + 1))
        return outs
