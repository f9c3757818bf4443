"""Run the real `workbench` entry point on a pseudo-terminal of a given size.

    rc, out = on_terminal("runs", "ls", home=home, columns=80)

stdin, stdout and stderr are the pty's slave, so `isatty()` is true and rich and the
progress bars behave as they do for a person; `out` is everything the terminal received
(with escape codes; `plain(out)` strips them).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.conftest import ROOT

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def on_terminal(
    *args: str,
    home: Path,
    columns: int = 80,
    rows: int = 24,
    env: dict | None = None,
    stdin_text: str = "",
    timeout: float = 300,
) -> tuple[int, str]:
    """(exit code, what the terminal received) for `workbench ARGS` on a COLUMNS×ROWS pty."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    full_env = {**os.environ, "WORKBENCH_HOME": str(home), "TERM": "xterm-256color",
                "COLUMNS": str(columns), "LINES": str(rows), **(env or {})}  # fmt: skip
    full_env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", *args],
        stdin=slave, stdout=slave, stderr=slave, env=full_env, cwd=ROOT, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    if stdin_text:
        os.write(master, stdin_text.encode())
    out = _read_all(master, proc, time.monotonic() + timeout)
    os.close(master)
    return proc.wait(timeout=10), out


def _read_all(master: int, proc: subprocess.Popen, deadline: float) -> str:
    data = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            data += chunk
        elif proc.poll() is not None:
            break
    else:
        proc.kill()
    return data.decode("utf-8", errors="replace")


def plain(text: str) -> str:
    """The terminal's text without colour and cursor codes (and without \\r)."""
    return _ESCAPES.sub("", text)
