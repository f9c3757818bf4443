"""`workbench tui --serve` in a real browser: headless Chromium opens the served page on
loopback and the Runs screen arrives and is drawn.

The set-up installs Debian's `chromium` when it is missing (apt-get, as root); the test is
skipped, saying why, only when that is impossible. Chromium is driven over the DevTools
protocol (aiohttp, a dependency of textual-serve): the page must connect its websocket, the
terminal must receive the Runs screen (the mode bar and a run id of the fixed store, in the
frames the browser got), the page must mark its first byte (`body.-first-byte`), and a
screenshot of it is saved (`pytest --basetemp` keeps it) and must not be blank.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tui.fixtures import PRETRAIN

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 90


def _chromium() -> str:
    """The chromium binary, installed with apt-get when missing; skip when that fails."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and apt-get cannot run here (not root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        proc = subprocess.run(
            cmd, check=False, capture_output=True, text=True, env=env, timeout=900
        )
        if proc.returncode != 0:
            pytest.skip(f"could not install chromium ({' '.join(cmd)}): {proc.stderr[-300:]}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get installed chromium but no `chromium` is on PATH")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    end = time.monotonic() + TIMEOUT_S
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not listen on port {port} in {TIMEOUT_S} s")


def _stop(proc: subprocess.Popen) -> None:
    """End a process group this test started (the server and the app it spawned)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture
def served(filled_home):
    port = _free_port()
    env = {**os.environ, "WORKBENCH_HOME": str(filled_home), "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "workbench", "tui", "--serve", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        _wait_port(port, server, "workbench tui --serve")
        yield f"http://127.0.0.1:{port}/"
    finally:
        _stop(server)


@pytest.fixture
def browser(tmp_path):
    binary = _chromium()
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-dev-shm-usage", "--window-size=1200,800", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        active = profile / "DevToolsActivePort"
        end = time.monotonic() + TIMEOUT_S
        while not (active.exists() and active.read_text().strip()) and time.monotonic() < end:
            if proc.poll() is not None:
                pytest.fail(f"chromium exited with {proc.returncode}")
            time.sleep(0.2)
        yield int(active.read_text().split()[0])
    finally:
        _stop(proc)


class Page:
    """A minimal DevTools-protocol client for one page target."""

    def __init__(self, ws) -> None:
        self.ws, self.next_id, self.frames = ws, 0, bytearray()

    async def call(self, method: str, **params):
        self.next_id += 1
        await self.ws.send_str(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads((await self.ws.receive()).data)
            self._event(msg)
            if msg.get("id") == self.next_id:
                return msg.get("result", {})

    async def pump(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                while True:
                    self._event(json.loads((await self.ws.receive()).data))
        except TimeoutError:
            pass

    def _event(self, msg: dict) -> None:
        if msg.get("method") == "Network.webSocketFrameReceived":
            frame = msg["params"]["response"]
            data = frame["payloadData"]
            raw = base64.b64decode(data) if frame.get("opcode") == 2 else data.encode()
            self.frames += raw


async def _visit(debug_port: int, url: str, shot: Path) -> tuple[bytes, bool]:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{debug_port}/json/list") as r:
            targets = await r.json(content_type=None)
        target = next(t for t in targets if t["type"] == "page")
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            page = Page(ws)
            await page.call("Network.enable")
            await page.call("Page.enable")
            await page.call("Page.navigate", url=url)
            end = time.monotonic() + TIMEOUT_S
            while time.monotonic() < end and PRETRAIN.encode() not in page.frames:
                await page.pump(1.0)
            await page.pump(2.0)  # let the terminal draw what arrived
            check = "document.body.classList.contains('-first-byte')"
            drawn = await page.call("Runtime.evaluate", expression=check)
            png = await page.call("Page.captureScreenshot", format="png")
            shot.write_bytes(base64.b64decode(png["data"]))
            return bytes(page.frames), bool(drawn["result"].get("value"))


def test_runs_screen_renders_in_headless_chromium(served, browser, tmp_path):
    shot = tmp_path / "runs-in-chromium.png"
    frames, first_byte = asyncio.run(_visit(browser, served, shot))
    text = frames.decode("utf-8", "replace")
    assert "GPT Workbench" in text, "the app's first screen never reached the browser"
    assert PRETRAIN in text and "pretrain" in text, "the Runs table did not arrive"
    assert first_byte, "the page did not draw the terminal's first bytes"
    assert shot.stat().st_size > 10_000, f"the screenshot {shot} looks blank"
