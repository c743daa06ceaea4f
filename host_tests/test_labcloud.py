"""The lab cloud (tools.labcloud): its database and CLI in-process, and its
WSS endpoint run as `serve` in a child process, reached over TLS verified
against the lab CA, as a provisioned controller reaches it."""
import glob
import json
import os
import re
import ssl
import stat
import sys
import uuid as uuidlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tools import labcloud
from tools.devdata import sha256_hex
from tools.harness.peer import Peer, call, config_of, free_port, listen_ports
from tools.harness.proc import LoggedProcess, run_module
from tools.harness.wait import SLACK
from tools.labcloud import cli
from tools.labcloud.server import POLL_S

PUSH = "hub.offline.credentials.updated"
SYNC = "cloud.access_keys_controller_sync"
LOGIN = "cloud.controller.login"
BADPASS = {"code": -32500, "message": "Bad password", "data": "user.login.badpassword"}


def cert(pem):
    return x509.load_pem_x509_certificate(pem.encode())


def sans(c):
    ext = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(map(str, ext.get_values_for_type(x509.DNSName) + ext.get_values_for_type(x509.IPAddress)))


def ca_of(db):
    return cert(labcloud.db.meta(db, "ca_cert"))


def db_bytes(path):
    """The database file and its WAL: where anything stored could be."""
    out = b""
    for name in glob.glob(str(path) + "*"):
        with open(name, "rb") as f:
            out += f.read()
    return out


