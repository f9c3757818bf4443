"""Offer choices in a Select without losing the user's pick.

The screens re-read the store every time something changes and offer what they found again
(models, strategies); `offer` replaces a Select's options, keeps the value chosen when it is
still offered (else picks the first option) and posts no `Select.Changed` for it: nothing that
listens for a change of model (the chat, say) hears one that the user did not make.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import Select


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
