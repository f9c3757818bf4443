"""The calculator (an AST walk, never eval) and the Python sandbox's limits, one test each."""

from __future__ import annotations

import pytest

from engines.errors import UserError
from engines.tools import Limits, calculate, calculator_tool, run_python


@pytest.mark.parametrize(
    ("expression", "value"),
    [("2 + 3 * 4", "14"), ("39,512,223 / 733,391", "53.8761"), ("2^10", "1024"),
     ("(7 - 10) * 3", "-9"), ("sqrt(16) + round(2.6)", "7"), ("1 / 4", "0.25")],
)  # fmt: skip
def test_calculator_values(expression, value):
    assert calculate(expression) == value


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').system('true')", "open('x')", "2 ** 100000", "1 / 0", "a + 1", "", "[1]"],
)
def test_calculator_refuses_anything_but_arithmetic(expression):
    with pytest.raises(UserError, match="calculator"):
        calculate(expression)
    assert calculator_tool(expression).observation().startswith("error: calculator")


def test_python_prints_its_output():
    result = run_python("print(sum(range(10)))")
    assert result.ok and result.output == "45"


def test_python_writes_inside_its_scratch_folder(tmp_path):
    result = run_python("open('a.txt', 'w').write('hi'); print(open('a.txt').read())")
    assert result.ok and result.output == "hi"


def test_endless_loop_is_stopped_by_the_cpu_limit():
    result = run_python("while True:\n    pass", Limits(cpu_s=1, wall_s=10))
    assert not result.ok and "CPU time limit" in result.output


def test_sleeping_snippet_is_stopped_by_the_wall_clock():
    result = run_python("import time\ntime.sleep(60)", Limits(wall_s=1))
    assert not result.ok and "time limit (1 s)" in result.output


def test_unbounded_allocation_is_stopped_by_the_memory_limit():
    result = run_python(
        "x = []\nwhile True:\n    x.append(bytearray(10**7))", Limits(memory_mb=256)
    )
    assert not result.ok and "memory limit" in result.output


def test_socket_is_refused():
    code = "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 9))"
    result = run_python(code)
    assert not result.ok and "sandbox: socket" in result.output


def test_write_outside_the_folder_is_refused(tmp_path):
    target = tmp_path / "escape.txt"
    result = run_python(f"open({str(target)!r}, 'w').write('x')")
    assert not result.ok and "outside the scratch folder" in result.output
    assert not target.exists()


def test_subprocess_is_refused():
    result = run_python("import subprocess\nsubprocess.run(['true'])")
    assert not result.ok and "not allowed" in result.output


def test_an_exception_becomes_an_error_observation():
    result = run_python("raise ValueError('bad input')")
    assert result.observation() == "error: ValueError: bad input"
