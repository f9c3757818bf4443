"""A rich progress bar for long model operations (download, join, convert)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def pull_progress() -> Iterator[Callable[[str, int, int], None]]:
    """Yields `progress(text, done, total)`; a bar on a TTY, plain lines otherwise."""
    if not sys.stderr.isatty():

        def plain(text: str, done: int, total: int) -> None:
            print(f"[pull {done}/{total}] {text}", file=sys.stderr, flush=True)

        yield plain
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()) as bar:
        task = bar.add_task("pull", total=None)

        def update(text: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=text)

        yield update
