"""The command palette (Ctrl+P): every key binding of the app and the current screen.

Actions that have a button but no key are listed in a screen's `PALETTE` (title, action).

The palette and the help screen read the same `BINDINGS` the footer shows, so an action
added with a binding is in all three without further work.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode
from textual.screen import Screen

SCREEN_TITLES = {
    "runs": "Runs",
    "launch": "Launch",
    "data": "Data & tokenizer",
    "models": "Models & chat",
    "compare": "Compare",
    "arena": "Arena",
    "experiments": "Prompt experiments",
    "playground": "Playground",
}


def _bindings(node: DOMNode) -> Iterator[Binding]:
    for item in getattr(node, "BINDINGS", []):
        if isinstance(item, Binding) and item.description:
            yield item


def binding_entries(screen: Screen) -> list[tuple[str, str, str, DOMNode]]:
    """(key as shown, description, action, the node that owns it) for screen and app keys."""
    app = screen.app
    out = []
    for node in (screen, app):
        for b in _bindings(node):
            key = app.get_key_display(b)
            out.append((key, b.description, b.action, node))
    return out


class WorkbenchCommands(Provider):
    """Go to a screen, or run any action bound to a key on the current screen or the app."""

    def _commands(self) -> list[tuple[str, str, Any]]:
        screen = self.screen
        out = [
            (f"Go to {title}", f"switch to the {title} screen", partial(self.app.switch_mode, mode))
            for mode, title in SCREEN_TITLES.items()
        ]
        where = type(screen).__name__.removesuffix("Screen")
        for key, desc, action, node in binding_entries(screen):
            if action.startswith("switch_mode"):
                continue
            name = desc if node is self.app else f"{where}: {desc}"
            out.append((name, f"key: {key}", partial(node.run_action, action)))
        for desc, action in getattr(screen, "PALETTE", []):  # actions with a button, no key
            out.append((f"{where}: {desc}", "", partial(screen.run_action, action)))
        return out

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
