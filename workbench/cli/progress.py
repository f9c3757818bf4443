"""How a job's events look in a terminal: a rich bar on a TTY, plain lines otherwise, or JSON.

A printer is a callable taking one event dict (as written to events.jsonl). Plain mode
prints at most one metrics line every `every_s` seconds (always validation lines), so a job
under nohup or a pipe leaves a readable log.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO


def fmt_values(values: dict[str, Any]) -> str:
    parts = []
    for k, v in values.items():
        if isinstance(v, float):
            v = f"{v:.4g}"
        parts.append(f"{k}={v}")
    return " ".join(parts)


class PlainPrinter:
    def __init__(self, out: TextIO = sys.stdout, every_s: float = 2.0) -> None:
        self.out, self.every_s, self.last = out, every_s, 0.0
        self.total = 0

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e.get("kind")
        if kind == "metrics":
            now = time.monotonic()
            if e.get("split") != "train" or now - self.last >= self.every_s:
                self.last = now
                of = f"/{self.total}" if self.total else ""
                self.line(f"[{e.get('split')}] step {e['step']}{of} {fmt_values(e['values'])}")
        elif kind == "progress" and e.get("phase", "train") == "train":
            self.total = e.get("total") or self.total
        elif kind == "sample":
            text = (e["prompt"] + e["completion"]).replace("\n", "⏎")
            self.line(f"[sample] step {e['step']}: {text[:200]}")
        elif kind == "note":
            self.line(f"[{e.get('level', 'info')}] {e['text']}")
        elif kind == "artifact":
            self.line(f"[{e['type']}] {e['path']}")
        elif kind == "run_finished":
            why = f": {e['reason']}" if e.get("reason") else ""
            self.line(f"[{e['status']}]{why}")
        elif kind == "table":
            self.line(f"[table] {e['name']} ({len(e['rows'])} rows)")


class JsonPrinter:
    def __call__(self, e: dict[str, Any]) -> None:
        print(json.dumps(e), flush=True)


class RichPrinter(PlainPrinter):
    """A live progress bar with the latest metrics; other events print above it."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        super().__init__()
        self.console = Console()
        self.bar = Progress(
            TextColumn("[bold]{task.fields[phase]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=self.console,
        )
        self.task = self.bar.add_task("job", total=None, phase="starting", metrics="")
        self.bar.start()

    def line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e.get("kind")
        if kind == "progress":
            self.bar.update(
                self.task,
                completed=e["step"],
                total=e.get("total") or None,
                phase=e.get("phase", "train"),
            )
        elif kind == "metrics" and e.get("split") == "train":
            self.bar.update(self.task, metrics=fmt_values(e["values"]))
        else:
            super().__call__(e)
        if kind == "run_finished":
            self.bar.stop()


def make_printer(json_mode: bool, out: TextIO = sys.stdout):
    if json_mode:
        return JsonPrinter()
    if out.isatty():
        return RichPrinter()
    return PlainPrinter(out)
