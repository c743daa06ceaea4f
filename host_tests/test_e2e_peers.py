"""Controller-to-controller links: two real peers under MicroPython,
provisioned and linked by the real lab cloud, real TLS everywhere; and
controllers of our own making (websockets servers) where a test needs the
other end to misbehave."""
import json
import re
import signal
import time

import pytest

from tools.harness import soak
from tools.harness.cloud import BACKOFF_MAX, FakeController, Pair
from tools.harness.peer import call
from tools.harness.proc import run_module
from tools.harness.wait import SLACK, WAIT, assert_never, wait_until
from tools.labcloud import ca as lab_ca
from tools.labcloud import db as lab

BADPASS = "user.login.badpassword"


def serial_of(cloud, uuid):
    return lab.resolve(cloud.db, uuid)[1]


def peer_tokens(cloud, uuid, other):
    return lab.access_data(cloud.db, uuid)["peers"][other]["tokens"]


@pytest.fixture
def pair(cloud, run_folder):
    p = Pair(cloud, run_folder)
    for proc in p.peers.values():
        proc.wait_log("link up in")
    return p


def links(ws):
    return call(ws, "hub.peer.links.list")["result"]["links"]


def via(ws, peer, method, params=None):
    req = {"peer": peer, "method": method}
    if params is not None:
        req["params"] = params
    return call(ws, "hub.peer.call", req)


def test_each_links_to_the_other_and_calls_through_the_link_come_back(cloud, pair):
    a, b = pair.a, pair.b
    with pair.user_session(a) as ws:
        seen = {(e["direction"], e["state"]) for e in links(ws)}
        assert seen == {("out", "logged in"), ("in", "logged in")}
        assert {e["peer"] for e in links(ws)} == {b}
        assert {e["serial"] for e in links(ws)} == {serial_of(cloud, b)}
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["since"]) for e in links(ws))
        reply = via(ws, b, "hub.info.get")
        assert reply["error"] is None and reply["method"] == "hub.peer.call"
        assert reply["result"]["uuid"] == b
        assert reply["result"]["serial"] == serial_of(cloud, b)
        assert "kernel" in reply["result"]  # the full answer: we are logged in there
        # The other side's inventory, through the link.
        assert via(ws, b, "hub.devices.list")["result"] == {"devices": []}
    with pair.user_session(b) as ws:  # and the other way round
        assert via(ws, a, "hub.info.get")["result"]["uuid"] == a


def test_the_peer_answers_as_to_a_controller_and_its_errors_come_back(pair):
    a, b = pair.a, pair.b
    with pair.user_session(a) as ws:
        refused = via(ws, b, "hub.offline.insecure_access.enabled.set", {"enabled": True})
        assert refused["result"] is None
        assert refused["error"]["data"] == "hub.method.notallowed"
        assert via(ws, b, "hub.no.such.method")["error"]["data"] == "rpc.method.notfound"
        assert via(ws, b, "hub.peer.links.list")["error"]["data"] == "hub.method.notallowed"
        assert via(ws, "not-a-peer", "hub.info.get")["error"]["data"] == "hub.peer.notlinked"
        missing = call(ws, "hub.peer.call", {"method": "hub.info.get"})["error"]
        assert missing["data"] == "rpc.params.notfound"
    with pair.user_session(b) as ws:
        assert call(ws, "hub.info.get")["result"]["offlineInsecureAccess"] is False


def test_peer_tokens_log_in_as_a_controller_and_wrong_ones_are_refused(cloud, pair):
    a, b = pair.a, pair.b
    p = pair.peers[b]
    with p.connect() as ws:
        wrong = call(ws, "hub.offline.login.hub", {"hub": a, "token": "not-the-token"})
        assert wrong["error"]["data"] == BADPASS
        # A user token is no controller token, and a controller no user.
        user, token = pair.users[b]
        assert call(ws, "hub.offline.login.hub", {"hub": user, "token": token})["error"]["data"] == BADPASS
        right = peer_tokens(cloud, b, a)[1]
        assert call(ws, "hub.offline.login.ui", {"user": a, "token": right})["error"]["data"] == BADPASS
        assert call(ws, "hub.offline.login.hub", {"hub": a, "token": right})["error"] is None
        # The controller role: information yes, settings and links no.
        assert call(ws, "hub.info.get")["result"]["uuid"] == b
        assert call(ws, "hub.diagnostics.get")["error"] is None
        assert call(ws, "hub.items.list")["result"] == {"items": []}
        for method, params in (("hub.offline.anonymous_access.enabled.set", {"enabled": True}),
                               ("hub.peer.links.list", None),
                               ("hub.peer.call", {"peer": a, "method": "hub.info.get"})):
            assert call(ws, method, params)["error"]["data"] == "hub.method.notallowed"


