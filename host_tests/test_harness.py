"""The end-to-end harness itself: a port that free_port() named but another
process took first moves the peer or the lab cloud to new ports, instead of
failing the test that started it; and the process runner that the tests
read every child's output with."""
import socket
import sys

import pytest

from tools.harness.cloud import Lab
from tools.harness.peer import Peer, config_of
from tools.harness.proc import LoggedProcess
from tools.labcloud import db as lab


@pytest.fixture
def held():
    """A port held by someone else, listening, for as long as the test runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("kind", ["wss", "ws"])
def test_a_peer_whose_port_is_taken_moves_to_new_ones(tmp_path, held, kind):
    # The plain listener is tried at start-up only with insecure access on.
    p = Peer(tmp_path / "p", switches={"insecure": True}, **{kind + "_port": held})
    try:
        p.start()
        assert p.cfg[kind + "_port"] != held
        assert {k: config_of(p.folder)[k] for k in ("wss_port", "ws_port")} == \
            {k: p.cfg[k] for k in ("wss_port", "ws_port")}
        with p.connect(secure=kind == "wss") as ws:
            assert p.login(ws)["error"] is None
    finally:
        p.stop()


def test_a_peer_that_must_keep_its_port_fails_the_test_instead(tmp_path, held):
    p = Peer(tmp_path / "p", wss_port=held)
    try:
        with pytest.raises(AssertionError, match="taken while it was down"):
            p.start(move_ports=False)
        assert p.cfg["wss_port"] == held
    finally:
        p.stop()


def test_a_lab_cloud_whose_port_is_taken_moves_and_its_folders_follow(tmp_path, held):
    cloud = Lab(tmp_path / "cloud")
    with lab.tx(cloud.db):  # as if free_port() had named the held port
        cloud.db.execute("UPDATE meta SET value = ? WHERE key = 'port'", (str(held),))
    uuid, folder = cloud.controller()
    assert config_of(folder)["cloud_url"] == "wss://127.0.0.1:%d/" % held
    try:
        cloud.start()
        assert cloud.port != held
        cloud.wait_log("listening on wss://127.0.0.1:%d/" % cloud.port)
        assert config_of(folder)["cloud_url"] == lab.cloud_url(cloud.db) == \
            "wss://127.0.0.1:%d/" % cloud.port
    finally:
        cloud.stop()


def test_a_logged_process_counts_lists_and_waits_on_its_lines():
    # What the tests read a child's output with, on a child of no concern
    # (this Python, not the firmware).
    p = LoggedProcess()
    p.spawn([sys.executable, "-c", "print('link up in 12 ms'); print('link down'); print('link up in 7 ms')"])
    try:
        assert p.wait_exit() == 0
        assert p.output == "link up in 12 ms\nlink down\nlink up in 7 ms"
        assert p.matching(r"link up in \d+") == ["link up in 12 ms", "link up in 7 ms"]
        assert p.count("link up", since=1) == 1 and p.count("nothing") == 0
        assert p.wait_log("link up", since=1) == "link up in 7 ms"
        assert p.wait_count("link", 3) == 3
        with pytest.raises(AssertionError, match="the process ended"):
            p.wait_log("never printed", timeout=5)
    finally:
        p.stop()
