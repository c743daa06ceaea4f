"""The cloud link: the real firmware under MicroPython, the real lab cloud,
real TLS on both sides."""
import functools
import json
import os
import ssl
import socket

import pytest
from websockets.exceptions import ConnectionClosed

from host_tests import test_e2e_memory
from tools.harness.cloud import FakeCloud, Lab
from tools.harness.peer import call, configure, free_port, listen_ports, presented_cert
from tools.harness.wait import WAIT, assert_never, wait_until
from tools.labcloud import ca as lab_ca
from tools.labcloud import db as lab

BADPASS = "user.login.badpassword"


@pytest.fixture
def linked(cloud, run_folder):
    """A controller provisioned by the lab cloud, running, its link up."""
    uuid, folder = cloud.controller(sync_interval=3600)
    peer = run_folder(folder)
    peer.wait_log("cloud link up")
    return uuid, peer


def test_a_user_added_in_the_cloud_logs_in_without_a_restart(cloud, linked):
    uuid, peer = linked
    user, token = lab.add_user(cloud.db, uuid)
    assert wait_until(lambda: peer.login_error(user, token) is None)
    peer.wait_log("access data version 2 in force: 1 user")
    with open(peer.path("access.json")) as f:
        assert json.load(f)["version"] == 2  # persisted


def test_removing_a_user_closes_its_session_and_refuses_it(cloud, linked):
    uuid, peer = linked
    user, token = lab.add_user(cloud.db, uuid)
    other, other_token = lab.add_user(cloud.db, uuid)
    assert wait_until(lambda: peer.login_error(other, other_token) is None)
    with peer.connect() as gone, peer.connect() as stays:
        assert peer.login(gone, user, token)["error"] is None
        assert peer.login(stays, other, other_token)["error"] is None
        lab.remove_user(cloud.db, uuid, user)
        with pytest.raises(ConnectionClosed) as closed:
            gone.recv(timeout=WAIT)
        assert closed.value.rcvd.code == 1008
        assert call(stays, "hub.info.get")["error"] is None
    assert peer.login_error(user, token)["data"] == BADPASS


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_a_rotated_certificate_is_served_to_new_connections(cloud, linked, kind):
    uuid, peer = linked
    port = peer.cfg["wss_port"]
    before = presented_cert(port)
    with peer.connect() as kept:
        lab.rotate_cert(cloud.db, uuid, kind)
        peer.wait_log("access data version 2 in force")
        after = presented_cert(port)
        assert after != before
        pem = lab.access_data(cloud.db, uuid)["current"][0]["certificate"]
        assert after == ssl.PEM_cert_to_DER_cert(pem)
        assert call(kept, "hub.info.get")["error"] is None  # the listener stayed


def test_periodic_sync_finds_a_change_nobody_announced(cloud, run_folder, tmp_path):
    uuid, folder = cloud.controller(sync_interval=2)
    cloud.stop()
    cloud.start("--no-push")  # a cloud whose announcements are lost
    peer = run_folder(folder)
    peer.wait_log("cloud link up")
    user, token = lab.add_user(cloud.db, uuid)
    assert wait_until(lambda: peer.login_error(user, token) is None)
    assert cloud.count("push") == 0


def test_the_link_comes_back_after_the_cloud_restarts(cloud, linked):
    uuid, peer = linked
    cloud.stop()
    peer.wait_log("cloud link down")
    user, token = lab.add_user(cloud.db, uuid)  # made while the cloud is away
    cloud.start(move_port=False)  # the peer dials the port it knows
    # The link's backoff (1 s doubling, jittered) may be at 8 s by then.
    assert wait_until(lambda: peer.login_error(user, token) is None, timeout=WAIT + 10)


def test_a_cloud_certificate_from_another_ca_is_refused(cloud, run_folder, tmp_path):
    uuid, folder = cloud.controller()
    other = Lab(tmp_path / "other")
    with open(os.path.join(folder, "cloud-ca.pem"), "w") as f:
        f.write(lab.meta(other.db, "ca_cert"))
    with open(os.path.join(folder, "access.json"), "rb") as f:
        stored = f.read()
    lab.add_user(cloud.db, uuid)
    peer = run_folder(folder)
    line = peer.wait_log("cloud link down")
    assert "signed" in line or "certificate" in line.lower()
    assert peer.count("cloud link up|in force") == 0
    with open(os.path.join(folder, "access.json"), "rb") as f:
        assert f.read() == stored