def test_anonymous_callers_cannot_use_the_links(pair):
    a, b = pair.a, pair.b
    p = pair.peers[a]
    with pair.user_session(a) as ws:
        assert call(ws, "hub.offline.anonymous_access.enabled.set", {"enabled": True})["error"] is None
    with p.connect() as ws:  # no login
        assert call(ws, "hub.info.get")["error"] is None  # anonymous access works...
        assert via(ws, b, "hub.info.get")["error"]["data"] == "user.login.required"  # ...not for links
        assert call(ws, "hub.peer.links.list")["error"]["data"] == "user.login.required"


def session_of(p, hub):
    """The name of the connection controller HUB is logged in with at p
    (the latest, should there have been more)."""
    pattern = r"\S+ logged in as hub %s$" % hub
    p.wait_log(pattern)
    return p.matching(pattern)[-1].split()[1]


def test_unlinking_drops_both_links_and_refuses_further_logins(cloud, pair):
    a, b = pair.a, pair.b
    old = peer_tokens(cloud, b, a)
    ups = {u: pair.peers[u].count("link up in") for u in (a, b)}
    sessions = {a: session_of(pair.peers[a], b), b: session_of(pair.peers[b], a)}
    lab.unlink(cloud.db, a, b)
    for uuid in (a, b):
        p = pair.peers[uuid]
        p.wait_log("link closed: access data changed")
        # The other's session into this one ends: revoked here if this peer
        # applies the change first, lost if the other closes its link first.
        # Both orders are right; any other end is not.
        end = p.wait_log(re.escape(sessions[uuid]) + " (?!connected$|logged in )")
        assert re.search(r" (access revoked|connection lost)$", end), end
    with pair.user_session(a) as ws:
        assert links(ws) == []
        assert via(ws, b, "hub.info.get")["error"]["data"] == "hub.peer.notlinked"
    with pair.peers[b].connect() as ws:
        for token in old:
            assert call(ws, "hub.offline.login.hub", {"hub": a, "token": token})["error"]["data"] == BADPASS
    # No link comes back: one would be redialled within the backoff cap.
    assert_never(lambda: [u for u in ups if pair.peers[u].count("link up in") > ups[u]],
                 BACKOFF_MAX + 1, "a link came back")


def test_a_new_link_in_the_cloud_comes_up_without_a_restart(cloud, run_folder):
    # Two links into b and our user: one more than the default two.
    pair = Pair(cloud, run_folder, max_connections=3)
    b = pair.b
    for p in pair.peers.values():
        p.wait_log("link up in")
    c = lab.add_controller(cloud.db)[0]
    url_b = "wss://127.0.0.1:%d/" % pair.config(b)["wss_port"]
    third = pair.run_folder(cloud.provision(c, "c", peer_backoff_max=BACKOFF_MAX,
                                            peer_urls={b: url_b}))
    lab.link(cloud.db, c, b)
    third.wait_log("link up in", BACKOFF_MAX + WAIT)
    with pair.user_session(b) as ws:
        # b holds one link (max_peer_links 1): c is listed, not dialled,
        # and c's own link into b is there.
        out = {e["peer"]: e["state"] for e in links(ws) if e["direction"] == "out"}
        assert out == {pair.a: "logged in", c: "not linked (max_peer_links)"}
        came_in = {e["peer"] for e in links(ws) if e["direction"] == "in"}
        assert came_in == {pair.a, c}


def test_a_killed_peer_is_relinked_within_the_backoff_bound(pair):
    a, b = pair.a, pair.b
    pa = pair.peers[a]
    since = pa.mark()
    pair.peers[b].kill()
    pa.wait_log("link down", since=since)  # noticed at once: the socket closed
    pair.peers[b] = pair.start(b, move_ports=False)  # a dials its port
    started = time.monotonic()
    line = pa.wait_log(r"link up in \d+ ms", BACKOFF_MAX + WAIT, since=since)
    waited = time.monotonic() - started
    # The redial comes within the backoff cap; the rest is the set-up
    # (connect, TLS, login), which the link logs, and the machine's slack.
    setup = int(re.search(r"link up in (\d+) ms", line).group(1)) / 1000
    assert waited - setup < BACKOFF_MAX + SLACK, (waited, setup)
    with pair.user_session(a) as ws:
        assert via(ws, b, "hub.info.get")["result"]["uuid"] == b


