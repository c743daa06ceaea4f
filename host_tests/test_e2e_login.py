"""Logins and the envelope, on the wire, against the firmware under MicroPython."""
import json
import uuid

from tools.harness.peer import call

NOTFOUND = {"code": -32600, "message": "Bad request", "data": "rpc.params.notfound"}
INVALID = {"code": -32602, "message": "Wrong params", "data": "rpc.params.invalid"}
BADPASS = {"code": -32500, "message": "Bad password", "data": "user.login.badpassword"}
ALREADY = {"code": -32500, "message": "Already logged in", "data": "user.login.alreadylogged"}
REQUIRED = {"code": -32500, "message": "Login required", "data": "user.login.required"}


def test_login_ui_succeeds_and_echoes_id_and_method(peer):
    user, token = peer.user
    with peer.connect() as ws:
        reply = call(ws, "hub.offline.login.ui", {"user": user, "token": token}, rid="0.61673")
        assert reply == {"id": "0.61673", "method": "hub.offline.login.ui",
                         "error": None, "result": {}}
        assert call(ws, "hub.devices.list")["result"] == {"devices": []}


def test_wrong_token_and_unknown_user_both_get_bad_password(peer):
    user, _ = peer.user
    with peer.connect() as ws:
        wrong = call(ws, "hub.offline.login.ui", {"user": user, "token": "nope"})
        unknown = call(ws, "hub.offline.login.ui", {"user": str(uuid.uuid4()), "token": "nope"})
    assert wrong["error"] == BADPASS and wrong["result"] is None
    assert unknown["error"] == BADPASS


def test_no_secret_in_the_log(peer):
    user, token = peer.user
    with peer.connect() as ws:
        peer.login(ws)
        call(ws, "hub.offline.login.ui", {"user": user, "token": "guess-123"})
    peer.stop()
    log = peer.output
    assert user in log  # the identity is logged, the secrets never are
    assert token not in log and "guess-123" not in log


def test_second_login_on_same_connection_is_already_logged(peer):
    with peer.connect() as ws:
        assert peer.login(ws)["error"] is None
        assert peer.login(ws)["error"] == ALREADY


def test_every_token_of_a_user_works(make_peer):
    user = str(uuid.uuid4())
    p = make_peer(users={user: ["first-token", "second-token"]})
    for token in ("first-token", "second-token"):
        with p.connect() as ws:
            assert p.login(ws, user, token)["error"] is None


def test_param_names_match_case_insensitively(peer):
    user, token = peer.user
    with peer.connect() as ws:
        reply = call(ws, "hub.offline.login.ui", {"User": user, "Token": token})
        assert reply["error"] is None


def test_missing_and_wrong_type_params(peer):
    user, token = peer.user
    with peer.connect() as ws:
        assert call(ws, "hub.offline.login.ui", {"user": user})["error"] == NOTFOUND
        assert call(ws, "hub.offline.login.ui", None)["error"] == NOTFOUND
        assert call(ws, "hub.offline.login.ui", {"user": 5, "token": token})["error"] == INVALID
        assert call(ws, "hub.offline.login.ui", {"user": user, "token": "x" * 300})["error"] == INVALID
        assert call(ws, "hub.offline.login.ui", [user, token])["error"] == INVALID
        # the connection is intact and the right login still works
        assert peer.login(ws)["error"] is None


def test_sessions_are_bound_to_one_connection(peer):
    with peer.connect() as a, peer.connect() as b:
        assert peer.login(a)["error"] is None
        assert call(a, "hub.items.list")["result"] == {"items": []}
        reply = call(b, "hub.items.list")
        assert reply["error"] == REQUIRED and reply["result"] is None
        # before login hub.info.get answers the public subset only
        info = call(b, "hub.info.get")["result"]
        assert set(info) == {"serial", "uuid", "model", "firmware",
                             "offlineAnonymousAccess", "offlineInsecureAccess"}
        full = call(a, "hub.info.get")["result"]
        for key in ("architecture", "hardware", "kernel", "uptime", "localtime", "freeMemory"):
            assert key in full
        assert full["hardware"] == "unix port" and full["kernel"].startswith("MicroPython 1.")
        assert isinstance(full["freeMemory"], int) and full["freeMemory"] > 0
        assert full["serial"] == "70010042" and isinstance(full["serial"], str)
        assert full["uuid"] == peer.cfg["hub"]
        assert full["offlineAnonymousAccess"] is False


def test_login_hub_against_peer_tokens(make_peer):
    other = str(uuid.uuid4())
    # max_peer_links 0: logins from peers only; the link code stays unloaded.
    p = make_peer(peers={other: ("70010111", ["peer-key-1", "peer-key-2"])}, max_peer_links=0)
    with p.connect() as ws:
        assert call(ws, "hub.offline.login.hub", {"hub": other, "token": "bad"})["error"] == BADPASS
        assert call(ws, "hub.offline.login.hub", {"hub": other, "token": "peer-key-2"})["error"] is None
        assert call(ws, "hub.offline.login.hub", {"hub": other, "token": "peer-key-2"})["error"] == ALREADY
        assert call(ws, "hub.room.list")["result"] == []
    with p.connect() as ws:
        # a user token is no controller token
        user, token = p.user
        assert call(ws, "hub.offline.login.hub", {"hub": user, "token": token})["error"] == BADPASS
        # No link code loaded: the links method lists nothing.
        assert p.login(ws)["error"] is None
        assert call(ws, "hub.peer.links.list")["result"] == {"links": []}


def test_envelope_errors_keep_the_connection(peer):
    with peer.connect() as ws:
        ws.send("{not json")
        assert json.loads(ws.recv(timeout=10)) == {
            "id": None, "method": None, "result": None,
            "error": {"code": -32700, "message": "Parse error", "data": "rpc.parse.error"}}
        ws.send("[1, 2]")
        assert json.loads(ws.recv(timeout=10))["error"]["code"] == -32600
        unknown = call(ws, "hub.no.such.method", {}, rid=7)
        assert unknown["id"] == 7 and unknown["method"] == "hub.no.such.method"
        assert unknown["error"] == {"code": -32601, "message": "Method not found",
                                    "data": "rpc.method.notfound"}
        ws.send(json.dumps({"method": "hub.info.get"}))
        assert json.loads(ws.recv(timeout=10))["id"] is None
        assert peer.login(ws)["error"] is None
