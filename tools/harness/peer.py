"""Runs the real firmware under the host MicroPython for end-to-end tests.

PEER_HEAPSIZE (for example 96K) starts it with `-X heapsize=`; PEER_ROOT
names a folder holding main.py and a compiled firmware/ (the .mpy build)
to run instead of the sources; MICROPYTHON points at another interpreter
than the one in .venv.
"""
import functools
import json
import os
import re
import socket
import ssl
import sys
import uuid

from websockets.sync.client import connect
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Request

from tools.harness.proc import ROOT, LoggedProcess
from tools.harness.wait import WAIT
from tools import devdata

PEER_ROOT = os.path.abspath(os.environ.get("PEER_ROOT") or ROOT)
MICROPYTHON = os.environ.get("MICROPYTHON") or os.path.join(os.path.dirname(sys.executable), "micropython")


def free_ports(n):
    """N distinct ports that were free a moment ago: another process may take
    one before the firmware binds it. Peer.start and Lab.start notice that
    (exit status 3) and start again on new ports."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:  # all bound at once: no port comes twice
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port():
    return free_ports(1)[0]


def listen_ports():
    """A config's wss_port and ws_port: two distinct free ports."""
    wss, ws = free_ports(2)
    return {"wss_port": wss, "ws_port": ws}


# The firmware's line for a port someone else holds: for the WSS listener it
# then exits with status 3; for the plain one it serves on without it.
PORT_TAKEN = r"cannot listen for wss? on \S+ \(.*EADDRINUSE"
PORT_ATTEMPTS = 5


def client_tls():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@functools.lru_cache(maxsize=None)
def shared_cert(name="HUB-test", kind="rsa"):
    """devdata.make_cert(NAME, KIND), made once per run: RSA-2048 generation
    is slow, so one certificate of a name and kind serves every test."""
    return devdata.make_cert(name, kind)


def presented_cert(port):
    """The DER certificate a TLS server on PORT presents (not verified)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with client_tls().wrap_socket(s) as t:
            return t.getpeercert(binary_form=True)


def config_of(folder):
    """FOLDER's config.json as a dict."""
    with open(os.path.join(folder, "config.json")) as f:
        return json.load(f)


def configure(folder, **changes):
    """Writes CHANGES over FOLDER's config.json; returns the new config."""
    cfg = config_of(folder)
    cfg.update(changes)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f)
    return cfg


class Peer(LoggedProcess):
    def __init__(self, folder, users=None, peers=None, access=None, switches=None, **cfg):
        self.folder = str(folder)
        self.users = users if users is not None else {str(uuid.uuid4()): ["token-" + uuid.uuid4().hex]}
        self.cfg = {"hub": str(uuid.uuid4()), "serial": "70010042", "host": "127.0.0.1"}
        self.cfg.update(listen_ports())
        self.cfg.update(cfg)
        os.makedirs(self.folder, exist_ok=True)
        self.write("config.json", self.cfg)
        if access is None:
            access = devdata.make_access(self.users, shared_cert(), peers)
        self.write("access.json", access)
        if switches is not None:
            self.write("switches.json", switches)

    @classmethod
    def existing(cls, folder, users=None):
        """The firmware on a data folder someone else wrote (nothing written)."""
        p = cls.__new__(cls)
        p.folder = str(folder)
        p.cfg = config_of(p.folder)
        p.users = users or {}
        return p

    @property
    def user(self):
        u = next(iter(self.users))
        return u, self.users[u][0]

    def write(self, name, obj):
        with open(os.path.join(self.folder, name), "w") as f:
            f.write(obj if isinstance(obj, str) else json.dumps(obj))

    def path(self, name):
        return os.path.join(self.folder, name)

    def start(self, ready="ready", timeout=30, env=None, move_ports=True):
        """Starts the firmware and waits for a line matching READY (None: no
        wait). A port of its taken by another process (see free_port) starts
        it again on new ones, PORT_ATTEMPTS times at most; MOVE_PORTS False,
        for a peer that others dial at its port, fails the test instead."""
        args = [MICROPYTHON]
        if os.environ.get("PEER_HEAPSIZE"):
            args += ["-X", "heapsize=" + os.environ["PEER_HEAPSIZE"]]
        args += [os.path.join(PEER_ROOT, "main.py"), "--data", self.folder]
        for _ in range(PORT_ATTEMPTS):
            self.spawn(args, env)
            if not ready:
                return self
            line = self.wait_log("%s|%s" % (PORT_TAKEN, ready), timeout)
            if not re.search(PORT_TAKEN, line):
                return self
            self.stop()
            assert move_ports, "a port of this peer was taken while it was down: " + line
            self.move_ports()
        raise AssertionError("ports taken %d times in a row; last:\n%s" % (PORT_ATTEMPTS, self.output))

    def move_ports(self):
        """New free ports in config.json (the other keys as they are)."""
        ports = listen_ports()
        configure(self.folder, **ports)
        self.cfg.update(ports)

    def restart(self):
        self.stop()
        return self.start()

    def url(self, secure=True):
        if secure:
            return "wss://127.0.0.1:%d/" % self.cfg["wss_port"]
        return "ws://127.0.0.1:%d/" % self.cfg["ws_port"]

    def connect(self, secure=True, **kw):
        kw.setdefault("open_timeout", 10)
        kw.setdefault("ping_interval", None)
        ws = connect(self.url(secure), ssl=client_tls() if secure else None, **kw)
        # The firmware's name for this connection in its log lines.
        ws.conn_name = "127.0.0.1:%d/%s" % (ws.socket.getsockname()[1], "wss" if secure else "ws")
        return ws

    def wait_gone(self, ws, timeout=WAIT):
        """Waits for the firmware's line that connection WS (made by
        connect()) ended: it is logged once the slot is free again."""
        return self.wait_log(re.escape(ws.conn_name) + " (closed|connection lost|timed out)", timeout)

    def login(self, ws, user=None, token=None):
        if user is None:
            user, token = self.user
        return call(ws, "hub.offline.login.ui", {"user": user, "token": token})

    def login_error(self, user=None, token=None):
        """Logs in on a new connection (as self.user unless told); the
        login's error, None when it was accepted."""
        with self.connect() as ws:
            return self.login(ws, user, token)["error"]

    def heap_alloc(self):
        """The GC heap in use, asked on a new connection without a login
        (the peer's switches must allow anonymous access)."""
        with self.connect() as ws:
            return diagnostics(ws)["heapAlloc"]


    def resident_modules(self, user=None, token=None):
        """The firmware modules in the peer's heap now ("core.ws", ...), asked
        on a new connection logged in as USER (the first user by default)."""
        with self.connect() as ws:
            assert self.login(ws, user, token)["error"] is None
            return set(diagnostics(ws)["modules"])