def test_a_peer_that_stops_answering_is_noticed_within_the_idle_timeout(cloud, run_folder):
    pair = Pair(cloud, run_folder, idle_timeout=4, ping_interval=1)
    pa, pb = pair.peers[pair.a], pair.peers[pair.b]
    pa.wait_log("link up in")
    pb.wait_log("link up in")
    mark = pa.mark()
    pb.proc.send_signal(signal.SIGSTOP)  # alive to TCP, silent to the link
    try:
        started = time.monotonic()
        pa.wait_log("link down: silent for 4 s", 4 + 2 * SLACK, since=mark)
        assert time.monotonic() - started < 4 + SLACK
    finally:
        pb.proc.send_signal(signal.SIGCONT)
    pa.wait_count("link up in", 1, timeout=BACKOFF_MAX + WAIT, since=mark)


def one_peer_dialling(cloud, run_folder, fake_for, **cfg):
    """Controller a linked with b in the lab; a dials the controller that
    fake_for(b, serial, tokens) makes. Returns (a's process, b, the fake)."""
    a, b = (lab.add_controller(cloud.db)[0] for _ in range(2))
    lab.link(cloud.db, a, b)
    fake = fake_for(b, serial_of(cloud, b), peer_tokens(cloud, a, b))
    folder = cloud.provision(a, "a", peer_backoff_max=BACKOFF_MAX, peer_urls={b: fake.url}, **cfg)
    return run_folder(folder), b, fake


def test_the_other_side_calls_our_methods_over_the_link_we_opened(cloud, run_folder):
    script = [("hub.info.get", {}),
              ("hub.offline.anonymous_access.enabled.set", {"enabled": True}),
              ("hub.offline.login.hub", {"hub": "x", "token": "y"})]
    ca = lab.ca_pair(cloud.db)
    made = []

    def fake_for(b, serial, tokens):
        # The first token fails; before any answer to a login, a request
        # that must wait for our login to be taken.
        made.append(FakeController(ca, serial, tokens[1:], script, early=[("hub.info.get", {})]))
        return made[0]

    pa, b, fake = one_peer_dialling(cloud, run_folder, fake_for)
    try:
        pa.wait_log("link up in")
        logins = [m for m in fake.received if m.get("method") == "hub.offline.login.hub"]
        assert len(logins) == 2  # the next token after a bad password
        earlies = fake.answers(2, prefix="early")  # one before each login's answer
        assert [e["error"]["data"] for e in earlies] == ["user.login.required"] * 2
        info, switch, login = fake.answers(3)
        assert info["error"] is None and info["result"]["uuid"] == pa.cfg["hub"]
        assert "kernel" in info["result"]
        assert switch["error"]["data"] == "hub.method.notallowed"
        assert login["error"]["data"] == "user.login.alreadylogged"
    finally:
        fake.close()


def test_a_peer_certificate_from_another_ca_is_refused_before_any_token(cloud, run_folder):
    stranger = lab_ca.make_ca(cn="another CA")

    def fake_for(b, serial, tokens):
        return FakeController(stranger, serial, tokens)

    pa, b, fake = one_peer_dialling(cloud, run_folder, fake_for)
    try:
        line = pa.wait_log("link down")
        assert "verif" in line.lower() or "certificate" in line.lower()
        pa.wait_count("link down", 2, timeout=BACKOFF_MAX + WAIT)  # it keeps trying, backing off
        assert fake.received == []  # no upgrade, no login, no token
        assert pa.count("link up in") == 0
    finally:
        fake.close()


def test_a_peer_certificate_for_another_host_is_refused_before_any_token(cloud, run_folder):
    ca = lab.ca_pair(cloud.db)

    def fake_for(b, serial, tokens):  # the right CA, but not the address dialled
        return FakeController(ca, serial, tokens, names=["HUB%s.local" % serial])

    pa, b, fake = one_peer_dialling(cloud, run_folder, fake_for)
    try:
        pa.wait_count("link down", 2, timeout=BACKOFF_MAX + WAIT)
        assert "does not match" in pa.wait_log("link down"), pa.lines  # the name, not the CA
        assert fake.received == []
        assert pa.count("link up in") == 0
    finally:
        fake.close()


def test_a_peer_refusing_every_token_is_backed_off(cloud, run_folder):
    ca = lab.ca_pair(cloud.db)

    def fake_for(b, serial, tokens):
        return FakeController(ca, serial, [])

    pa, b, fake = one_peer_dialling(cloud, run_folder, fake_for)
    try:
        pa.wait_log("link down: login refused: none of 2 token")
        # Backing off (1 s doubling to BACKOFF_MAX, jittered down to half):
        # at most 1 + 6 / 0.5 sessions of 2 logins in 6 s, where a link that
        # redialled at once would make dozens; and it keeps trying.
        before = len(fake.received)
        assert_never(lambda: len(fake.received) - before > 26, 6, "a redial storm")
        assert wait_until(lambda: len(fake.received) - before >= 4)
        user = user_login(cloud, pa)
        with pa.connect() as ws:
            assert pa.login(ws, *user)["error"] is None
            (entry,) = links(ws)
            assert entry["peer"] == b and entry["direction"] == "out"
            assert entry["state"] in ("backing off", "connecting")
            assert "login refused" in entry["error"]
    finally:
        fake.close()