def test_a_peer_booting_while_the_cloud_is_down_serves_its_stored_data(cloud, run_folder):
    uuid, _ = cloud.controller("first")
    user, token = lab.add_user(cloud.db, uuid)
    folder = os.path.join(cloud.folder, "second")
    lab.provision(cloud.db, uuid, folder, **listen_ports())
    cloud.stop()
    peer = run_folder(folder, {user: [token]})
    peer.wait_log("cloud link down")
    assert peer.login_error(user, token) is None


def sync_reply(req, result=None, error=None):
    return json.dumps({"id": req["id"], "method": req["method"], "error": error,
                       "result": result})


def changed(base, **change):
    data = dict(base)
    data.update(change)
    return data


# Not a certificate, though canonical base64 in a CERTIFICATE block.
JUNK_CERT = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n"

@functools.lru_cache(maxsize=None)
def foreign_pair(kind):
    """A certificate and a key of the same kind that do not belong together."""
    authority = lab_ca.make_ca(kind)
    return lab_ca.controller_cert(authority, "1", kind)[0], lab_ca.controller_cert(authority, "2", kind)[1]


def mismatched(base, kind):
    cert, key = foreign_pair(kind)
    return changed(base, current=[dict(base["current"][0], certificate=cert, private=key)], version=9)


# case: (reply to a sync given the valid data and the request, log line expected)
BAD_CLOUDS = {
    "malformed JSON": (lambda base, req: '{"id": "%s", "result": {' % req["id"],
                       "malformed JSON"),
    "wrong types": (lambda base, req: sync_reply(req, changed(base, clients=[], version=9)),
                    "clients: wrong type"),
    "a section missing": (lambda base, req: sync_reply(req, {
        k: v for k, v in changed(base, version=9).items() if k != "clients"}), "clients: missing"),
    "a certificate that does not load": (lambda base, req: sync_reply(req, changed(
        base, current=[dict(base["current"][0], certificate=JUNK_CERT)], version=9)),
        "no certificate set loads"),
    "an RSA key that is not the certificate's": (
        lambda base, req: sync_reply(req, mismatched(base, "rsa")), "do not match"),
    "an EC key that is not the certificate's": (
        lambda base, req: sync_reply(req, mismatched(base, "ec")), "do not match"),
    "a rollback": (lambda base, req: sync_reply(req, changed(base, version=0)), "rollback"),
    "an oversized message": (lambda base, req: sync_reply(req, changed(
        base, version=9, padding="x" * 40000)), "too big"),
    "an error reply": (lambda base, req: sync_reply(
        req, error={"code": -32500, "message": "Down", "data": "cloud.down"}), "cloud.down"),
    "a link dropped mid-sync": (lambda base, req: None, "cloud link down"),
}


@pytest.mark.parametrize("case", sorted(BAD_CLOUDS))
def test_bad_input_from_the_cloud_leaves_data_and_server_intact(cloud, run_folder, case):
    make, reason = BAD_CLOUDS[case]
    uuid, folder = cloud.controller()
    user, token = lab.add_user(cloud.db, uuid)
    lab.provision(cloud.db, uuid, folder, **listen_ports(), force=True)
    base = lab.access_data(cloud.db, uuid)
    fake = FakeCloud(cloud.db, lambda req: make(base, req))
    try:
        configure(folder, cloud_url=fake.url, cloud_backoff_max=1)
        with open(os.path.join(folder, "access.json"), "rb") as f:
            stored = f.read()
        peer = run_folder(folder)
        peer.wait_log(reason)
        assert wait_until(lambda: fake.syncs >= 2)  # retried later
        with open(os.path.join(folder, "access.json"), "rb") as f:
            assert f.read() == stored
        assert peer.login_error(user, token) is None
        assert peer.count("in force") == 0
    finally:
        fake.close()


