"""A rich progress bar for long model operations (download, join, convert)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def pull_progress() -> Iterator[Callable[..., None]]:
    """Yields `progress(done, total=None, message="")`; a bar on a TTY, lines otherwise."""
    if not sys.stderr.isatty():
        last = [""]

        def plain(done: float, total: float | None = None, message: str = "") -> None:
            if message != last[0]:
                last[0] = message
                print(f"[pull] {message}", file=sys.stderr, flush=True)

        yield plain
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn()) as bar:
        task = bar.add_task("pull", total=None)

        def update(done: float, total: float | None = None, message: str = "") -> None:
            bar.update(task, completed=done, total=total, description=message or "pull")

        yield update