def run(capsys, db_path, *args):
    """The CLI in-process: (exit status, stdout, stderr)."""
    status = cli.main([str(db_path)] + [str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def run_process(db_path, *args):
    return run_module("tools.labcloud", db_path, *args, timeout=30)


@pytest.fixture
def lab(tmp_path):
    """An initialised database (ECDSA: fast) and its path."""
    path = tmp_path / "cloud.db"
    db = labcloud.init(str(path), kind="ec")
    yield db, path
    db.close()


# ---------------------------------------------------------------- database and CLI


@pytest.mark.parametrize("kind, host", [("rsa", "127.0.0.1"), ("ec", "cloud.lab")])
def test_init_makes_a_ca_and_a_server_certificate_that_verify(tmp_path, kind, host):
    db = labcloud.init(str(tmp_path / "c.db"), host=host, kind=kind)
    ca, server = ca_of(db), cert(labcloud.db.meta(db, "server_cert"))
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    server.verify_directly_issued_by(ca)
    assert sans(server) == {host, "localhost", "127.0.0.1"}
    expected = rsa.RSAPublicKey if kind == "rsa" else ec.EllipticCurvePublicKey
    assert isinstance(ca.public_key(), expected) and isinstance(server.public_key(), expected)
    assert stat.S_IMODE(os.stat(tmp_path / "c.db").st_mode) == 0o600


def test_init_refuses_an_existing_file(capsys, lab):
    _, path = lab
    before = db_bytes(path)
    status, out, err = run(capsys, path, "init")
    assert status == 1 and out == ""
    assert err == "error: %s already exists; init makes a new database only\n" % path
    assert db_bytes(path) == before


def test_a_controller_gets_its_own_certificate_set(lab):
    db, _ = lab
    hub = str(uuidlib.uuid4())
    assert labcloud.add_controller(db, uuid=hub, serial="70010042") == (hub, "70010042")
    data = labcloud.access_data(db, "70010042")  # by serial or uuid
    assert data == labcloud.access_data(db, hub)
    assert (data["clients"], data["peers"], data["version"]) == ({}, {}, 1)
    [entry] = data["current"]
    c = cert(entry["certificate"])
    c.verify_directly_issued_by(ca_of(db))
    assert entry["public_parent"] == labcloud.db.meta(db, "ca_cert")
    assert c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "HUB70010042"
    assert sans(c) == {"HUB70010042.local", "localhost", "127.0.0.1"}
    eku = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    key = serialization.load_pem_private_key(entry["private"].encode(), None)
    assert entry["private"].startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert key.public_key().public_numbers() == c.public_key().public_numbers()


def test_add_and_remove_controller(capsys, lab):
    db, path = lab
    status, out, _ = run(capsys, path, "add-controller")
    assert status == 0
    hub, serial = re.fullmatch(r"Added controller (\S+), serial (\d{8}) \(version 1\)\.\n", out).groups()
    assert str(uuidlib.UUID(hub)) == hub
    assert [row[:2] for row in labcloud.summary(db)] == [(hub, serial)]
    with pytest.raises(labcloud.LabCloudError, match="exists"):
        labcloud.add_controller(db, serial=serial, kind="ec")
    assert run(capsys, path, "remove-controller", serial)[:2] == (
        0, "Removed controller %s with its users and links.\n" % hub)
    assert labcloud.summary(db) == []
    with pytest.raises(labcloud.LabCloudError, match="unknown controller"):
        labcloud.access_data(db, hub)


def test_add_user_prints_the_token_once_and_stores_only_its_digest(capsys, lab):
    db, path = lab
    hub, _ = labcloud.add_controller(db, kind="ec")
    status, out, _ = run(capsys, path, "add-user", hub)
    assert status == 0
    user, token = re.search(r"User (\S+) .*\nToken, shown only now .*: (\S+)\n", out).groups()
    assert out.count(token) == 1
    again, token2 = labcloud.add_user(db, hub, user=user)  # the same user, one more token
    other, token3 = labcloud.add_user(db, hub)
    assert again == user and other != user
    assert labcloud.access_data(db, hub)["clients"] == {user: [sha256_hex(token), sha256_hex(token2)],
                                                        other: [sha256_hex(token3)]}
    stored = db_bytes(path)
    for t in (token, token2, token3):
        assert t.encode() not in stored
    labcloud.remove_user(db, hub, user)
    assert labcloud.access_data(db, hub)["clients"] == {other: [sha256_hex(token3)]}
    with pytest.raises(labcloud.LabCloudError, match="has no user"):
        labcloud.remove_user(db, hub, user)


def test_version_bumps_on_every_change_and_not_on_reads(lab, tmp_path):
    db, _ = lab
    a, _ = labcloud.add_controller(db, kind="ec")
    b, _ = labcloud.add_controller(db, kind="ec")
    c, _ = labcloud.add_controller(db, kind="ec")
    seen = []

    def step(change):
        change()
        seen.append((labcloud.versions(db)[a], labcloud.versions(db)[b]))

    step(lambda: labcloud.add_user(db, a))
    user, _ = labcloud.add_user(db, a)
    step(lambda: labcloud.add_user(db, a, user=user))
    step(lambda: labcloud.remove_user(db, a, user))
    step(lambda: labcloud.rotate_cert(db, a, kind="ec"))
    step(lambda: labcloud.link(db, a, b))
    step(lambda: labcloud.unlink(db, a, b))
    step(lambda: labcloud.link(db, b, c))
    step(lambda: labcloud.remove_controller(db, c))  # b loses a peer
    step(lambda: (labcloud.access_data(db, a), labcloud.summary(db), labcloud.detail(db, a),
                  labcloud.provision(db, a, str(tmp_path / "d"))))
    assert seen == [(2, 1), (4, 1), (5, 1), (6, 1), (7, 2), (8, 3), (8, 4), (8, 5), (8, 5)]


def test_link_and_unlink_are_symmetric(capsys, lab):
    db, path = lab
    a, sa = labcloud.add_controller(db, kind="ec")
    b, sb = labcloud.add_controller(db, kind="ec")
    assert run(capsys, path, "link", sa, b)[0] == 0
    pa, pb = labcloud.access_data(db, a)["peers"], labcloud.access_data(db, b)["peers"]
    assert list(pa) == [b] and list(pb) == [a]
    assert (pa[b]["id"], pb[a]["id"]) == (sb, sa)
    tokens = pa[b]["tokens"]
    assert pb[a]["tokens"] == tokens and len(set(tokens)) == 2  # one per direction, both sides
    status, _, err = run(capsys, path, "link", b, a)
    assert (status, err) == (1, "error: %s and %s are already linked\n" % tuple(sorted((a, b))))
    assert run(capsys, path, "unlink", b, a)[0] == 0
    assert labcloud.access_data(db, a)["peers"] == {} == labcloud.access_data(db, b)["peers"]
    with pytest.raises(labcloud.LabCloudError, match="not linked"):
        labcloud.unlink(db, a, b)
    with pytest.raises(labcloud.LabCloudError, match="itself"):
        labcloud.link(db, a, sa)


def test_rotate_cert_replaces_the_set_and_still_verifies(capsys, lab):
    db, path = lab
    hub, serial = labcloud.add_controller(db, kind="ec")
    before = labcloud.access_data(db, hub)["current"][0]
    status, out, _ = run(capsys, path, "rotate-cert", serial)
    assert status == 0 and "RSA-2048" in out and "(version 2)" in out
    after = labcloud.access_data(db, hub)["current"][0]
    assert after["certificate"] != before["certificate"] and after["private"] != before["private"]
    c = cert(after["certificate"])
    c.verify_directly_issued_by(ca_of(db))
    assert isinstance(c.public_key(), rsa.RSAPublicKey)
    assert sans(c) == {"HUB%s.local" % serial, "localhost", "127.0.0.1"}
    labcloud.rotate_cert(db, hub, kind="ec")
    assert isinstance(cert(labcloud.access_data(db, hub)["current"][0]["certificate"]).public_key(),
                      ec.EllipticCurvePublicKey)


def test_provision_writes_a_private_data_folder(capsys, lab, tmp_path):
    db, path = lab
    hub, serial = labcloud.add_controller(db, kind="ec")
    labcloud.add_user(db, hub)
    folder = tmp_path / "data"
    status, out, _ = run(capsys, path, "provision", serial, folder, "--wss-port", 18000,
                         "--ws-port", 18001)
    assert status == 0
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert sorted(os.listdir(folder)) == ["access.json", "cloud-ca.pem", "config.json"]
    for name in os.listdir(folder):
        assert stat.S_IMODE(os.stat(folder / name).st_mode) == 0o600
    cfg = config_of(folder)
    secret = cfg.pop("cloud_token")
    assert cfg == {"hub": hub, "serial": serial, "host": "127.0.0.1", "wss_port": 18000,
                   "ws_port": 18001, "cloud_url": "wss://127.0.0.1:17443/", "cloud_ca": "cloud-ca.pem"}
    assert secret not in out and secret.encode() not in db_bytes(path)
    assert labcloud.check_secret(db, hub, secret) and not labcloud.check_secret(db, hub, secret + "x")
    assert json.loads((folder / "access.json").read_text()) == labcloud.access_data(db, hub)
    assert (folder / "cloud-ca.pem").read_text() == labcloud.db.meta(db, "ca_cert")

    status, _, err = run(capsys, path, "provision", hub, folder)
    assert status == 1 and "use --force" in err
    assert config_of(folder)["cloud_token"] == secret
    assert run(capsys, path, "provision", hub, folder, "--force")[0] == 0
    renewed = config_of(folder)["cloud_token"]
    assert renewed != secret and labcloud.check_secret(db, hub, renewed)
    assert not labcloud.check_secret(db, hub, secret)  # the previous secret is gone


def test_provision_peer_url_tells_the_controller_where_its_peers_listen(capsys, lab, tmp_path):
    db, path = lab
    hub, _ = labcloud.add_controller(db)
    other, other_serial = labcloud.add_controller(db)
    folder = tmp_path / "data"
    status, _, _ = run(capsys, path, "provision", hub, folder,
                       "--peer-url", other_serial + "=wss://127.0.0.1:17010/")
    assert status == 0  # a peer named by its serial is written by its UUID
    assert config_of(folder)["peer_urls"] == {other: "wss://127.0.0.1:17010/"}
    for bad in (other + "=ws://127.0.0.1:17011/", other, "nobody=wss://x:1/"):
        status, _, err = run(capsys, path, "provision", hub, tmp_path / "x", "--peer-url", bad)
        assert status == 1 and err.strip()
        assert not os.path.exists(tmp_path / "x")


def test_the_firmware_runs_from_a_provisioned_folder(tmp_path):
    path = tmp_path / "cloud.db"
    db = labcloud.init(str(path), port=free_port())  # nothing listens there: the cloud is down
    hub, serial = labcloud.add_controller(db)
    other, _ = labcloud.add_controller(db, kind="ec")
    user, token = labcloud.add_user(db, hub)
    labcloud.link(db, hub, other)
    folder = tmp_path / "data"
    labcloud.provision(db, hub, str(folder), **listen_ports())
    peer = Peer.existing(folder).start()  # the firmware on the folder the lab cloud wrote
    try:
        trust = ssl.create_default_context(cafile=str(folder / "cloud-ca.pem"))
        with connect(peer.url(), ssl=trust, open_timeout=10) as ws:  # its certificate verifies
            assert call(ws, "hub.offline.login.ui", {"user": user, "token": token})["error"] is None
            assert call(ws, "hub.info.get")["result"]["serial"] == serial
        peer_token = labcloud.access_data(db, hub)["peers"][other]["tokens"][1]
        with connect(peer.url(), ssl=trust, open_timeout=10) as ws:
            assert call(ws, "hub.offline.login.hub", {"hub": other, "token": peer_token})["error"] is None
    finally:
        peer.stop()
        db.close()


def test_show_lists_without_secrets(capsys, lab, tmp_path):
    db, path = lab
    a, sa = labcloud.add_controller(db, kind="ec")
    b, sb = labcloud.add_controller(db, kind="ec")
    user, token = labcloud.add_user(db, a)
    labcloud.link(db, a, b)
    labcloud.provision(db, a, str(tmp_path / "d"))
    secrets = [token, sha256_hex(token), config_of(tmp_path / "d")["cloud_token"]]
    secrets += labcloud.access_data(db, a)["peers"][b]["tokens"]
    status, listing, _ = run(capsys, path, "show")
    assert status == 0
    assert re.search(r"%s\s+serial %s\s+version 3\s+users 1\s+peers %s" % (a, sa, sb), listing)
    status, one, _ = run(capsys, path, "show", sa)
    assert status == 0 and user in one and "1 token(s)" in one and "serial %s" % sb in one
    for text in (listing, one):
        assert "BEGIN" not in text
        for secret in secrets:
            assert secret not in text


def test_cli_errors_exit_non_zero_with_one_clear_line(capsys, lab, tmp_path):
    db, path = lab
    hub, _ = labcloud.add_controller(db, kind="ec")
    done = run_process(path, "add-user", "70019999")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "error: unknown controller '70019999'\n"
    cases = [
        (["remove-user", hub, str(uuidlib.uuid4())], "error: controller %s has no user" % hub),
        (["add-user", hub, "--user", "bob"], "error: --user 'bob' is not a UUID"),
        (["rotate-cert", "nope"], "error: unknown controller 'nope'"),
        (["add-controller", "--serial", "a b"], "error: --serial must be"),
    ]
    for args, message in cases:
        status, out, err = run(capsys, path, *args)
        assert (status, out) == (1, "") and err.startswith(message) and err.count("\n") == 1, args
    missing = tmp_path / "missing.db"
    status, _, err = run(capsys, missing, "show")
    assert status == 1 and err == "error: no database at %s (run init first)\n" % missing


# ---------------------------------------------------------------- serve


class Serve(LoggedProcess):
    """`python -m tools.labcloud DB serve` in a child process, on a port the
    system picks as it binds (no other process can take it first)."""

    def __init__(self, path):
        self.spawn([sys.executable, "-m", "tools.labcloud", str(path), "serve", "--port", "0"])
        line = self.wait_log(r"listening on wss://127\.0\.0\.1:\d+/", 30)
        self.port = int(re.search(r":(\d+)/", line).group(1))


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """One running cloud for the module; each test adds its own controllers."""
    folder = tmp_path_factory.mktemp("cloud")
    path = folder / "cloud.db"
    db = labcloud.init(str(path), kind="ec")
    server = Serve(path)
    server.db, server.path, server.folder = db, path, folder
    server.ca = str(folder / "ca.pem")
    with open(server.ca, "w") as f:
        f.write(labcloud.db.meta(db, "ca_cert"))
    yield server
    assert server.stop() == 0
    assert server.lines[-1].endswith("stopped")
    db.close()


def enroll(cloud):
    """A new provisioned controller: (uuid, its cloud secret)."""
    hub, _ = labcloud.add_controller(cloud.db, kind="ec")
    cfg = labcloud.provision(cloud.db, hub, str(cloud.folder / hub))
    return hub, cfg["cloud_token"]


def open_ws(cloud, trust=None, host="127.0.0.1"):
    """A connection that verifies the cloud as a provisioned controller does."""
    trust = trust or ssl.create_default_context(cafile=cloud.ca)
    return connect("wss://%s:%d/" % (host, cloud.port), ssl=trust, open_timeout=10)


def receive(ws, timeout=10):
    return json.loads(ws.recv(timeout=timeout))


def request(ws, method, params=None, rid="q1"):
    """Sends a request; returns its reply, skipping pushes."""
    msg = {"id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    ws.send(json.dumps(msg))
    while True:
        reply = receive(ws)
        if reply.get("method") != PUSH:
            return reply


def login(ws, hub, secret):
    """Logs in and returns the push that follows every login."""
    assert request(ws, LOGIN, {"hub": hub, "token": secret}, rid=7) == {
        "id": 7, "method": LOGIN, "error": None, "result": {}}
    push = receive(ws)
    assert push["method"] == PUSH and re.fullmatch(r"cloud-\d+", push["id"])
    return push


def test_login_ok_is_followed_by_the_current_version(cloud):
    hub, secret = enroll(cloud)
    labcloud.add_user(cloud.db, hub)
    with open_ws(cloud) as ws:
        assert login(ws, hub, secret)["params"] == {"newVersion": 2}
        cloud.wait_log("login ok 127.0.0.1:\\d+ hub %s" % hub)


@pytest.mark.parametrize("who", ["wrong secret", "unknown controller"])
def test_a_bad_login_is_refused_and_closed(cloud, who):
    hub, secret = enroll(cloud)
    if who == "unknown controller":
        hub = str(uuidlib.uuid4())
    with open_ws(cloud) as ws:
        reply = request(ws, LOGIN, {"hub": hub, "token": secret + "x"})
        assert reply == {"id": "q1", "method": LOGIN, "error": BADPASS, "result": None}
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1008
    cloud.wait_log("login failed .* hub %s" % (hub if who == "wrong secret" else r"\(unknown\)"))


def test_other_methods_need_a_login_first(cloud):
    hub, secret = enroll(cloud)
    with open_ws(cloud) as ws:
        assert request(ws, SYNC)["error"] == {"code": -32500, "message": "Login required",
                                              "data": "user.login.required"}
        login(ws, hub, secret)  # the connection stayed usable
        assert request(ws, "hub.info.get")["error"]["data"] == "rpc.method.notfound"
        assert request(ws, "hub.info.get")["error"]["code"] == -32601


def test_sync_returns_the_full_access_data(cloud):
    hub, secret = enroll(cloud)
    other, _ = enroll(cloud)
    issued = [labcloud.add_user(cloud.db, hub) for _ in range(2)]
    labcloud.add_user(cloud.db, hub, user=issued[0][0])
    labcloud.link(cloud.db, hub, other)
    with open_ws(cloud) as ws:
        login(ws, hub, secret)
        assert request(ws, SYNC, {"version": "1"})["error"]["data"] == "rpc.params.invalid"
        reply = request(ws, SYNC, {"Version": 1}, rid="s1")  # the API example's spelling
    assert set(reply) == {"id", "method", "error", "result"}
    assert (reply["id"], reply["method"], reply["error"]) == ("s1", SYNC, None)
    result = reply["result"]
    assert result == labcloud.access_data(cloud.db, hub)
    assert set(result) == {"clients", "peers", "current", "version"} and result["version"] == 5
    (first, token1), (second, token2) = issued
    assert set(result["clients"]) == {first, second}
    assert sha256_hex(token1) in result["clients"][first] and len(result["clients"][first]) == 2
    assert result["clients"][second] == [sha256_hex(token2)]
    assert result["peers"][other]["id"] == labcloud.db.resolve(cloud.db, other)[1]
    assert set(result["current"][0]) == {"certificate", "private", "public_parent"}
    cloud.wait_log("sync served hub %s version 5 \\(controller had 1\\)" % hub)


def test_a_change_made_by_the_cli_is_pushed_at_the_next_poll(cloud):
    hub, secret = enroll(cloud)
    with open_ws(cloud) as ws:
        assert login(ws, hub, secret)["params"] == {"newVersion": 1}
        done = run_process(cloud.path, "add-user", hub)  # another process, another connection
        assert done.returncode == 0, done.stderr
        push = receive(ws, timeout=POLL_S + SLACK)  # the cloud polls the database
        assert push["method"] == PUSH and push["params"] == {"newVersion": 2}
        ws.send(json.dumps({"id": push["id"], "method": PUSH, "error": None, "result": {}}))
        token = re.search(r"shown only now.*: (\S+)", done.stdout).group(1)
        clients = request(ws, SYNC)["result"]["clients"]
        assert [sha256_hex(token)] in clients.values()
    assert token not in cloud.output and secret not in cloud.output


def test_a_second_connection_replaces_the_first(cloud):
    hub, secret = enroll(cloud)
    with open_ws(cloud) as first, open_ws(cloud) as second:
        login(first, hub, secret)
        login(second, hub, secret)
        with pytest.raises(ConnectionClosed) as closed:
            first.recv(timeout=5)
        assert closed.value.rcvd.code == 1001
        assert request(second, SYNC)["error"] is None
    cloud.wait_log("replaced 127.0.0.1:\\d+ hub %s" % hub)


def test_removing_a_controller_closes_its_connection(cloud):
    hub, secret = enroll(cloud)
    with open_ws(cloud) as ws:
        login(ws, hub, secret)
        labcloud.remove_controller(cloud.db, hub)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=POLL_S + SLACK)  # at the cloud's next poll
    assert closed.value.rcvd.code == 1008


def test_malformed_json_is_answered_and_the_connection_kept(cloud):
    hub, secret = enroll(cloud)
    with open_ws(cloud) as ws:
        login(ws, hub, secret)
        ws.send('{"id": 1, "method": ')
        assert receive(ws) == {"id": None, "method": None, "result": None, "error": {
            "code": -32700, "message": "Parse error", "data": "rpc.parse.error"}}
        assert request(ws, SYNC)["result"]["version"] == 1


def test_a_client_that_does_not_trust_the_lab_ca_fails_the_handshake(cloud):
    with pytest.raises(ssl.SSLCertVerificationError):
        with open_ws(cloud, trust=ssl.create_default_context()):
            pass
    with open_ws(cloud, host="localhost"):  # the other name in the certificate
        pass
