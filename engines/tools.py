"""Tools a ReAct loop may call: a safe calculator and a sandboxed Python runner.

    calculate("39,512,223 / 733,391")        # '53.876…' (an AST walk, never eval)
    run_python("print(sum(range(10)))")      # ToolResult(ok=True, output='45')

`run_python` runs the snippet in a separate interpreter: isolated mode (-I -B), its own
scratch folder as working directory, CPU-time, address-space and file-size limits
(resource.setrlimit), a wall-clock timeout, no network (its own network namespace when
`unshare -n` works here, and in any case an audit hook that refuses sockets, subprocesses and
ctypes) and no writes outside the scratch folder (the same audit hook on open/rename/remove).
A snippet that breaks a rule is stopped; the caller gets `ok=False` and the reason, never an
exception, so a ReAct run goes on with an error observation.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engines.errors import UserError

MAX_OUTPUT = 2000


@dataclass(frozen=True)
class ToolResult:
    """What a tool said: its output, or the error that stopped it (ok=False)."""

    ok: bool
    output: str

    def observation(self) -> str:
        return self.output if self.ok else f"error: {self.output}"


# ---------------------------------------------------------------- calculator

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {
    "sqrt": math.sqrt,
    "log": math.log,
    "exp": math.exp,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
MAX_EXPONENT = 1000
MAX_EXPRESSION = 500


def _clean(expression: str) -> str:
    text = expression.strip().strip("`").strip()
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 39,512,223 -> 39512223
    return text.replace("^", "**").replace("×", "*").replace("÷", "/").rstrip("=").strip()


def _eval(node: ast.AST) -> float | int:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ValueError(f"exponent {right} is too large (at most {MAX_EXPONENT})")
        return _BINARY[type(node.op)](left, right)
    if _is_function_call(node):
        return _FUNCTIONS[node.func.id](*[_eval(a) for a in node.args])
    raise ValueError(f"unsupported expression: {ast.unparse(node)!r}")


def _is_function_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    )


def format_number(value: float) -> str:
    """Integers as integers, other values with up to 6 significant decimals."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def calculate(expression: str) -> str:
    """The value of an arithmetic expression (+ - * / // % **, sqrt, log, round…); UserError
    for anything else. Thousands separators and ^ (power) are accepted."""
    text = _clean(expression)
    if not text or len(text) > MAX_EXPRESSION:
        raise UserError(f"calculator: give an expression of 1 to {MAX_EXPRESSION} characters")
    try:
        return format_number(_eval(ast.parse(text, mode="eval")))
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError, OverflowError) as exc:
        raise UserError(f"calculator: {exc}") from None


def calculator_tool(expression: str) -> ToolResult:
    try:
        return ToolResult(True, calculate(expression))
    except UserError as exc:
        return ToolResult(False, str(exc))


# ---------------------------------------------------------------- sandboxed python

_BOOTSTRAP = r"""
import os, resource, sys
SCRATCH = os.path.realpath(sys.argv[1])
CPU_S, MEMORY, FILE_SIZE = (int(a) for a in sys.argv[2:5])
resource.setrlimit(resource.RLIMIT_CPU, (CPU_S, CPU_S + 1))
resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE, FILE_SIZE))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
BLOCKED = ("socket.", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.fork",
           "os.forkpty", "os.spawn", "pty.spawn", "ctypes.", "os.kill", "signal.pthread_kill")
WRITES = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "shutil.rmtree", "os.chmod",
          "os.symlink", "os.link", "os.truncate", "os.chown", "os.utime", "os.replace"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def inside(path):
    if isinstance(path, int):
        return True
    real = os.path.realpath(os.fsdecode(path))
    return real == SCRATCH or real.startswith(SCRATCH + os.sep)

def hook(event, args):
    if event.startswith(BLOCKED):
        raise PermissionError(f"sandbox: {event} is not allowed (no network, no processes)")
    if event == "open":
        path, mode, flags = args
        writing = any(c in (mode or "") for c in "wax+") or bool((flags or 0) & WRITE_FLAGS)
        if writing and path is not None and not inside(path):
            raise PermissionError(f"sandbox: writing {os.fsdecode(path)} is outside the scratch folder")
    elif event in WRITES:
        for arg in args:
            if isinstance(arg, (str, bytes, os.PathLike)) and not inside(arg):
                raise PermissionError(f"sandbox: {event} on {os.fsdecode(arg)} is outside the scratch folder")

source = open(os.path.join(SCRATCH, "snippet.py"), encoding="utf-8").read()
os.chdir(SCRATCH)
sys.addaudithook(hook)
del hook
exec(compile(source, "snippet.py", "exec"), {"__name__": "__main__"})
"""


@dataclass(frozen=True)
class Limits:
    """How long and how much a snippet may use."""

    wall_s: float = 10.0
    cpu_s: int = 5
    memory_mb: int = 512
    file_mb: int = 16


@functools.cache
def _network_namespace() -> list[str]:
    """['unshare', '-n'] (or '-rn') when this machine lets us make a network namespace."""
    exe = shutil.which("unshare")
    if exe is None:
        return []
    for prefix in ([exe, "-n"], [exe, "-rn"]):
        try:
            probe = subprocess.run([*prefix, "true"], check=False, capture_output=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return prefix
    return []


def _limit_args(limits: Limits) -> list[str]:
    mb = 1024 * 1024
    return [str(limits.cpu_s), str(limits.memory_mb * mb), str(limits.file_mb * mb)]


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_OUTPUT else text[:MAX_OUTPUT] + "\n…(output cut)"


def _why_stopped(code: int, stderr: str, limits: Limits) -> str:
    if code in (-signal.SIGXCPU, -signal.SIGKILL) and not stderr.strip():
        return f"stopped: CPU time limit ({limits.cpu_s} s) reached"
    if "MemoryError" in stderr:
        return f"stopped: memory limit ({limits.memory_mb} MB) reached"
    last = [line for line in stderr.strip().splitlines() if line.strip()]
    return last[-1] if last else f"exited with code {code}"


def run_python(code: str, limits: Limits = Limits(), scratch: Path | None = None) -> ToolResult:
    """Run a snippet in the sandbox; its stdout (ok) or why it failed (not ok)."""
    folder = Path(tempfile.mkdtemp(prefix="wb-python-")) if scratch is None else scratch
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "snippet.py").write_text(code, encoding="utf-8")
    cmd = [
        *_network_namespace(),
        sys.executable,
        "-I",
        "-B",
        "-c",
        _BOOTSTRAP,
        str(folder),
        *_limit_args(limits),
    ]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
    try:
        proc = subprocess.Popen(
            cmd, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            out, err = proc.communicate(timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return ToolResult(False, f"stopped: time limit ({limits.wall_s:g} s) reached")
    finally:
        if scratch is None:
            shutil.rmtree(folder, ignore_errors=True)
    if proc.returncode != 0:
        return ToolResult(False, _clip(_why_stopped(proc.returncode, err, limits)))
    return ToolResult(True, _clip(out) or "(no output)")
