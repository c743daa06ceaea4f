"""How an unexpected exception reaches the log: under the real MicroPython,
its type and where it was raised, never its message."""
from tools.harness.peer import MICROPYTHON
from tools.harness.proc import run

SCRIPT = """
from firmware.seam import faults

def inner(token):
    raise ValueError("token was " + token)

def outer():
    inner("s3cret-token")

try:
    outer()
except Exception as e:
    print(faults.describe(e))
"""


def test_a_fault_is_told_by_type_and_place_without_its_message():
    out = run([MICROPYTHON, "-c", SCRIPT], timeout=30)
    line = out.stdout.strip()
    assert out.returncode == 0, out.stderr
    assert line.startswith("ValueError at "), line
    assert "<stdin>:" in line or "<string>:" in line, line
    assert line.count(":") >= 2  # outer's frame and inner's, each file:line
    assert "s3cret" not in line and "token was" not in line