class Started:
    """Runs the firmware on data folders written by someone else (the lab
    cloud, a test): started(folder, users, **start options) returns the
    running Peer; stop() stops every one started."""

    def __init__(self):
        self.peers = []

    def __call__(self, folder, users=None, **kw):
        p = Peer.existing(folder, users)
        self.peers.append(p)  # stopped even if it fails to start
        return p.start(**kw)

    def stop(self):
        for p in self.peers:
            p.stop()


_ids = iter(range(1, 10 ** 9))


def call(ws, method, params=None, rid=None, timeout=10):
    """Sends one request and returns the reply (a dict)."""
    rid = rid if rid is not None else "r%d" % next(_ids)
    req = {"id": rid, "method": method}
    if params is not None:
        req["params"] = params
    ws.send(json.dumps(req))
    return json.loads(ws.recv(timeout=timeout))


def diagnostics(ws):
    """hub.diagnostics.get's result on an open connection."""
    reply = call(ws, "hub.diagnostics.get")
    assert reply["error"] is None, reply
    return reply["result"]


def raw_tls(port, timeout=10):
    """A plain TLS socket to the peer, for bytes no WebSocket client sends."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return client_tls().wrap_socket(s)


class RawClient:
    """A WebSocket client that can also put arbitrary bytes on the wire."""

    def __init__(self, port, tls=True, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            self.sock = client_tls().wrap_socket(self.sock)
        self.ws = WSConnection(ConnectionType.CLIENT)

    def handshake(self):
        self.sock.sendall(self.ws.send(Request(host="127.0.0.1", target="/")))
        for ev in self.events():
            if isinstance(ev, AcceptConnection):
                return self
        raise AssertionError("upgrade refused")

    def send(self, event):
        self.sock.sendall(self.ws.send(event))

    def send_bytes(self, data):
        self.sock.sendall(data)

    def request(self, method, params=None, rid="raw"):
        self.send(Message(data=json.dumps({"id": rid, "method": method, "params": params or {}})))
        for ev in self.events():
            if isinstance(ev, Message):
                return json.loads(ev.data)
        raise AssertionError("no reply")

    def events(self):
        """Yields events until the server closes the TCP connection."""
        while True:
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            self.ws.receive_data(data or None)
            yield from self.ws.events()
            if not data:
                return

    def close_code(self):
        """The code of the server's close frame, or None if it just hung up."""
        for ev in self.events():
            if isinstance(ev, CloseConnection):
                return ev.code
        return None

    def close(self):
        self.sock.close()
