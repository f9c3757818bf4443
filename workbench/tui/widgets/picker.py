"""Offer choices in a Select without losing the user's pick.

The screens re-read the store every time something changes and offer what they found again
(models, strategies); `offer` replaces a Select's options, keeps the value chosen when it is
still offered (else picks the first option) and posts no `Select.Changed` for it: nothing that
listens for a change of model (the chat, say) hears one that the user did not make.

`quantize_picker` is the one "quantize" choice every screen that decodes shows (the chat pane,
Compare, Arena, the Playground): none, int8 or int4 (`workbench.ops.chat.QUANTIZE`), read with
`quantize_of` and handed to ops, which load and label the model.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import Select

from workbench.ops.chat import QUANTIZE


def offer(select: Select, options: Sequence[tuple[str, str]]) -> None:
    """Set `select`'s (label, value) options, keeping its value if offered, else the first."""
    value = select.value
    values = [v for _, v in options]
    with select.prevent(Select.Changed):
        select.set_options(options)
        if value in values:
            select.value = value
        elif values:
            select.value = values[0]


def quantize_picker(select_id: str) -> Select[str]:
    """The weights decode reads: none (the model's own), int8 or int4 (CPU)."""
    return Select([(q, q) for q in QUANTIZE], value="none", id=select_id, allow_blank=False,
                  compact=True, classes="quantize", tooltip="quantize: the weights decode reads")  # fmt: skip


def quantize_of(select: Select) -> str:
    """The picked quantization ("none" when nothing is picked)."""
    return "none" if select.is_blank() else str(select.value)
