"""The data folder as the real firmware reads it at start-up: which
access.json (or its previous copy) it serves, and which certificate."""
import json
import ssl

import pytest

from tools import devdata
from tools.harness.peer import call, presented_cert, shared_cert


def cert_set(cert, key):
    return {"certificate": cert, "private": key, "public_parent": ""}


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_a_stored_key_that_is_not_its_certificates_is_skipped(make_peer, kind):
    # The first set's key belongs to another certificate: the firmware would
    # load it and then fail every handshake. The next set serves instead.
    users = {"u-1": ["token-1"]}
    good = shared_cert()
    mine, other = shared_cert("HUB-a", kind), shared_cert("HUB-b", kind)
    access = devdata.make_access(users, good)
    access["current"] = [cert_set(mine[0], other[1]), cert_set(good[0], good[1])]
    p = make_peer(users=users, access=access)
    p.wait_log(r"current\[0\]: certificate and private key do not match")
    assert presented_cert(p.cfg["wss_port"]) == ssl.PEM_cert_to_DER_cert(good[0])
    with p.connect() as ws:
        assert p.login(ws)["error"] is None
        assert call(ws, "hub.info.get")["error"] is None


def test_an_access_json_over_a_limit_falls_back_to_its_previous_copy(make_peer):
    # Like a corrupt one: refused whole (201 users, over the 200 the board
    # holds), so the previous copy serves.
    users = {"u-1": ["token-1"]}
    p = make_peer(users=users, start=False)
    with open(p.path("access.json")) as f:
        good = json.load(f)
    p.write("access.json.prev", good)
    p.write("access.json", dict(good, clients={"u-%d" % i: [] for i in range(201)}, version=2))
    p.start()
    assert p.wait_log("access.json refused: clients: more than 200 entries")
    p.wait_log("using its previous copy")
    with p.connect() as ws:
        assert p.login(ws)["error"] is None