@pytest.mark.parametrize("step,new", [
    ("tmp_written", False), ("prev_removed", False), ("current_moved", False), ("done", True),
])
def test_a_power_cut_while_persisting_leaves_the_old_or_the_new_data(cloud, run_folder, step, new):
    uuid, folder = cloud.controller()
    old_user, old_token = lab.add_user(cloud.db, uuid)
    lab.provision(cloud.db, uuid, folder, **listen_ports(), force=True)
    peer = run_folder(folder, env={"PEER_PAUSE_AT": step})
    peer.wait_log("cloud link up")
    new_user, new_token = lab.add_user(cloud.db, uuid)
    peer.wait_log("paused at " + step)
    peer.kill()
    cloud.stop()  # the restarted peer shows what it kept, nothing more
    peer.start()
    assert peer.login_error(old_user, old_token) is None  # never nothing
    new_served = peer.login_error(new_user, new_token) is None
    assert new_served is new  # whole versions only
    assert (peer.count("previous copy") > 0) is (step == "current_moved")


def open_fds(peer):
    return len(os.listdir("/proc/%d/fd" % peer.proc.pid))


@pytest.mark.parametrize("why", ["nobody listens", "another CA signed the cloud"])
def test_failed_connects_leave_no_socket_behind(cloud, run_folder, tmp_path, why):
    uuid, folder = cloud.controller(cloud_backoff_max=1)
    if why == "nobody listens":
        configure(folder, cloud_url="wss://127.0.0.1:%d/" % free_port())
    else:
        with open(os.path.join(folder, "cloud-ca.pem"), "w") as f:
            f.write(lab.meta(Lab(tmp_path / "other").db, "ca_cert"))
    peer = run_folder(folder)
    peer.wait_log("cloud link down")
    start = open_fds(peer)
    peer.wait_count("cloud link down", 4)  # three more attempts at a 1 s backoff
    assert open_fds(peer) <= start + 1


def test_a_cloud_that_fails_after_login_is_backed_off(cloud, run_folder):
    uuid, folder = cloud.controller()
    fake = FakeCloud(cloud.db, lambda req: None)  # drops every sync
    try:
        configure(folder, cloud_url=fake.url, cloud_backoff_max=2)
        run_folder(folder).wait_log("cloud link down")
        # 1 s, then 2 s at most (jittered down to half): 6 s hold 6 logins
        # at most, where a link redialling at once would make dozens; a
        # loaded machine only makes fewer.
        assert_never(lambda: fake.logins > 6, 6, "a reconnect storm")
        assert wait_until(lambda: fake.logins >= 2)  # and it keeps trying
    finally:
        fake.close()


def test_the_peer_keeps_a_quiet_cloud_link_alive_with_pings(cloud, run_folder):
    uuid, folder = cloud.controller()
    base = lab.access_data(cloud.db, uuid)
    fake = FakeCloud(cloud.db, lambda req: sync_reply(req, base))
    try:
        configure(folder, cloud_url=fake.url, idle_timeout=4)
        peer = run_folder(folder)
        peer.wait_log("cloud link up")
        # Unpinged, the link would be dropped as idle after 4 s and dialled
        # again: 10 s are two idle timeouts and a half (4 s leave a loaded
        # machine 2 s for the pong, not 1).
        assert_never(lambda: fake.logins > 1 or peer.count("cloud link down"), 10,
                     "the quiet link dropped")
    finally:
        fake.close()


def test_a_peer_without_a_certificate_opens_wss_when_a_sync_brings_one(cloud, run_folder):
    uuid, folder = cloud.controller()
    user, token = lab.add_user(cloud.db, uuid)
    with open(os.path.join(folder, "access.json"), "w") as f:
        json.dump({"clients": {}, "peers": {}, "current": [], "version": 0}, f)
    peer = run_folder(folder)
    peer.wait_log("no WSS listener")
    peer.wait_log("in force")
    assert wait_until(lambda: peer.login_error(user, token) is None)


def test_a_certificate_for_a_taken_wss_port_stops_the_peer(cloud, run_folder):
    holder = socket.socket()  # the WSS port, held by someone else
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        port = holder.getsockname()[1]
        uuid, folder = cloud.controller(wss_port=port)
        with open(os.path.join(folder, "access.json"), "w") as f:
            json.dump({"clients": {}, "peers": {}, "current": [], "version": 0}, f)
        peer = run_folder(folder)  # serves without WSS until a sync brings a certificate
        assert peer.wait_exit() == 3
        assert peer.lines[-1].endswith(" cannot listen for wss on 127.0.0.1:%d ([Errno 98]"
                                       " EADDRINUSE): stopping, exit status 3" % port)
    finally:
        holder.close()


