"""How a job's events look in a terminal: a rich bar on a TTY, plain lines otherwise, or JSON.

A printer is a callable taking one event dict (as written to events.jsonl). Plain mode
prints at most one metrics line every `every_s` seconds (always validation lines), a line
when a phase starts (`[phase] eval 0/40`) and at most one progress line per phase every
`every_s`, so a job under nohup or a pipe leaves a readable log.

The job's last note is its summary (what was made, the figure, the next command): it is held
back and printed after the final status, so that a job ends on what to do next.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from workbench.ops.fmt import fmt_metric, metric_rank


def fmt_values(values: dict[str, Any]) -> str:
    """`k=v …`, the headline metrics first (a terminal's bar cuts the line at its width)."""
    order = sorted(values, key=metric_rank)  # stable: the rest keep their logged order
    return " ".join(f"{k}={fmt_metric(k, values[k])}" for k in order)


class PlainPrinter:
    def __init__(self, out: TextIO = sys.stdout, every_s: float = 2.0) -> None:
        self.out, self.every_s, self.last = out, every_s, 0.0
        self.total = 0
        self.phase, self.phase_said = "", 0.0
        self.held: dict[str, Any] | None = None  # the newest note: the summary, if it is last

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e.get("kind")
        if self.held is not None and kind not in ("run_finished", "note"):
            self._note(self.held)
            self.held = None
        if kind == "note" and e.get("level", "info") != "info":
            self._note(e)  # a warning or error is never held back
        elif kind == "note":
            if self.held is not None:
                self._note(self.held)
            self.held = e
        elif kind == "run_finished":
            self._finished(e)
        else:
            self._event(kind, e)

    def _note(self, e: dict[str, Any]) -> None:
        self.line(f"[{e.get('level', 'info')}] {e['text']}")

    def _finished(self, e: dict[str, Any]) -> None:
        why = f": {e['reason']}" if e.get("reason") else ""
        self.line(f"[{e['status']}]{why}")
        if self.held is not None:
            self.line(f"\n{self.held['text']}")
            self.held = None

    def _progress(self, e: dict[str, Any]) -> None:
        phase, now = e.get("phase") or "train", time.monotonic()
        if phase == "train":
            self.total = e.get("total") or self.total
        if phase == self.phase and now - self.phase_said < self.every_s:
            return
        if phase != "train" or phase != self.phase:
            of = f"/{e['total']}" if e.get("total") else ""
            what = f" {e['message']}" if e.get("message") else ""
            self.line(f"[{phase}] {e.get('step', 0)}{of}{what}")
        self.phase, self.phase_said = phase, now

    def _event(self, kind: Any, e: dict[str, Any]) -> None:
        if kind == "metrics":
            now = time.monotonic()
            if e.get("split") != "train" or now - self.last >= self.every_s:
                self.last = now
                of = f"/{self.total}" if self.total else ""
                self.line(f"[{e.get('split')}] step {e['step']}{of} {fmt_values(e['values'])}")
        elif kind == "progress":
            self._progress(e)
        elif kind == "sample":
            text = (e["prompt"] + e["completion"]).replace("\n", "⏎")
            self.line(f"[sample] step {e['step']}: {text[:200]}")
        elif kind == "artifact":
            self.line(f"[{e['type']}] {e['path']}")
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
            phase = e.get("phase") or "train"
            if phase != self.phase:
                self.bar.reset(self.task)
                self.phase = phase
            self.bar.update(
                self.task,
                completed=e["step"],
                total=e.get("total") or None,
                phase=phase,
                metrics=e.get("message") or "",
            )
        elif kind == "metrics" and e.get("split") == "train":
            self.bar.update(self.task, metrics=fmt_values(e["values"]))
        else:
            if kind == "run_finished":
                self.bar.stop()
            super().__call__(e)


def make_printer(json_mode: bool, out: TextIO = sys.stdout):
    if json_mode:
        return JsonPrinter()
    if out.isatty():
        return RichPrinter()
    return PlainPrinter(out)
