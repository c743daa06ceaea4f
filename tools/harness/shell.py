"""The firmware's shell (hub, conn, server, link, cloud, peers) run in process
on CPython: MicroPython's asyncio names, fake sockets fed by the test, a clock
that moves only when the test moves it, and a fake ssl. Every firmware object
the shell tests use is made here (make_parts, make_server, connect, session,
make_link, make_cloud), so a change to the firmware's constructors is an edit
in this module only.

A test is an async function of an Env, run by the @scenario decorator:

    @scenario
    async def test_something(env):
        server = await env.make_server()
        end = await env.session(server, user=USER, token=TOKEN)
        assert (await end.call("hub.info.get"))["error"] is None

What is faked, and how:

- asyncio: each firmware module's `asyncio` is a namespace over CPython's that
  adds MicroPython's names: StreamReader(sock) (MicroPython's Stream: write()
  sends what the socket takes and keeps the rest in out_buf for drain()),
  sleep_ms, wait_for_ms, its own TimeoutError (an Exception, not CPython's
  OSError subclass), and start_server on the fake network. sleep, sleep_ms and
  wait_for_ms wait on the fake clock.
- ticks: each firmware module's ticks_ms reads the fake clock. Time moves only
  through env.advance(ms), which steps from timer to timer, letting the loop
  run idle at each, as a real clock passing would.
- sockets: FakeSocket has MicroPython's non-blocking socket calls (readinto and
  write return None when they would block); the test holds the other side as
  an End: a WebSocket client of the server, or the server a link dials.
- ssl: SSLContext takes DER as MicroPython's does and checks it with CPython's
  real TLS stack (so a certificate and key that do not load are refused as on
  the board); wrap_socket does no handshake and marks the socket with the host
  name it would verify.
- gc: collect() is a no-op and mem_alloc/mem_free report fixed figures.
"""
import asyncio
import base64
import errno
import gc as _gc
import hashlib
import heapq
import importlib
import inspect
import json
import math
import os
import re
import socket as _socket
import ssl as _ssl
import sys
import tempfile
import types

from firmware.core import ws
from firmware.core import ticks as _ticks
from tools import devdata
from tools.harness.wait import WAIT

# The shell's modules: imported up front so that each is given the fakes.
SHELL = ("firmware.seam.board", "firmware.seam.memory", "firmware.shell.wire",
         "firmware.flash.switches", "firmware.core.auth", "firmware.flash.store",
         "firmware.shell.hub", "firmware.shell.conn", "firmware.shell.server",
         "firmware.core.wsclient", "firmware.shell.link", "firmware.shell.cloud",
         "firmware.shell.peers", "firmware.shell.tls", "firmware.shell.app")
for _name in SHELL:
    importlib.import_module(_name)

from firmware.flash import config  # noqa: E402
from firmware.shell import cloud, link, server, tls  # noqa: E402

TICK_MS = server.TICK_MS  # how often the server's clock checks deadlines and pings
WAIT_S = WAIT  # real seconds a test waits for something the firmware should do at once
_real_sleep = asyncio.sleep
_real_ticks_ms = _ticks.ticks_ms

HUB = "hub-0000-uuid"
SERIAL = "90000001"
USER, TOKEN = "user-1111-uuid", "user-token-1"
USER2, TOKEN2 = "user-2222-uuid", "user-token-2"
PEER, PEER_SERIAL, PEER_TOKEN = "peer-aaaa-uuid", "10000001", "peer-token-a"
CLOUD_HOST, CLOUD_PORT, CLOUD_TOKEN = "cloud.test", 17443, "cloud-secret"


# ---- time ---------------------------------------------------------------------