def test_cloud_verify_off_links_to_any_certificate_and_says_so(cloud, run_folder, tmp_path):
    uuid, folder = cloud.controller(cloud_verify=False)
    with open(os.path.join(folder, "cloud-ca.pem"), "w") as f:  # the wrong CA, not even read
        f.write(lab.meta(Lab(tmp_path / "other").db, "ca_cert"))
    peer = run_folder(folder)
    peer.wait_log("WARNING: cloud_verify is false")
    peer.wait_log("cloud link up")
    user, token = lab.add_user(cloud.db, uuid)
    assert wait_until(lambda: peer.login_error(user, token) is None)


def test_a_cloud_ca_that_does_not_load_leaves_the_link_off_and_serves(cloud, run_folder):
    uuid, folder = cloud.controller()
    user, token = lab.add_user(cloud.db, uuid)
    lab.provision(cloud.db, uuid, folder, force=True, **listen_ports())
    with open(os.path.join(folder, "cloud-ca.pem"), "w") as f:
        f.write(JUNK_CERT)  # canonical base64 in a CERTIFICATE block, no certificate
    peer = run_folder(folder)
    assert peer.login_error(user, token) is None  # the local server serves
    (said,) = peer.matching("cloud CA")
    assert "cloud-ca.pem unusable" in said and "no cloud link" in said
    assert peer.proc.poll() is None
    assert peer.count("Traceback|(?<!no )cloud link") == 0
    assert not os.path.exists(os.path.join(os.path.dirname(folder), "crash.log"))


def test_access_data_replaced_by_a_sync_leaves_the_heap(cloud, run_folder):
    # The start-up's access data and TLS context must not stay pinned once
    # a sync has replaced them (they were: about 4.5 KB on the 64-bit host).
    uuid, folder = cloud.controller()
    with open(os.path.join(folder, "switches.json"), "w") as f:
        json.dump({"anonymous": True}, f)  # diagnostics without a login
    peer = run_folder(folder)
    peer.wait_log("cloud sync: version 1 is current")
    before = peer.heap_alloc()
    lab.rotate_cert(cloud.db, uuid)  # the same sizes again, nothing added
    peer.wait_log("access data version 2 in force")
    after = peer.heap_alloc()
    assert after - before < 1500, (before, after)


def test_a_user_over_the_token_limit_is_dropped_and_later_changes_still_apply(cloud, run_folder):
    # The cloud takes more tokens per user than this peer: that user alone
    # is left out, and a later revocation still gets through.
    uuid, folder = cloud.controller(max_tokens_per_user=2)
    gone, gone_token = lab.add_user(cloud.db, uuid)
    lab.provision(cloud.db, uuid, folder, force=True, **listen_ports())
    configure(folder, max_tokens_per_user=2)
    peer = run_folder(folder)
    peer.wait_log("cloud link up")
    with peer.connect() as session:
        assert peer.login(session, gone, gone_token)["error"] is None
        big = lab.add_user(cloud.db, uuid)[0]
        big_tokens = [lab.add_user(cloud.db, uuid, big)[1] for _ in range(2)]  # three in all
        line = peer.wait_log("in force")
        assert "dropped" not in line
        assert peer.wait_log(r"clients\[%s\]: more than 2 tokens, user dropped" % big)
        lab.remove_user(cloud.db, uuid, gone)
        with pytest.raises(ConnectionClosed) as closed:
            session.recv(timeout=10)
        assert closed.value.rcvd.code == 1008
    version = lab.versions(cloud.db)[uuid]
    peer.wait_log("access data version %d in force" % version)
    assert peer.login_error(gone, gone_token)["data"] == BADPASS
    assert peer.login_error(big, big_tokens[0])["data"] == BADPASS
    other, other_token = lab.add_user(cloud.db, uuid)
    assert wait_until(lambda: peer.login_error(other, other_token) is None)
    assert peer.count("data refused") == 0


def bad_users(count):
    return {"6a1c7d4e-0000-4000-8000-%012d" % i: ["zz" * 32] for i in range(count)}


