"""Startup time of the TUI against a bare Textual app, and of the CLI against `python -c pass`.

    python benchmarks/startup.py            # 5 runs each; prints medians and ratios
    python benchmarks/startup.py -n 9

Each measurement is a fresh process, timed from spawn until it prints a marker: for the
apps, on Textual's Ready event (the first frame is on screen, headless), and for the
workbench also when the Runs screen has shown its first read of the store. Goal: the TUI's
first frame within 1.5× of a bare Textual app and under a second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(kind: str) -> None:
    """Run one app headless; print 'frame' on the first frame and 'data' on the first read."""
    from textual.app import App
    from textual.widgets import Static

    def say(word: str) -> None:
        print(word, flush=True)

    if kind == "bare":

        class Bare(App):
            def compose(self):
                yield Static("hello")

            def on_ready(self) -> None:
                say("frame")
                say("data")
                self.exit()

        Bare().run(headless=True)
        return
    from workbench.tui.app import WorkbenchApp

    class Timed(WorkbenchApp):
        def on_ready(self) -> None:
            say("frame")
            self.set_interval(0.01, self.check)

        def check(self) -> None:
            if getattr(self.screen, "loaded", False):
                say("data")
                self.exit()

    Timed().run(headless=True)


def time_markers(cmd: list[str], env: dict, markers: tuple[str, ...]) -> dict[str, float]:
    """Seconds from spawn until each marker line appears on the child's stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    seen = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        word = line.strip()
        if word in markers and word not in seen:
            seen[word] = time.perf_counter() - start
        if len(seen) == len(markers):
            break
    proc.wait(timeout=60)
    return seen


def wall(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="runs of each (median reported)")
    parser.add_argument("--child", choices=["bare", "workbench"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    home = tempfile.mkdtemp(prefix="wb-startup-")
    env = {**os.environ, "WORKBENCH_HOME": home, "TERM": os.environ.get("TERM", "xterm")}
    me = [sys.executable, str(Path(__file__).resolve()), "--child"]
    results: dict[str, list[float]] = {k: [] for k in ("bare", "frame", "data", "cli", "py")}
    for _ in range(args.n):  # interleaved, so load on the machine hits both alike
        results["bare"].append(time_markers([*me, "bare"], env, ("frame",))["frame"])
        t = time_markers([*me, "workbench"], env, ("frame", "data"))
        results["frame"].append(t["frame"])
        results["data"].append(t["data"])
        results["cli"].append(wall([sys.executable, "-m", "workbench", "--help"], env))
        results["py"].append(wall([sys.executable, "-c", "pass"], env))
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"median of {args.n} runs each (seconds)")
    print(f"  bare Textual app, first frame    {med['bare']:.3f}")
    print(
        f"  workbench TUI, first frame       {med['frame']:.3f}   "
        f"ratio {med['frame'] / med['bare']:.2f}x   (goal ≤ 1.5x and < 1 s)"
    )
    print(
        f"  workbench TUI, first store read  {med['data']:.3f}   "
        f"ratio {med['data'] / med['bare']:.2f}x"
    )
    print(f"  python -c pass                   {med['py']:.3f}")
    print(
        f"  workbench --help                 {med['cli']:.3f}   ratio {med['cli'] / med['py']:.2f}x"
    )


if __name__ == "__main__":
    main()
