"""The host tools end to end: tools.devdata makes data folders the real
firmware (under the host MicroPython) starts from, and tools.ezlo_cli talks
to that firmware."""
import json
import os
import re
import shlex
import signal
import socket
import stat
import sys
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tools import devdata
from tools.harness.peer import PORT_ATTEMPTS, call, free_port, listen_ports
from tools.harness.proc import LoggedProcess, run, run_module

BADPASS = {"code": -32500, "message": "Bad password", "data": "user.login.badpassword"}
# hub.info.get keys clients read after login (API-NOTES), plus the identity.
INFO_KEYS = {"serial", "uuid", "model", "hardware", "firmware", "architecture",
             "offlineAnonymousAccess", "offlineInsecureAccess"}
VOLATILE = {"uptime", "localtime", "freeMemory"}


def cli(*args, timeout=60):
    return run_module("tools.ezlo_cli", *args, timeout=timeout)


def port_pair():
    # devdata --port P uses P for WSS and P+1 for plain WS
    for _ in range(50):
        p = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
        return p
    raise AssertionError("no two consecutive free ports")


def snapshot(folder):
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = (f.read(), st.st_mtime_ns, stat.S_IMODE(st.st_mode))
    return out


# ---------------------------------------------------------------- devdata


def test_create_writes_a_folder_the_firmware_runs_from(tmp_path, run_folder):
    folder = tmp_path / "data"
    cfg, user, token = devdata.create(str(folder), **listen_ports())
    assert sorted(os.listdir(folder)) == ["access.json", "config.json"]
    for name in ("access.json", "config.json"):
        assert stat.S_IMODE(os.stat(folder / name).st_mode) == 0o600
    with open(folder / "config.json") as f:
        assert json.load(f) == cfg
    text = (folder / "access.json").read_text()
    assert token not in text  # only the digest is stored
    access = json.loads(text)
    assert access["clients"] == {user: [devdata.sha256_hex(token)]}

    p = run_folder(folder, {user: [token]})
    with p.connect() as ws:
        reply = call(ws, "hub.offline.login.ui", {"user": user, "token": token})
        assert reply["error"] is None and reply["result"] == {}
        info = call(ws, "hub.info.get")["result"]
    assert info["serial"] == cfg["serial"] and info["uuid"] == cfg["hub"]
    with p.connect() as ws:
        assert call(ws, "hub.offline.login.ui", {"user": user, "token": token + "x"})["error"] == BADPASS


