"""Runs the real firmware under the host MicroPython for end-to-end tests.

PEER_HEAPSIZE (for example 96K) starts it with `-X heapsize=`; PEER_ROOT
names a folder holding main.py and a compiled firmware/ (the .mpy build)
to run instead of the sources; MICROPYTHON points at another interpreter
than the one in .venv.
"""
import json
import os
import socket
import ssl
import sys
import uuid

from websockets.sync.client import connect
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Request

from host_tests.proc import ROOT, LoggedProcess
from tools import devdata

PEER_ROOT = os.path.abspath(os.environ.get("PEER_ROOT") or ROOT)
MICROPYTHON = os.environ.get("MICROPYTHON") or os.path.join(os.path.dirname(sys.executable), "micropython")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_tls():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


_CERT = None


def shared_cert():
    # RSA-2048 generation is slow; one certificate serves every test.
    global _CERT
    if _CERT is None:
        _CERT = devdata.make_cert("HUB-test")
    return _CERT


class Peer(LoggedProcess):
    def __init__(self, folder, users=None, peers=None, access=None, switches=None, **cfg):
        self.folder = str(folder)
        self.users = users if users is not None else {str(uuid.uuid4()): ["token-" + uuid.uuid4().hex]}
        self.cfg = {"hub": str(uuid.uuid4()), "serial": "70010042", "host": "127.0.0.1",
                    "wss_port": free_port(), "ws_port": free_port()}
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
        with open(os.path.join(p.folder, "config.json")) as f:
            p.cfg = json.load(f)
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

    def start(self, ready="ready", timeout=30, env=None):
        args = [MICROPYTHON]
        if os.environ.get("PEER_HEAPSIZE"):
            args += ["-X", "heapsize=" + os.environ["PEER_HEAPSIZE"]]
        self.spawn(args + [os.path.join(PEER_ROOT, "main.py"), "--data", self.folder], env)
        if ready:
            self.wait_log(ready, timeout)
        return self

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
        return connect(self.url(secure), ssl=client_tls() if secure else None, **kw)

    def login(self, ws, user=None, token=None):
        if user is None:
            user, token = self.user
        return call(ws, "hub.offline.login.ui", {"user": user, "token": token})


_ids = iter(range(1, 10 ** 9))


def call(ws, method, params=None, rid=None, timeout=10):
    """Sends one request and returns the reply (a dict)."""
    rid = rid if rid is not None else "r%d" % next(_ids)
    req = {"id": rid, "method": method}
    if params is not None:
        req["params"] = params
    ws.send(json.dumps(req))
    return json.loads(ws.recv(timeout=timeout))


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
        self.closed_by_peer = False

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
                self.closed_by_peer = True
                return

    def close_code(self):
        """The code of the server's close frame, or None if it just hung up."""
        for ev in self.events():
            if isinstance(ev, CloseConnection):
                return ev.code
        return None

    def close(self):
        self.sock.close()
