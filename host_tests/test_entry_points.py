"""boot.py and main.py, the board's entry points, under the host MicroPython.

The host has no Wi-Fi, watchdog or reset: the board seam's host fallbacks
skip Wi-Fi with a log line, and a crash exits with status 1 after writing
crash.log beside the data folder. The board's side runs too, against
stand-ins for the ESP32's `network` and `machine` modules that print what
the firmware asks of them.
"""
import json
import os
import shutil
import signal
import time

import pytest

from tools.harness.peer import MICROPYTHON, PEER_ROOT, Peer
from tools.harness.proc import run
from tools.harness.wait import SLACK, wait_until
from tools.labcloud import db as lab

LOG_MAX = 4096  # firmware.seam.crashlog.LOG_MAX
PASSWORD = "hunter2-wifi-secret"


# The ESP32's modules, as far as the firmware uses them. STUB_CONNECT_AFTER:
# how many polls after connect() the link comes up (-1: never).
NETWORK = """
import os
STA_IF, STAT_IDLE, STAT_CONNECTING = 0, 1000, 1001
_polls = [None]

def hostname(name):
    print("stub: hostname", name)

class WLAN:
    def __init__(self, interface):
        pass
    def active(self, on):
        pass
    def status(self):
        return STAT_IDLE if _polls[0] is None else STAT_CONNECTING
    def connect(self, ssid, password):
        ok = password == os.getenv("STUB_PASSWORD")
        print("stub: connect", ssid, "password right" if ok else "password wrong")
        _polls[0] = int(os.getenv("STUB_CONNECT_AFTER"))
    def isconnected(self):
        if _polls[0] is not None and _polls[0] > 0:
            _polls[0] -= 1
        return _polls[0] == 0
    def ifconfig(self):
        return ("192.168.1.50", "255.255.255.0", "192.168.1.1", "192.168.1.1")
"""
MACHINE = """
import sys

def unique_id():
    return b"\\x24\\x6f\\x28\\x01\\x02\\x03"

class WDT:
    def __init__(self, timeout):
        print("stub: WDT timeout", timeout)
    def feed(self):
        print("stub: WDT feed")

def reset():
    print("stub: reset")
    sys.exit(1)
"""


def board_env(tmp_path, connect_after=2):
    """Environment that puts the stand-ins before the host's own modules."""
    stubs = tmp_path / "esp32"
    stubs.mkdir(exist_ok=True)
    (stubs / "network.py").write_text(NETWORK)
    (stubs / "machine.py").write_text(MACHINE)
    return {"MICROPYPATH": "%s:.frozen" % stubs, "STUB_PASSWORD": PASSWORD,
            "STUB_CONNECT_AFTER": str(connect_after)}


def run_boot(folder, code=None, timeout=20, env=None):
    """Runs the real boot.py (or code after it) as the board would, before
    main.py; returns (exit status, output, seconds)."""
    if code is None:
        args = [MICROPYTHON, "boot.py", "--data", str(folder)]
    else:
        args = [MICROPYTHON, "-c", "exec(open('boot.py').read())\n" + code, "--data", str(folder)]
    t0 = time.monotonic()
    done = run(args, timeout, env)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - t0


def with_config(tmp_path, **cfg):
    peer = Peer(tmp_path / "data", **cfg)  # writes config.json and access.json
    return peer.folder


def test_boot_without_wifi_finishes_at_once_and_quietly(tmp_path):
    status, out, took = run_boot(with_config(tmp_path))
    assert status == 0 and out == ""
    assert took < 5


def test_boot_with_wifi_skips_it_on_the_host_without_the_password(tmp_path):
    folder = with_config(tmp_path, wifi={"ssid": "lab-net", "password": PASSWORD})
    status, out, took = run_boot(folder)
    assert status == 0 and took < 5
    assert "wifi: this port has no Wi-Fi; skipped" in out
    assert PASSWORD not in out


@pytest.mark.parametrize("config, reason", [
    (None, "cannot read"),
    ("{not json", "not valid JSON"),
    ('{"hub": "h", "serial": "1", "wifi": {"ssid": 5, "password": "%s"}}' % PASSWORD, "'wifi.ssid'"),
    ('{"hub": "h", "serial": "1", "wifi": "lab"}', "'wifi' must be an object"),
])
def test_boot_with_a_bad_config_logs_and_still_succeeds(tmp_path, config, reason):
    # MicroPython may skip main.py after a boot.py that failed.
    folder = tmp_path / "data"
    folder.mkdir()
    if config is not None:
        (folder / "config.json").write_text(config)
    status, out, took = run_boot(folder)
    assert status == 0 and took < 5
    assert reason in out and "no network set-up" in out
    assert PASSWORD not in out