def test_the_cli_drives_one_controller_through_another(cloud, pair, tmp_path):
    a, b = pair.a, pair.b
    ca = tmp_path / "lab-ca.pem"
    ca.write_text(lab.ca_pair(cloud.db)[0])
    user, token = pair.users[a]
    base = [pair.peers[a].url(), "--cafile", ca, "--user", user, "--token=" + token, "--via-peer", b]
    ok = run_module("tools.ezlo_cli", *base, "hub.info.get", timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["result"]["uuid"] == b
    refused = run_module("tools.ezlo_cli", *base, "hub.offline.anonymous_access.enabled.set", '{"enabled": true}',
                         timeout=30)
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"]["data"] == "hub.method.notallowed"


def user_login(cloud, p):
    """A new user of p's controller, in force there: (user, token)."""
    user = lab.add_user(cloud.db, p.cfg["hub"])
    p.wait_log("version %d in force" % lab.versions(cloud.db)[p.cfg["hub"]])
    return user


def send_via(ws, peer, rid):
    ws.send(json.dumps({"id": rid, "method": "hub.peer.call",
                        "params": {"peer": peer, "method": "hub.info.get"}}))


def test_calls_a_peer_leaves_unanswered_time_out_and_at_most_two_wait(cloud, run_folder):
    ca = lab.ca_pair(cloud.db)
    pa, b, fake = one_peer_dialling(cloud, run_folder, lambda b, s, t: FakeController(ca, s, t),
                                    write_timeout=2, max_connections=4)
    try:
        pa.wait_log("link up in")
        user = user_login(cloud, pa)
        with pa.connect() as w1, pa.connect() as w2, pa.connect() as w3:
            for ws in (w1, w2, w3):
                assert pa.login(ws, *user)["error"] is None
            def forwarded():
                return [m for m in fake.received if m.get("method") == "hub.info.get"]

            started = time.monotonic()
            send_via(w1, b, "one")
            send_via(w2, b, "two")
            wait_until(lambda: len(forwarded()) == 2, what="both in flight on the link")
            assert via(w3, b, "hub.info.get")["error"]["data"] == "hub.peer.busy"
            for ws, rid in ((w1, "one"), (w2, "two")):
                reply = json.loads(ws.recv(timeout=2 + 2 * SLACK))
                assert reply["id"] == rid and reply["error"]["data"] == "hub.peer.timeout"
            assert 2 <= time.monotonic() - started < 2 + SLACK  # write_timeout bounds the wait
            assert len(forwarded()) == 2  # the third never left this peer
    finally:
        fake.close()


def test_a_call_whose_link_drops_fails_at_once(cloud, run_folder):
    ca = lab.ca_pair(cloud.db)
    pa, b, fake = one_peer_dialling(cloud, run_folder,
                                    lambda b, s, t: FakeController(ca, s, t, hangup=True))
    try:
        pa.wait_log("link up in")
        user = user_login(cloud, pa)
        with pa.connect() as ws:
            assert pa.login(ws, *user)["error"] is None
            started = time.monotonic()
            assert via(ws, b, "hub.info.get")["error"]["data"] == "hub.peer.notlinked"
            assert time.monotonic() - started < 10 / 2  # not the 10 s write_timeout
        pa.wait_log("link down: closed by the other side")
    finally:
        fake.close()


def test_calls_through_links_lose_nothing_under_fast_pings(cloud, run_folder):
    # Each peer's user keeps 2 calls (FORWARDS) in flight through the link to
    # the other, while both ping every second and drop a link silent for 3 s.
    pair = Pair(cloud, run_folder, ping_interval=1, idle_timeout=3)
    for proc in pair.peers.values():
        proc.wait_log("link up in")
    marks = {u: proc.mark() for u, proc in pair.peers.items()}
    calls = soak.scaled(300)
    sessions = []
    for me, other in ((pair.a, pair.b), (pair.b, pair.a)):
        params = {"peer": other, "method": "hub.info.get"}
        sessions.append(soak.session(pair.peers[me].url(), pair.users[me], calls, 2, 10,
                                     method="hub.peer.call", params=params,
                                     name="via-%s" % me[:8]))
    for t in soak.run(*sessions):
        print(t)
        assert t.answered == calls
    for u, proc in pair.peers.items():  # no link was lost meanwhile
        assert proc.count("link down", since=marks[u]) == 0, proc.output