class Clock:
    """ticks_ms and the sleeps of the firmware: a time that moves only when
    the test advances it."""

    def __init__(self, start):
        self.now = start
        self._timers = []  # heap of (deadline, seq, future)
        self._seq = 0

    def ticks_ms(self):
        return self.now

    async def sleep_ms(self, ms):
        if ms <= 0:  # MicroPython's sleep_ms(0) yields once
            await _real_sleep(0)
            return
        fut = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._timers, (self.now + math.ceil(ms), self._seq, fut))
        await fut

    async def sleep(self, s):
        await self.sleep_ms(int(s * 1000))  # as MicroPython's sleep(s)

    def next_due(self):
        while self._timers and self._timers[0][2].done():  # cancelled sleepers
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def fire(self):
        while self._timers and self._timers[0][0] <= self.now:
            fut = heapq.heappop(self._timers)[2]
            if not fut.done():
                fut.set_result(None)


class MpTimeoutError(Exception):
    """MicroPython's asyncio.TimeoutError: an Exception, not an OSError."""


async def _wait_for_ms(clock, aw, ms):
    # MicroPython's wait_for_ms: the awaitable's result, or TimeoutError once
    # the (fake) time is up, the awaitable cancelled and finished.
    task = asyncio.ensure_future(aw)
    timer = asyncio.ensure_future(clock.sleep_ms(ms))
    try:
        await asyncio.wait((task, timer), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        timer.cancel()
        raise
    if task.done():
        timer.cancel()
        return task.result()
    task.cancel()
    await asyncio.wait((task,))
    if not task.cancelled():
        task.exception()  # retrieved: MicroPython's runner swallows it too
    raise MpTimeoutError


class _Over(types.ModuleType):
    # A module that is another one with a few names replaced.
    def __init__(self, name, real):
        super().__init__(name)
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)


# ---- sockets ------------------------------------------------------------------


class Signal:
    """One wake-up for everything that waits on the fake network."""

    def __init__(self):
        self._event = None

    def notify(self):
        if self._event is not None:
            self._event.set()
            self._event = None

    async def until(self, ready, what=None):
        # Waits until ready() holds; with `what`, for WAIT_S real seconds at
        # most (the test's waits), without it as long as it takes (the
        # firmware's, like a socket's).
        async def wait():
            while not ready():
                if self._event is None:
                    self._event = asyncio.Event()
                await self._event.wait()

        if what is None:
            await wait()
            return
        try:
            await asyncio.wait_for(wait(), WAIT_S)
        except TimeoutError:
            raise AssertionError("waited %d s in vain for %s" % (WAIT_S, what)) from None


class FakeSocket:
    """A non-blocking socket as MicroPython's: readinto and write return None
    when they would block. The test feeds `inbox`, takes `outbox`, and may
    limit `room`, the bytes the socket still takes before it blocks."""

    def __init__(self, signal, peername):
        self.signal = signal
        self.peername = peername
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.room = None  # None: no limit
        self.eof = False  # the other side hung up
        self.write_error = None  # raised by every write from now on
        self.closed = False
        self.tls = None  # the fake context that wrapped it
        self.server_hostname = None
        self.remote = None  # the address it was connected to

    async def readable(self):
        await self.signal.until(lambda: self.inbox or self.eof or self.closed)

    async def writable(self):
        await self.signal.until(lambda: self.room is None or self.room > 0 or self.closed)

    def readinto(self, buf):
        if self.closed:
            raise OSError(errno.EBADF, "EBADF")
        if self.inbox:
            n = min(len(buf), len(self.inbox))
            buf[:n] = self.inbox[:n]
            del self.inbox[:n]
            self.signal.notify()
            return n
        return 0 if self.eof else None

    def write(self, data):
        if self.closed:
            raise OSError(errno.EBADF, "EBADF")
        if self.write_error:
            raise self.write_error
        n = len(data) if self.room is None else min(self.room, len(data))
        if n == 0:
            return None
        self.outbox += bytes(data[:n])
        if self.room is not None:
            self.room -= n
        self.signal.notify()
        return n

    def close(self):
        self.closed = True
        self.signal.notify()

    def setblocking(self, flag):
        pass

    def setsockopt(self, *args):
        pass

    def connect(self, addr):
        self.remote = addr
        self.signal.notify()