def test_boot_code_leaves_the_heap(tmp_path):
    folder = with_config(tmp_path, wifi={"ssid": "lab-net", "password": PASSWORD})
    status, out, _ = run_boot(folder, "import sys, firmware\n"
                                      "print('loaded', sorted(sys.modules))\n"
                                      "print('attrs', hasattr(firmware, 'netup'), hasattr(firmware, 'config'))")
    assert status == 0, out
    loaded = [line for line in out.splitlines() if line.startswith("loaded")][0]
    assert "firmware.seam.board" in loaded
    assert "firmware.seam.netup" not in loaded and "firmware.flash.config" not in loaded
    assert "attrs False False" in out


def test_board_boot_sets_the_host_name_then_joins(tmp_path):
    folder = with_config(tmp_path, wifi={"ssid": "lab-net", "password": PASSWORD})
    status, out, took = run_boot(folder, env=board_env(tmp_path))
    assert status == 0 and took < 5, out
    lines = out.splitlines()
    hostname = lines.index("stub: hostname HUB70010042")
    assert lines[hostname + 1] == "stub: connect lab-net password right"
    assert "wifi: joining 'lab-net' as HUB70010042.local (MAC 24:6f:28:01:02:03)" in out
    assert "wifi: connected, address 192.168.1.50" in out
    assert PASSWORD not in out


def test_board_boot_waits_8_s_at_most_for_wifi(tmp_path):
    # The same boot without Wi-Fi: the interpreter's start and exit, as
    # slow as the machine is now.
    _, _, baseline = run_boot(Peer(tmp_path / "plain").folder, env=board_env(tmp_path))
    folder = with_config(tmp_path, wifi={"ssid": "lab-net", "password": PASSWORD})
    status, out, took = run_boot(folder, env=board_env(tmp_path, connect_after=-1))
    assert status == 0, out
    assert 8 <= took < 8 + 2 * baseline + SLACK
    assert "wifi: not connected yet; retrying in the background" in out


def test_board_boot_without_wifi_leaves_the_network_alone(tmp_path):
    status, out, _ = run_boot(with_config(tmp_path), env=board_env(tmp_path))
    assert status == 0 and "stub:" not in out


def test_board_watchdog_is_fed_and_set_to_a_day_on_ctrl_c(tmp_path):
    peer = Peer(tmp_path / "data")
    try:
        peer.start(env=board_env(tmp_path))
        peer.wait_log("stub: WDT timeout 30000")
        peer.wait_log("stub: WDT feed")  # by the event loop, every 5 s
        peer.proc.send_signal(signal.SIGINT)
        assert peer.wait_exit() == 0
        peer.wait_log("stub: WDT timeout 86400000")  # the REPL keeps the board
        out = peer.output
        assert out.index("stopped") < out.index("stub: WDT timeout 86400000")
        assert "stub: reset" not in out
    finally:
        peer.stop()


def test_board_crash_resets_through_the_chip(tmp_path):
    peer = Peer.existing(with_config(tmp_path))
    peer.start(env=dict(board_env(tmp_path), PEER_CRASH_AT="serving"))
    assert peer.wait_exit(30) == 1
    peer.wait_log("stub: reset")
    out = peer.output
    assert out.index("crash logged") < out.index("stub: reset")
    assert b"crash test at serving" in (tmp_path / "crash.log").read_bytes()


def crash(folder, timeout=30):
    """Starts main.py with a crash once it serves; returns (status, output, seconds)."""
    peer = Peer.existing(folder)
    t0 = time.monotonic()
    peer.start(ready="ready", env={"PEER_CRASH_AT": "serving"})
    status = peer.wait_exit(timeout)
    peer.wait_log("resetting in")
    return status, peer.output, time.monotonic() - t0


def entries(log):
    return [e for e in log.split(b"=== ") if e]


