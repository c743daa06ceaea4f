"""The type check of `make lint` really checks the firmware against the
ESP32's MicroPython: a misused board API fails it, and the right one passes."""
import os
import sys

import pytest

from tools.harness.proc import run

MYPY = os.path.join(os.path.dirname(sys.executable), "mypy")


def check(tmp_path, code):
    path = tmp_path / "board_use.py"
    path.write_text(code)
    return run([MYPY, "--config-file", "mypy.ini", "--no-incremental", path], timeout=120)


@pytest.mark.parametrize("code, finding", [
    ("import machine\nmachine.WDT(timeot=5000)\n", 'Unexpected keyword argument "timeot"'),
    ("import network\nnetwork.WLAN(network.STA_IF).conect('ssid', 'pw')\n", 'has no attribute "conect"'),
    ("import esp32\nesp32.no_such_call()\n", 'has no attribute "no_such_call"'),
    ("import time\ntime.ticks_ms(5)\n", "Too many arguments"),
])
def test_a_misused_board_api_fails_the_check(tmp_path, code, finding):
    done = check(tmp_path, code)
    assert done.returncode == 1 and finding in done.stdout, done.stdout + done.stderr


def test_the_board_apis_the_firmware_uses_pass(tmp_path):
    code = ("import machine, network, ntptime, time\n"
            "wdt = machine.WDT(timeout=30000)\nwdt.feed()\n"
            "network.hostname('HUB70010042')\n"
            "network.WLAN(network.STA_IF).connect('ssid', 'pw')\n"
            "ntptime.settime()\ntime.ticks_diff(time.ticks_ms(), 0)\n")
    done = check(tmp_path, code)
    assert done.returncode == 0, done.stdout + done.stderr