class Stream:
    """MicroPython's asyncio.Stream (StreamReader and StreamWriter alike)."""

    def __init__(self, s, e=None):
        self.s = s
        self.e = e or {}
        self.out_buf = b""

    def get_extra_info(self, v):
        return self.e[v]

    def close(self):
        pass

    async def readinto(self, buf):
        await self.s.readable()
        return self.s.readinto(buf)

    def write(self, buf):
        if not self.out_buf:
            ret = self.s.write(buf)
            if ret == len(buf):
                return
            if ret is not None:
                buf = buf[ret:]
        self.out_buf += buf

    async def drain(self):
        if not self.out_buf:
            await _real_sleep(0)
            return
        mv = memoryview(self.out_buf)
        off = 0
        while off < len(mv):
            await self.s.writable()
            ret = self.s.write(mv[off:])
            if ret is not None:
                off += ret
        self.out_buf = b""


class DialSocket(FakeSocket):
    """A socket the firmware makes and connects: the test accepts it."""

    def __init__(self, net):
        super().__init__(net.signal, ("192.0.2.200", 40000 + len(net.dialled)))
        self.net = net

    def connect(self, addr):
        super().connect(addr)
        self.net.dialled.append(self)


class Listener:
    """What the fake start_server returns: MicroPython's asyncio.Server."""

    def __init__(self, net, cb, host, port):
        self.net, self.cb, self.host, self.port = net, cb, host, port
        self.closed = False

    def close(self):
        self.closed = True
        if self.net.listeners.get(self.port) is self:
            del self.net.listeners[self.port]


class Net:
    """The fake network: listeners made with start_server, sockets the
    firmware dials (env.net.accept() gives the test their other side), and
    name lookups."""

    def __init__(self, env):
        self.env = env
        self.signal = env.signal
        self.listeners = {}  # port -> Listener
        self.taken = set()  # ports another program holds
        self.hold = None  # while set, start_server waits for it
        self.dialled = []  # FakeSockets connected by the firmware, not yet accepted
        self.lookups = []  # host names looked up
        self.socket_module = self._socket_module()

    async def start_server(self, cb, host, port, backlog=None):
        if self.hold is not None:
            await self.hold.wait()
        if port in self.taken:
            raise OSError(errno.EADDRINUSE, "EADDRINUSE")
        listener = self.listeners[port] = Listener(self, cb, host, port)
        self.signal.notify()
        return listener

    def hold_listening(self):
        # start_server waits from now on until release_listening().
        self.hold = asyncio.Event()

    def release_listening(self):
        self.hold.set()
        self.hold = None

    def _socket_module(self):
        mod = _Over("socket (fake network)", _socket)
        net = self

        def getaddrinfo(host, port, af=0, kind=0, proto=0, flags=0):
            net.lookups.append(host)
            return [(_socket.AF_INET, _socket.SOCK_STREAM, 0, "", ("192.0.2.1", port))]

        def socket(*args):
            return DialSocket(net)

        mod.getaddrinfo = getaddrinfo
        mod.socket = socket
        return mod

    async def accept(self):
        """The other side of the next socket the firmware dials, as a server."""
        await self.signal.until(lambda: self.dialled, "the firmware to dial")
        return End(self.env, self.dialled.pop(0), client=False)


# ---- the test's side of a socket -----------------------------------------------


def _accept_key(key):
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()