def test_a_crash_is_logged_beside_the_data_folder_then_resets(tmp_path):
    folder = with_config(tmp_path)
    status, out, took = crash(folder)
    assert status == 1  # the host's reset
    assert took >= 2  # the pause before the reset
    assert "RuntimeError: crash test at serving" in out  # on the console too
    log = (tmp_path / "crash.log").read_bytes()
    assert log.startswith(b"=== ") and len(entries(log)) == 1
    head, _, trace = log.decode().partition("\n")
    assert head.endswith(" s") and ", up " in head and "Z" in head  # time, uptime
    assert trace.startswith("Traceback (most recent call last):")
    assert trace.rstrip().endswith("RuntimeError: crash test at serving")
    assert "pause_point" in trace


def test_crashes_add_up_and_the_log_stays_bounded(tmp_path):
    folder = with_config(tmp_path)
    path = tmp_path / "crash.log"
    crash(folder)
    crash(folder)
    log = path.read_bytes()
    assert len(entries(log)) == 2 and entries(log)[0] != entries(log)[1]  # times differ
    one = b"=== " + entries(log)[1]
    # many more crashes' worth: the oldest entries make room, whole ones go
    path.write_bytes(one * 40)
    crash(folder)
    log = path.read_bytes()
    assert len(log) <= LOG_MAX
    assert log.startswith(b"=== ")
    kept = entries(log)
    assert all(b"\nRuntimeError: crash test at serving\n" in e for e in kept)
    assert len(log) > LOG_MAX - 2 * len(one)  # the room is used
    assert kept[-1] != kept[0]  # the newest is the new crash's, with its own time


def test_a_huge_or_garbled_log_is_cut_to_the_bound(tmp_path):
    folder = with_config(tmp_path)
    path = tmp_path / "crash.log"
    path.write_bytes(os.urandom(1 << 20))
    status, _, _ = crash(folder)
    assert status == 1
    log = path.read_bytes()
    assert len(log) <= LOG_MAX and log.startswith(b"=== ")
    assert entries(log)[-1].rstrip().endswith(b"RuntimeError: crash test at serving")


def test_ctrl_c_is_no_crash(tmp_path):
    peer = Peer(tmp_path / "data").start()
    assert peer.stop() == 0
    assert peer.wait_log("stopped")
    assert not (tmp_path / "crash.log").exists()


def test_a_config_error_is_no_crash(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"hub": "h", "serial": "1", "wifi": []}))
    done = run([MICROPYTHON, os.path.join(PEER_ROOT, "main.py"), "--data", folder], timeout=30)
    assert done.returncode == 2
    assert "config.json: 'wifi' must be an object" in done.stdout
    assert not (tmp_path / "crash.log").exists()


def test_a_taken_wss_port_stops_the_peer_with_status_3_and_no_crash(tmp_path):
    first = Peer(tmp_path / "first").start()
    port = first.cfg["wss_port"]
    second = Peer(tmp_path / "second", wss_port=port)
    try:
        # The board's side: a stop with a reason is no crash to reset from.
        second.start(ready=None, env=board_env(tmp_path))
        assert second.wait_exit() == 3
        (line,) = second.matching("cannot listen")
        assert line.endswith(" cannot listen for wss on 127.0.0.1:%d ([Errno 98] EADDRINUSE):"
                             " stopping, exit status 3" % port)
        out = second.output
        assert "ready" not in out and "Traceback" not in out and "stub: reset" not in out
        assert not (tmp_path / "crash.log").exists()
        with first.connect() as ws:  # the first serves on
            assert first.login(ws)["error"] is None
    finally:
        second.stop()
        first.stop()


def test_a_second_copy_of_a_peer_stops_before_it_reaches_the_cloud(cloud, run_folder, tmp_path):
    uuid, folder = cloud.controller()
    first = run_folder(folder)
    first.wait_log("cloud link up")
    copy = shutil.copytree(folder, tmp_path / "copy")
    second = Peer.existing(copy)
    try:
        assert second.start(ready=None).wait_exit() == 3
    finally:
        second.stop()
    assert second.count("ready|cloud") == 0, second.output
    # The first keeps the cloud: a user added now reaches it through its link.
    user, token = lab.add_user(cloud.db, uuid)
    wait_until(lambda: first.login_error(user, token) is None, what="the new user served by the first copy")
    assert (cloud.count("login ok"), cloud.count("replaced")) == (1, 0), cloud.lines  # the first's