def test_create_certificate_is_rsa_2048_named_after_serial(tmp_path):
    cfg, _, _ = devdata.create(str(tmp_path / "d"))
    with open(tmp_path / "d" / "access.json") as f:
        access = json.load(f)
    assert len(access["current"]) == 1
    cert = x509.load_pem_x509_certificate(access["current"][0]["certificate"].encode())
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    cn = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    assert cn == "HUB" + cfg["serial"]
    assert cfg["serial"].isdigit() and len(cfg["serial"]) == 8


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_make_cert_is_self_signed_for_the_local_names(kind):
    cert_pem, key_pem = devdata.make_cert("HUB70010042", kind)
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    cert.verify_directly_issued_by(cert)  # self-signed
    assert cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value == "HUB70010042"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n) for n in sans.get_values_for_type(x509.DNSName)] == ["HUB70010042.local", "localhost"]
    assert [str(n) for n in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 825
    assert key_pem.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    if kind == "rsa":
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()


def test_a_key_kind_other_than_rsa_or_ec_is_refused():
    with pytest.raises(ValueError, match="'rsa' or 'ec'"):
        devdata.make_cert("HUB70010042", "dsa")


def test_write_private_is_owner_only_even_over_a_readable_file(tmp_path):
    path = tmp_path / "key.pem"
    path.write_text("old")
    os.chmod(path, 0o644)
    devdata.write_private(str(path), "new")
    assert path.read_text() == "new" and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    der = tmp_path / "key.der"
    devdata.write_private(str(der), b"\x30\x00")
    assert der.read_bytes() == b"\x30\x00" and stat.S_IMODE(os.stat(der).st_mode) == 0o600


def test_create_refuses_an_existing_folder(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(OSError):
        devdata.create(str(folder))
    assert os.listdir(folder) == ["keep.txt"]


def printed_credentials(out):
    m = re.search(r"make client ARGS='([^']*)'", out)
    assert m, out
    args = shlex.split(m.group(1))
    user = args[args.index("--user") + 1]
    token = [a for a in args if a.startswith("--token=")][0][len("--token="):]
    return args, user, token


def test_devdata_main_printed_token_logs_in(tmp_path, run_folder):
    folder = tmp_path / "var"
    port = port_pair()
    made = run_module("tools.devdata", str(folder), "--port", str(port))
    assert made.returncode == 0, made.stderr
    args, user, token = printed_credentials(made.stdout)
    assert args[0] == "wss://127.0.0.1:%d" % port
    assert (folder / "demo-user.txt").read_text().strip() == user
    assert token not in (folder / "access.json").read_text()
    with open(folder / "config.json") as f:
        cfg = json.load(f)
    assert (cfg["wss_port"], cfg["ws_port"]) == (port, port + 1)

    p = run_folder(folder, {user: [token]})
    with p.connect() as ws:
        reply = call(ws, "hub.offline.login.ui", {"user": user, "token": token})
    assert reply["error"] is None and reply["result"] == {}

    # and the printed client command itself works
    done = cli(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["result"]["serial"] == cfg["serial"]


def test_devdata_main_keeps_an_existing_folder_and_prints_no_token(tmp_path):
    folder = tmp_path / "var"
    first = run_module("tools.devdata", str(folder), "--port", "17100")
    assert first.returncode == 0, first.stderr
    _, user, token = printed_credentials(first.stdout)
    before = snapshot(folder)
    assert set(before) == {"access.json", "config.json", "demo-user.txt"}

    again = run_module("tools.devdata", str(folder), "--port", "17100", "--host", "0.0.0.0")
    assert again.returncode == 0, again.stderr
    assert snapshot(folder) == before
    assert token not in again.stdout and token not in again.stderr
    assert "existing" in again.stdout
    assert user in again.stdout  # it can still tell which demo user to use
    assert "--token=TOKEN" in again.stdout


def test_devdata_main_existing_folder_hint_names_the_configured_port(tmp_path):
    folder = tmp_path / "var"
    assert run_module("tools.devdata", str(folder), "--port", "18000").returncode == 0
    again = run_module("tools.devdata", str(folder))  # as `make run` without PORT=
    assert again.returncode == 0
    args, _, _ = printed_credentials(again.stdout)
    assert args[0] == "wss://127.0.0.1:18000"


def test_devdata_main_leaves_an_existing_foreign_folder_alone(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    before = snapshot(folder)
    done = run_module("tools.devdata", str(folder))
    assert done.returncode == 0
    assert snapshot(folder) == before
    assert "--token" not in done.stdout


# ---------------------------------------------------------------- ezlo_cli


def cli_info(peer, *extra):
    user, token = peer.user
    return cli(peer.url(), "--no-verify", "--user", user, "--token=" + token, "hub.info.get", *extra)


def test_cli_prints_full_hub_info(peer):
    done = cli_info(peer)
    assert done.returncode == 0, done.stdout + done.stderr
    reply = json.loads(done.stdout)
    assert reply["method"] == "hub.info.get"
    assert "error" in reply and reply["error"] is None
    res = reply["result"]
    assert INFO_KEYS <= set(res)
    assert res["serial"] == peer.cfg["serial"] and res["uuid"] == peer.cfg["hub"]
    assert res["offlineAnonymousAccess"] is False and res["offlineInsecureAccess"] is False

    # the same result a logged-in client gets directly, field for field
    with peer.connect() as ws:
        peer.login(ws)
        direct = call(ws, "hub.info.get")["result"]
    assert set(res) == set(direct)
    assert {k: v for k, v in res.items() if k not in VOLATILE} == \
        {k: v for k, v in direct.items() if k not in VOLATILE}


def test_cli_params_argument_is_sent(peer):
    # an explicit '{}' works; the login params are case-insensitive on the peer
    done = cli_info(peer, "{}")
    assert done.returncode == 0, done.stderr
    user, token = peer.user
    done = cli(peer.url(), "--no-verify", "hub.offline.login.ui",
               json.dumps({"User": user, "Token": token}))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["result"] == {}


def test_cli_wrong_token_exits_1_with_bad_password(peer):
    user, _ = peer.user
    done = cli(peer.url(), "--no-verify", "--user", user, "--token=not-the-token", "hub.info.get")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "user.login.badpassword" in done.stdout
    reply = json.loads(done.stdout)
    assert reply["error"] == BADPASS and reply["method"] == "hub.offline.login.ui"


def test_cli_unknown_method_exits_1(peer):
    user, token = peer.user
    done = cli(peer.url(), "--no-verify", "--user", user, "--token=" + token, "hub.no.such")
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["data"] == "rpc.method.notfound"


def test_cli_hub_login(make_peer):
    hub, token = str(uuid.uuid4()), "peer-token-" + uuid.uuid4().hex
    p = make_peer(peers={hub: ("70020001", [token])})
    done = cli(p.url(), "--no-verify", "--hub", hub, "--token=" + token, "hub.devices.list")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["result"] == {"devices": []}
    done = cli(p.url(), "--no-verify", "--hub", hub, "--token=wrong", "hub.devices.list")
    assert done.returncode == 1 and "user.login.badpassword" in done.stdout


def test_cli_refused_connection_exits_2():
    port = free_port()  # nothing listens there
    url = "wss://127.0.0.1:%d" % port
    done = cli(url, "--no-verify", "--user", "u", "--token=t", "hub.info.get")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "connection to %s failed" % url in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("params, message", [
    ("{bad", "params are not JSON"),
    ("[1, 2]", "params must be a JSON object"),
    ('"text"', "params must be a JSON object"),
])
def test_cli_bad_params_is_an_argparse_error(params, message):
    # a closed port: a connection attempt would also exit 2, so check it is
    # argparse that stopped (usage line, no connection message)
    url = "wss://127.0.0.1:%d" % free_port()
    done = cli(url, "--no-verify", "hub.info.get", params)
    assert done.returncode == 2
    assert "usage:" in done.stderr and ("error: " + message) in done.stderr
    assert "connection to" not in done.stderr
    assert done.stdout == ""


def test_cli_user_without_token_is_an_argparse_error():
    done = cli("wss://127.0.0.1:%d" % free_port(), "--user", "u", "hub.info.get")
    assert done.returncode == 2
    assert "usage:" in done.stderr and "--token" in done.stderr


def test_cli_without_no_verify_refuses_the_self_signed_peer(peer):
    user, token = peer.user
    done = cli(peer.url(), "--user", user, "--token=" + token, "hub.info.get")
    assert done.returncode == 2, done.stdout
    assert done.stdout == ""
    assert "connection to %s failed" % peer.url() in done.stderr
    assert "certificate" in done.stderr.lower()
    # the peer itself is fine: the same call with --no-verify succeeds
    assert cli_info(peer).returncode == 0


def test_cli_cafile_verifies_a_devdata_peer(tmp_path, run_folder):
    folder = tmp_path / "data"
    _, user, token = devdata.create(str(folder), **listen_ports())
    with open(folder / "access.json") as f:
        ca = tmp_path / "ca.pem"
        ca.write_text(json.load(f)["current"][0]["certificate"])
    p = run_folder(folder, {user: [token]})
    done = cli(p.url(), "--cafile", str(ca), "--user", user, "--token=" + token, "hub.info.get")
    assert done.returncode == 0, done.stderr


def test_cli_takes_a_token_that_starts_with_a_dash(make_peer):
    user, token = str(uuid.uuid4()), "-starts-with-a-dash"
    p = make_peer(users={user: [token]})
    done = cli(p.url(), "--no-verify", "--user", user, "--token=" + token, "hub.info.get")
    assert done.returncode == 0, done.stderr


class Demo(LoggedProcess):
    """`make run` (tools.demo) on folder VAR and the ports given."""

    def __init__(self, var, port, cloud_port):
        self.var, self.port, self.cloud_port = str(var), port, cloud_port
        # Its own process group: stop() is then a terminal's Ctrl-C, which
        # reaches the cloud and the peer too, as `make run` expects.
        self.spawn([sys.executable, "-u", "-m", "tools.demo", "--dir", self.var,
                    "--port", str(port), "--cloud-port", str(cloud_port)], group=True)

    def stop(self, timeout=20):
        # make run takes up to 9 s to stop everything: margin on a loaded machine.
        return super().stop(timeout)

    def taken(self):
        """True when it stopped because a port was taken (exit status 3)."""
        self.wait_log(r"make run: .* \(exit status", 60)
        return self.wait_exit() == 3


def running_demo(tmp_path):
    """A `make run` whose peer's cloud link is up. Ports are free_port()'s
    guesses: a taken one (exit status 3) means new ports and a new folder."""
    for attempt in range(PORT_ATTEMPTS):
        demo = Demo(tmp_path / ("var%d" % attempt), port_pair(), free_port())
        # The peer's line, not the instructions; or the demo's last word.
        line = demo.wait_log(r"cloud link up: |make run: .* \(exit status", 60)
        if "cloud link up" in line:
            return demo
        assert demo.taken(), line
    raise AssertionError("ports taken %d times in a row" % PORT_ATTEMPTS)


def test_make_run_starts_a_cloud_and_a_peer_that_a_new_user_reaches(tmp_path):
    demo = running_demo(tmp_path)
    try:
        args, user, token = printed_credentials(demo.output)
        assert args[0] == "wss://127.0.0.1:%d" % demo.port
        assert cli(*args).returncode == 0
        add = demo.wait_log(r"tools\.labcloud .* add-user \S+").split("python ", 1)[1]
        made = run([sys.executable, *shlex.split(add)])
        new_user, new_token = re.search(r"User (\S+) .*\n.*: (\S+)\n", made.stdout).groups()
        demo.wait_log("version 3 in force")
        done = cli(args[0], "--no-verify", "--user", new_user, "--token=" + new_token, "hub.info.get")
        assert done.returncode == 0, done.stderr
    finally:
        assert demo.stop() == 0
    assert demo.count(" stopped$")  # the peer stopped cleanly


def test_a_peer_that_stops_cleanly_before_make_run_sees_its_ctrl_c_ends_it_cleanly(tmp_path):
    # A Ctrl-C reaches the cloud, the peer and make run at once, and under
    # load the peer may be gone before make run handles its own: that is a
    # clean stop too, not a failure of the peer.
    demo = running_demo(tmp_path)
    try:
        found = run(["pgrep", "-f", "main.py --data %s" % os.path.join(demo.var, "peer")])
        os.kill(int(found.stdout.split()[0]), signal.SIGINT)  # the peer alone
        assert demo.wait_exit(30) == 0
        assert not demo.count("make run: ")  # no failure reported
    finally:
        demo.stop()


def test_a_second_make_run_stops_with_the_reason_and_leaves_the_first_alone(tmp_path):
    first = running_demo(tmp_path)
    try:
        second = Demo(first.var, first.port, first.cloud_port)  # the same folder, the same ports
        try:
            assert second.wait_exit(60) == 3
        finally:
            second.stop()
        out = second.output
        assert "error: cannot listen on 127.0.0.1:%d (address already in use)" % first.cloud_port in out
        assert second.lines[-1] == ("make run: the lab cloud did not start, so neither did the peer;"
                                    " is another `make run` running? (exit status 3)")
        assert not second.count(r"\bready$")  # its peer never started
        # The first serves on, and its cloud session was never contested.
        args, _, _ = printed_credentials(first.output)
        assert cli(*args).returncode == 0
        counts = [first.count(what) for what in ("login ok", "replaced", "cloud link down")]
        assert counts == [1, 0, 0], first.output
    finally:
        assert first.stop() == 0


def test_make_run_stops_when_its_peer_cannot_listen(tmp_path):
    with socket.socket() as holder:  # the peer's port, held from the start
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        for attempt in range(PORT_ATTEMPTS):
            demo = Demo(tmp_path / ("var%d" % attempt), port, free_port())
            assert demo.taken()
            if not demo.count("the lab cloud did not start"):  # its own port taken
                break
    out = demo.output
    assert "cannot listen for wss on 127.0.0.1:%d ([Errno 98] EADDRINUSE)" % port in out
    assert "make run: the peer stopped; stopping the lab cloud (exit status 3)" in out
    assert demo.lines[-1].endswith(" stopped")  # the cloud's last line: it was stopped
    assert not demo.count(r"\bready$|cloud link up: ")
