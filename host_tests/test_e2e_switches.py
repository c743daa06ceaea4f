"""The anonymous and insecure access switches: persisted, effective at once."""
import os
import socket

import pytest
from websockets.exceptions import ConnectionClosed

from tools.harness.peer import RawClient, call

REQUIRED = {"code": -32500, "message": "Login required", "data": "user.login.required"}


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_setters_need_a_login(peer):
    with peer.connect() as ws:
        for method in ("hub.offline.anonymous_access.set",
                       "hub.offline.anonymous_access.enabled.set",
                       "hub.offline.insecure_access.enabled.set"):
            assert call(ws, method, {"enabled": True})["error"] == REQUIRED
        assert call(ws, "hub.devices.list")["error"] == REQUIRED
    assert not os.path.exists(peer.path("switches.json"))  # nothing was written


@pytest.mark.parametrize("method", ["hub.offline.anonymous_access.set",
                                    "hub.offline.anonymous_access.enabled.set"])
def test_anonymous_access_takes_effect_and_persists(peer, method):
    with peer.connect() as admin, peer.connect() as anon:
        assert call(anon, "hub.modes.get")["error"] == REQUIRED
        peer.login(admin)
        reply = call(admin, method, {"Enabled": True}, rid="set-1")
        assert reply == {"id": "set-1", "method": method, "error": None, "result": {}}
        reply = call(anon, "hub.modes.get")
        assert reply["error"] is None and reply["result"]["modes"]
        assert call(anon, "hub.info.get")["result"]["offlineAnonymousAccess"] is True
    peer.restart()
    with peer.connect() as anon:
        assert call(anon, "hub.devices.list")["error"] is None
        # anonymous callers may switch it off again, and it takes effect at once
        assert call(anon, method, {"enabled": False})["error"] is None
        assert call(anon, "hub.devices.list")["error"] == REQUIRED
    peer.restart()
    with peer.connect() as anon:
        assert call(anon, "hub.info.get")["result"]["offlineAnonymousAccess"] is False


def test_enabled_must_be_a_bool(peer):
    with peer.connect() as ws:
        peer.login(ws)
        reply = call(ws, "hub.offline.insecure_access.enabled.set", {"enabled": 1})
        assert reply["error"] == {"code": -32602, "message": "Wrong params", "data": "rpc.params.invalid"}
        reply = call(ws, "hub.offline.insecure_access.enabled.set", {})
        assert reply["error"]["data"] == "rpc.params.notfound"
    assert refused(peer.cfg["ws_port"])


def test_plain_listener_follows_insecure_access(peer):
    plain = peer.cfg["ws_port"]
    assert refused(plain)
    with peer.connect() as ws:
        peer.login(ws)
        assert call(ws, "hub.offline.insecure_access.enabled.set", {"enabled": True})["error"] is None
        assert call(ws, "hub.info.get")["result"]["offlineInsecureAccess"] is True
        with peer.connect(secure=False) as pws:
            assert peer.login(pws)["error"] is None
        raw = RawClient(plain, tls=False).handshake()
        assert call(ws, "hub.offline.insecure_access.enabled.set", {"enabled": False})["error"] is None
        # the open plain connection is closed with "going away", the port is gone
        assert raw.close_code() == 1001
        assert refused(plain)
        assert call(ws, "hub.info.get")["result"]["offlineInsecureAccess"] is False


def test_insecure_access_persists_across_restart(peer):
    with peer.connect() as ws:
        peer.login(ws)
        call(ws, "hub.offline.insecure_access.enabled.set", {"enabled": True})
    peer.restart()
    with peer.connect(secure=False) as pws:
        assert peer.login(pws)["error"] is None
        # switching it off over the plain link answers first, then closes that link
        reply = call(pws, "hub.offline.insecure_access.enabled.set", {"enabled": False})
        assert reply["error"] is None
        with pytest.raises(ConnectionClosed) as closed:
            pws.recv(timeout=10)
        assert closed.value.rcvd.code == 1008
    peer.restart()
    assert refused(peer.cfg["ws_port"])


@pytest.mark.parametrize("content", ["{broken", "[]", "x" * 5000, ""])
def test_corrupt_switch_file_means_both_off(make_peer, content):
    p = make_peer(switches=content)
    p.wait_log("anonymous and insecure access off")
    assert refused(p.cfg["ws_port"])
    with p.connect() as ws:
        assert call(ws, "hub.devices.list")["error"] == REQUIRED


def test_a_switch_that_cannot_be_saved_stays_off(peer):
    os.mkdir(peer.path("switches.json.tmp"))  # the write's temporary file cannot be made
    with peer.connect() as ws:
        peer.login(ws)
        reply = call(ws, "hub.offline.anonymous_access.set", {"enabled": True})
        assert reply["error"] == {"code": -32500, "message": "Setting not saved",
                                  "data": "hub.storage.failed"}
        info = call(ws, "hub.info.get")["result"]
        assert info["offlineAnonymousAccess"] is False
    with peer.connect() as anon:
        assert call(anon, "hub.devices.list")["error"] == REQUIRED


def test_a_taken_plain_port_is_logged_and_the_peer_serves_on(make_peer):
    holder = socket.socket()  # the plain port, held by someone else
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    p = make_peer(ws_port=port)
    try:
        with p.connect() as ws:
            p.login(ws)
            assert call(ws, "hub.offline.insecure_access.enabled.set", {"enabled": True})["error"] is None
            line = p.wait_log("cannot listen for ws")  # tried after the reply
            assert line.endswith(" cannot listen for ws on 127.0.0.1:%d ([Errno 98] EADDRINUSE):"
                                 " insecure access stays on without a plain listener" % port)
            assert call(ws, "hub.info.get")["result"]["offlineInsecureAccess"] is True
        assert p.proc.poll() is None
        with p.connect() as ws:  # WSS serves on
            assert p.login(ws)["error"] is None
    finally:
        holder.close()
    # The port free again: switching off and on opens the listener.
    with p.connect() as ws:
        p.login(ws)
        for on in (False, True):
            assert call(ws, "hub.offline.insecure_access.enabled.set", {"enabled": on})["error"] is None
        p.wait_log("listening ws 127.0.0.1:%d" % port)
        with p.connect(secure=False) as pws:
            assert p.login(pws)["error"] is None