# case: (the valid data changed so, one log line expected of the drop)
BAD_ENTRIES = {
    "a bad digest": (lambda base: {"clients": dict(base["clients"], **bad_users(1))},
                     "not a SHA-256 hex digest"),
    "an id that is not printable ASCII": (
        lambda base: {"clients": dict(base["clients"], **{"b\u00e4d": ["ab" * 32]})},
        "dropped an id that is not 1-64 printable ASCII chars"),
    "a peer that is not an object": (lambda base: {"peers": {"p-1": "nope"}},
                                     r"peers\[p-1\]: not an object, peer dropped"),
    "a certificate set that does not parse, before a good one": (
        lambda base: {"current": [dict(base["current"][0], certificate=JUNK_CERT)] + base["current"]},
        r"current\[0\]: certificate: not an X.509 certificate"),
    "thirty bad users": (lambda base: {"clients": dict(base["clients"], **bad_users(30))},
                         "44 more problem"),  # two problems each, 16 shown
}


@pytest.mark.parametrize("case", sorted(BAD_ENTRIES))
def test_bad_entries_from_the_cloud_are_dropped_and_the_rest_applied(cloud, run_folder, case):
    make, dropped = BAD_ENTRIES[case]
    uuid, folder = cloud.controller()
    user, token = lab.add_user(cloud.db, uuid)
    base = lab.access_data(cloud.db, uuid)
    fake = FakeCloud(cloud.db, lambda req: sync_reply(req, changed(base, version=9, **make(base))))
    try:
        configure(folder, cloud_url=fake.url)
        peer = run_folder(folder, {user: [token]})
        peer.wait_log(dropped)
        peer.wait_log("access data version 9 in force")
        assert peer.login_error(user, token) is None
        with open(os.path.join(folder, "access.json")) as f:
            assert json.load(f)["version"] == 9  # persisted
        assert peer.count("cloud data version 9: ") <= 17
        assert peer.count("data refused") == 0
    finally:
        fake.close()


def test_a_corrupt_access_json_never_becomes_the_previous_copy(cloud, run_folder):
    uuid, folder = cloud.controller()
    user, token = lab.add_user(cloud.db, uuid)
    lab.provision(cloud.db, uuid, folder, force=True, **listen_ports())
    path = os.path.join(folder, "access.json")
    os.replace(path, path + ".prev")  # the good copy
    with open(path, "w") as f:
        f.write('{"clients": {')  # cut short
    with open(path + ".prev", "rb") as f:
        good = f.read()
    peer = run_folder(folder, {user: [token]})
    peer.wait_log("using its previous copy")
    lab.add_user(cloud.db, uuid)
    peer.wait_log("access data version 3 in force")
    with open(path + ".prev", "rb") as f:
        assert f.read() == good
    with open(path) as f:
        assert json.load(f)["version"] == 3


def test_the_synced_access_json_is_owner_only(cloud, run_folder):
    # It holds the TLS private key; provisioning wrote it 0600.
    uuid, folder = cloud.controller()
    path = os.path.join(folder, "access.json")
    assert os.stat(path).st_mode & 0o777 == 0o600
    old = os.umask(0o022)  # what the firmware would create files with
    try:
        peer = run_folder(folder, env={"PEER_PAUSE_AT": "tmp_written"})
    finally:
        os.umask(old)
    peer.wait_log("cloud link up")
    lab.add_user(cloud.db, uuid)
    peer.wait_log("paused at tmp_written")
    assert os.stat(path + ".tmp").st_mode & 0o777 == 0o600  # before the key is in it
    peer.kill()
    old = os.umask(0o022)
    try:
        peer.start()
    finally:
        os.umask(old)
    peer.wait_log("access data version 2 in force")
    for name in (path, path + ".prev"):
        assert os.stat(name).st_mode & 0o777 == 0o600, name


def test_after_a_sync_the_parsers_are_gone_again(cloud, run_folder):
    uuid, folder = cloud.controller(sync_interval=3600)
    peer = run_folder(folder)
    peer.wait_log("cloud link up")
    mark = peer.mark()
    user, token = lab.add_user(cloud.db, uuid)  # the cloud announces it, the peer syncs
    peer.wait_log(r"access data version \d+ in force", since=mark)
    held = peer.resident_modules(user, token)
    assert held == test_e2e_memory.SERVING | {"shell.cloud", "shell.link", "core.wsclient"}, held
