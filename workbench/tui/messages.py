"""Messages the app and screens exchange (past tense: something happened).

`StoreChanged` is posted by the app's one refresher after it ingested new events or saw
another process write the store; screens react by re-reading what they show. Many of them
queued up coalesce into one (`can_replace`), and nothing is lost: screens read the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message


@dataclass
class StoreChanged(Message, bubble=False):
    """The store holds something new (or a screen asked to be re-read)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StoreChanged)


@dataclass
class Loaded(Message, bubble=False):
    """A screen's read finished; `data` is what its `read` returned."""

    data: Any