class End:
    """The test's side of a FakeSocket: a WebSocket client of the server
    (client=True: it masks, and reads unmasked frames) or the server a link
    dialled (client=False)."""

    def __init__(self, env, sock, client):
        self.env = env
        self.sock = sock
        self.client = client
        self.upgraded = False
        self._decoder = ws.Decoder(1 << 20, client=client)
        self._frames = []

    # raw bytes
    def feed(self, data):
        self.sock.inbox += data
        self.sock.signal.notify()

    def hang_up(self):
        self.sock.eof = True
        self.sock.signal.notify()

    def break_writes(self):
        """Every write of the firmware fails from now on (EPIPE), while
        nothing comes to read: a connection half gone."""
        self.sock.write_error = OSError(errno.EPIPE, "EPIPE")

    def stop_reading(self):
        self.sock.room = 0

    def resume_reading(self):
        self.sock.room = None
        self.sock.signal.notify()

    @property
    def closed(self):
        """Whether the firmware closed its socket."""
        return self.sock.closed

    async def gone(self):
        await self.sock.signal.until(lambda: self.sock.closed, "the firmware to close the socket")

    async def leave(self):
        """Hangs up, and waits until the firmware has closed its side too."""
        self.hang_up()
        await self.gone()

    async def head(self):
        """The HTTP head the other side sent (through the blank line)."""
        await self.sock.signal.until(lambda: b"\r\n\r\n" in self.sock.outbox or self.sock.closed,
                                     "an HTTP head")
        box = self.sock.outbox
        end = box.find(b"\r\n\r\n")
        assert end >= 0, "closed without an HTTP head: %r" % bytes(box)
        head = bytes(box[:end + 4])
        del box[:end + 4]
        self.upgraded = True
        return head.decode()

    # frames
    def _decode(self):
        if self.upgraded and self.sock.outbox:
            data = bytes(self.sock.outbox)
            self.sock.outbox.clear()
            self._frames += self._decoder.feed(data)
        return self._frames

    def pending(self):
        """The frames received so far and not yet taken, taken now."""
        frames = list(self._decode())
        self._frames.clear()
        return frames

    async def frame(self):
        """The next frame (opcode, payload), or None once the socket is closed
        and nothing more came."""
        await self.sock.signal.until(lambda: self._decode() or self.sock.closed, "a frame")
        return self._frames.pop(0) if self._frames else None

    async def _next(self, op, what):
        # The next frame but pings (keepalives a client's stack answers), of kind op.
        f = await self.frame()
        while f is not None and f[0] == ws.OP_PING:
            f = await self.frame()
        assert f is not None and f[0] == op, "expected %s, got %r" % (what, f)
        return f[1]

    async def json(self):
        """The next text message, parsed."""
        return json.loads(bytes(await self._next(ws.OP_TEXT, "a text message")))

    async def close_frame(self):
        """(code, reason) of the next close frame."""
        return ws.parse_close(await self._next(ws.OP_CLOSE, "a close frame"))

    def send(self, op, payload=b""):
        self.feed(ws.encode(op, payload, mask=self.client))

    def send_text(self, text):
        self.send(ws.OP_TEXT, text)

    def send_json(self, obj):
        self.send(ws.OP_TEXT, json.dumps(obj))

    def request(self, method, params=None, rid="1"):
        msg = {"id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.send_json(msg)

    async def call(self, method, params=None, rid="1"):
        self.request(method, params, rid)
        return await self.json()

    # as a client of the server
    def upgrade_request(self, path="/", key=None, extra=""):
        key = key or base64.b64encode(os.urandom(16)).decode()
        return key, ("GET %s HTTP/1.1\r\nHost: peer.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n" % (path, key, extra)).encode()

    async def upgrade(self, then=b""):
        key, req = self.upgrade_request()
        self.feed(req + then)
        head = await self.head()
        assert head.startswith("HTTP/1.1 101 "), head
        assert "Sec-WebSocket-Accept: %s\r\n" % _accept_key(key) in head, head
        return head

    # as the server a link dialled
    async def accept_upgrade(self):
        head = await self.head()
        key = [line.split(":", 1)[1].strip() for line in head.split("\r\n")
               if line.lower().startswith("sec-websocket-key:")][0]
        self.feed(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n\r\n" % _accept_key(key)).encode())
        return head

    def reply(self, req, result=None, error=None):
        self.send_json({"id": req["id"], "method": req.get("method"), "error": error, "result": result})


# ---- ssl and gc ------------------------------------------------------------------


class FakeSSLContext:
    """MicroPython's ssl.SSLContext as the firmware uses it."""

    def __init__(self, protocol):
        self.protocol = protocol
        self.verify_mode = None
        self.cadata = []
        self.chain = None

    def load_cert_chain(self, cert, key):
        # DER, as MicroPython takes it; loaded into a real context to see
        # that it loads and that the key is the certificate's.
        real = _ssl.SSLContext(_ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as d:
            cert_path, key_path = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
            with open(cert_path, "w") as f:
                f.write(_ssl.DER_cert_to_PEM_cert(bytes(cert)))
            error = None
            for label in ("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"):
                with open(key_path, "w") as f:
                    f.write("-----BEGIN %s-----\n%s-----END %s-----\n"
                            % (label, base64.encodebytes(bytes(key)).decode(), label))
                try:
                    real.load_cert_chain(cert_path, key_path)
                    break
                except _ssl.SSLError as e:
                    error = e
            else:
                raise error
        self.chain = (bytes(cert), bytes(key))

    def load_verify_locations(self, cadata=None):
        _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=bytes(cadata))
        self.cadata.append(bytes(cadata))

    def wrap_socket(self, sock, server_side=False, server_hostname=None, do_handshake_on_connect=True):
        sock.tls = self
        sock.server_hostname = server_hostname
        return sock


FAKE_SSL = _Over("ssl (fake)", _ssl)
FAKE_SSL.SSLContext = FakeSSLContext

FAKE_GC = _Over("gc (fake)", _gc)
FAKE_GC.collect = lambda: None
FAKE_GC.mem_alloc = lambda: 70000
FAKE_GC.mem_free = lambda: 40000


# ---- access data ------------------------------------------------------------------

_cert = []


def cert_pem():
    """A self-signed (certificate PEM, key PEM), made once."""
    if not _cert:
        _cert.append(devdata.make_cert("HUB" + SERIAL, kind="ec"))
    return _cert[0]


def access_result(users=None, peers=None, version=1, cert=False, parent=False):
    """The sync result shape: users {uuid: [token]}, peers {uuid: (serial,
    [token])}, with a certificate set when cert (and its certificate as the
    peers' public_parent when parent)."""
    users = {USER: [TOKEN], USER2: [TOKEN2]} if users is None else users
    peers = {PEER: (PEER_SERIAL, [PEER_TOKEN])} if peers is None else peers
    current = []
    if cert or parent:
        cert, key = cert_pem()
        current = [{"certificate": cert, "private": key, "public_parent": cert if parent else ""}]
    result = {
        "clients": {u: [devdata.sha256_hex(t) for t in tokens] for u, tokens in users.items()},
        "peers": {p: {"id": serial, "tokens": list(tokens)} for p, (serial, tokens) in peers.items()},
        "current": current,
    }
    if version is not None:
        result["version"] = version
    return result


def parse_access(result):
    """The access data as the firmware holds it."""
    from firmware.core import access

    return access.parse(result)[0]


# ---- the environment -------------------------------------------------------------


class Env:
    def __init__(self, tmp):
        self.tmp = str(tmp)
        self.signal = Signal()
        self.clock = Clock(_real_ticks_ms())
        self.net = Net(self)
        self.lines = []  # the firmware's log
        self.tasks = []  # strong references: MicroPython's scheduler holds its tasks
        self.errors = []  # what the event loop reported (an exception no task retrieved)
        self.aio = self._asyncio()
        self._addrs = 0

    def log(self, msg):
        self.lines.append(msg)

    def logged(self, text):
        return [line for line in self.lines if text in line]

    def _asyncio(self):
        aio = _Over("asyncio (MicroPython's names)", asyncio)
        clock = self.clock
        aio.StreamReader = aio.StreamWriter = Stream
        aio.sleep = clock.sleep
        aio.sleep_ms = clock.sleep_ms
        aio.wait_for_ms = lambda aw, ms: _wait_for_ms(clock, aw, ms)
        aio.wait_for = lambda aw, s: _wait_for_ms(clock, aw, s * 1000)
        aio.TimeoutError = MpTimeoutError
        aio.start_server = self.net.start_server
        aio.create_task = self.spawn
        return aio

    def spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.append(task)
        return task

    # -- time
    async def settle(self):
        """Lets every task run until none can."""
        loop = asyncio.get_running_loop()
        for _ in range(100000):
            await _real_sleep(0)
            if not loop._ready:  # CPython's queue of callbacks to run
                return
        raise AssertionError("the event loop never went idle")

    async def advance(self, ms):
        """Moves the clock ms forward, stopping at each timer due meanwhile."""
        end = self.clock.now + ms
        await self.settle()
        while True:
            due = self.clock.next_due()
            if due is None or due > end:
                break
            self.clock.now = max(self.clock.now, due)
            self.clock.fire()
            await self.settle()
        self.clock.now = end
        await self.settle()

    # -- factories
    def cfg(self, **over):
        given = {"hub": HUB, "serial": SERIAL, "host": "127.0.0.1",
                 "cloud_url": "wss://%s:%d/" % (CLOUD_HOST, CLOUD_PORT), "cloud_token": CLOUD_TOKEN}
        given.update(over)
        return config.parse(json.dumps(given))

    def make_parts(self, cfg=None, access=None, anonymous=False, insecure=False, switches_path=None):
        """What a server (and the hub it makes) is made of: its configuration,
        access data and switches."""
        from firmware.flash.switches import Switches

        if switches_path is None:
            switches_path = os.path.join(self.tmp, "switches.json")
            with open(switches_path, "w") as f:
                json.dump({"anonymous": anonymous, "insecure": insecure}, f)
        data = parse_access(access_result()) if access is None else access
        return Parts(cfg or self.cfg(), data, Switches(switches_path, self.log))

    async def make_server(self, parts=None, **over):
        """A started server as app.py starts it: its WSS listener (a fake TLS
        context when the access data has no certificate), the plain one when
        insecure access is on, its clock, the peer links of the data."""
        assert not (parts and over), "give the configuration to make_parts"
        parts = parts or self.make_parts(cfg=self.cfg(**over))
        context = (parts.access.certs and tls.server_context(parts.access, self.log)
                   or FakeSSLContext(_ssl.PROTOCOL_TLS_SERVER))
        srv = server.Server(parts.cfg, parts.access, parts.switches, context, self.log)
        await srv.start()
        srv.follow_peers(parts.access)
        await self.settle()
        return srv

    def address(self):
        self._addrs += 1
        return ("192.0.2.%d" % (10 + self._addrs), 50000 + self._addrs)

    async def connect(self, srv, kind="wss", addr=None):
        """A TCP connection to the server's listener of that kind (refused when
        it has none), not yet upgraded."""
        port = srv.cfg["wss_port" if kind == "wss" else "ws_port"]
        listener = self.net.listeners.get(port)
        if listener is None:
            raise ConnectionRefusedError("nothing listens for %s on %d" % (kind, port))
        sock = FakeSocket(self.signal, addr or self.address())
        stream = Stream(sock, {"peername": sock.peername})
        self.spawn(listener.cb(stream, stream))
        await self.settle()
        return End(self, sock, client=True)

    async def session(self, srv, user=None, token=None, peer=None, kind="wss", addr=None):
        """An upgraded connection, logged in as a user or as a peer controller
        when asked."""
        end = await self.connect(srv, kind, addr)
        await end.upgrade()
        if user or peer:
            method = "hub.offline.login.ui" if user else "hub.offline.login.hub"
            reply = await end.call(method, {"user" if user else "hub": user or peer, "token": token}, "login")
            assert reply["error"] is None, reply
        return end

    async def user_session(self, **over):
        """A started server (configured with OVER) and a connection logged in
        as the usual user: (server, the connection)."""
        srv = await self.make_server(**over)
        return srv, await self.session(srv, user=USER, token=TOKEN)

    def make_link(self, url="wss://peer.test:17000/", max_message=4096, **over):
        """A bare client link (link.Link) with a fake TLS context."""
        lnk = link.Link(self.cfg(**over), url, max_message, self.log)
        lnk.tls = FakeSSLContext(_ssl.PROTOCOL_TLS_CLIENT)
        return lnk

    def make_cloud(self, srv, access_path=None):
        """The cloud link of the server, verifying the cloud against the test
        certificate, writing access.json at access_path (in the test's folder
        by default)."""
        from firmware.core import access

        ca_der = access.der_cert(cert_pem()[0])
        path = access_path or os.path.join(self.tmp, "access.json")
        return cloud.CloudLink(srv.cfg, srv, ca_der, path, self.log)

    def start_cloud(self, srv, access_path=None):
        """make_cloud, running as app.py runs it."""
        lnk = self.make_cloud(srv, access_path)
        self.spawn(lnk.run())
        return lnk


class Parts:
    def __init__(self, cfg, access, switches):
        self.cfg, self.access, self.switches = cfg, access, switches


# ---- running a scenario ------------------------------------------------------------


def _firmware_modules():
    return [m for name, m in list(sys.modules.items())
            if m is not None and (name == "firmware" or name.startswith("firmware."))]


def _swaps(env):
    # (name, the real object, its fake): made once, so that `is` finds the fakes again.
    if not hasattr(env, "_swaps"):
        env._swaps = (("asyncio", asyncio, env.aio), ("ticks_ms", _real_ticks_ms, env.clock.ticks_ms),
                      ("ssl", _ssl, FAKE_SSL), ("socket", _socket, env.net.socket_module), ("gc", _gc, FAKE_GC))
    return env._swaps


def _install(env):
    for mod in _firmware_modules():
        for attr, real, fake in _swaps(env):
            if getattr(mod, attr, None) is real:
                setattr(mod, attr, fake)
    sys.modules["ssl"] = FAKE_SSL  # for the firmware's `import ssl` inside functions


def _uninstall(env):
    sys.modules["ssl"] = _ssl
    for mod in _firmware_modules():
        for attr, real, fake in _swaps(env):
            if getattr(mod, attr, None) is fake:
                setattr(mod, attr, real)


def run(tmp_path, fn, **kw):
    env = Env(tmp_path)

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: env.errors.append(ctx))
        await asyncio.wait_for(fn(env, **kw), 30)
        await env.settle()

    _install(env)
    try:
        asyncio.run(main())
    finally:
        _uninstall(env)
    assert not env.errors, "the event loop reported: %r" % env.errors
    return env


def ended_with(task, pattern):
    """Asserts that TASK is done and raised the firmware's LinkError matching
    PATTERN."""
    from firmware.shell.link import LinkError

    assert task.done()
    try:
        task.result()
    except LinkError as e:
        assert re.search(pattern, str(e)), str(e)
    else:
        raise AssertionError("no LinkError: %r" % (task.result(),))


def scenario(fn):
    """Makes `async def test_x(env, ...)` a pytest test run by run(): the
    test takes tmp_path and the parameters after env."""
    params = list(inspect.signature(fn).parameters.values())[1:]

    def test(tmp_path, **kw):
        run(tmp_path, fn, **kw)

    test.__signature__ = inspect.Signature(
        [inspect.Parameter("tmp_path", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + params)
    for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
        setattr(test, attr, getattr(fn, attr))
    if hasattr(fn, "pytestmark"):
        test.pytestmark = fn.pytestmark
    return test

