# A WSS client link: TCP, TLS verified by the caller's context, the
# WebSocket upgrade, then JSON messages with keepalive. The cloud link and
# the links to peer controllers are made of it; a subclass answers the
# requests that arrive over it (request()).
import asyncio
import errno
import json
import os
import socket

from firmware import ws, wsclient
from firmware.conn import read_some, write_all
from firmware.ticks import ticks_add, ticks_diff, ticks_ms

BACKOFF_MIN_MS = 1000
RESOLVE_EVERY = 8  # failed connects before a name is looked up again
FLOOD = 16  # requests from the other side while a reply is awaited


class LinkError(Exception):
    pass


def parse_url(url):
    # "wss://host[:port][/path]" -> (host, port, path)
    rest = url[6:]
    slash = rest.find("/")
    hostport, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return hostport, 443, path
    return host, int(port), path


def jitter(ms, spread):
    # ms scaled by a random factor in [1 - spread, 1]
    r = int.from_bytes(os.urandom(2), "big") / 65535
    return int(ms * (1 - spread * r))


def is_request(msg):
    # Replies carry "result" or "error"; stray ones are dropped.
    return msg is not None and "method" in msg and "result" not in msg and "error" not in msg


def error_data(reply):
    # The other side's words, quoted and cut: they reach a console.
    err = reply.get("error")
    return repr(err.get("data"))[:64] if isinstance(err, dict) else "no result"


def reason(e):
    # Exception text for the log (mbedTLS wraps its own in newlines); errors
    # here never carry secrets.
    return str(e).strip() or type(e).__name__


class Link:
    BACKOFF_KEY = ""  # the config key capping the backoff: the subclass's

    def __init__(self, cfg, url, max_message, log):
        self.cfg = cfg
        self.log = log
        self.host, self.port, self.url_path = parse_url(url)
        self.max_message = max_message
        self.failures = 0
        self.ids = 0
        self.sockaddr = None  # the resolved address
        self.raw = None  # the TCP socket under the TLS one
        self.stream = None
        self.decoder = None
        self.pending = []  # decoded frames not yet handled
        self.buf = bytearray(512)
        self.heard = 0  # ticks when the other side last sent anything
        self.pinged = False
        self.sending = asyncio.Lock()  # other tasks may send requests too

    async def backoff(self):
        # Capped exponential, jittered; a fresh name lookup now and then.
        delay = min(self.cfg[self.BACKOFF_KEY] * 1000, BACKOFF_MIN_MS << min(self.failures, 16))
        self.failures += 1
        if self.failures % RESOLVE_EVERY == 0:
            self.sockaddr = None
        await asyncio.sleep_ms(jitter(delay, 0.5))

    async def connect(self, tls):
        # TCP, TLS, then the upgrade. The TLS handshake runs inside the first
        # write and read, each bounded by a deadline.
        timeout = self.cfg["handshake_timeout"] * 1000
        if self.sockaddr is None:
            # A name lookup blocks the loop on a board: done once, and again
            # only after repeated failures (an IP address needs none); a
            # failed one is remembered as () until then.
            self.sockaddr = ()
            self.sockaddr = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0][-1]
        if not self.sockaddr:
            raise LinkError("%s did not resolve" % self.host)
        self.raw = socket.socket()
        self.raw.setblocking(False)
        try:
            self.raw.connect(self.sockaddr)
        except OSError as e:
            if e.errno != errno.EINPROGRESS:
                raise
        sock = tls.wrap_socket(self.raw, server_hostname=self.host, do_handshake_on_connect=False)
        sock.setblocking(False)
        self.stream = asyncio.StreamReader(sock)
        self.heard = ticks_ms()
        self.pinged = False
        key = wsclient.new_key()
        await self.send(wsclient.client_request("%s:%d" % (self.host, self.port), self.url_path, key))
        head = bytearray()
        deadline = ticks_add(ticks_ms(), timeout)
        while True:
            chunk = await self._read(ticks_diff(deadline, ticks_ms()))
            if not chunk:
                raise LinkError("upgrade timed out")
            head.extend(chunk)
            end = ws.head_complete(head)
            if end >= 0:
                break
        try:
            wsclient.check_response(head[:end], key)
        except ws.HandshakeError as e:
            raise LinkError("upgrade refused: %d %s" % (e.status, e.reason))
        self.decoder = ws.Decoder(self.max_message, client=True)
        self.pending = self.decoder.feed(bytes(head[end:]))

    def close(self):
        # Both sockets: mbedTLS leaves the TCP one open after a failed handshake.
        for sock in (self.stream and self.stream.s, self.raw):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
        self.stream = self.raw = None

    async def _read(self, wait_ms):
        # Bytes read, or b"" when wait_ms passes first.
        n = await read_some(self.stream, self.buf, wait_ms)
        return bytes(memoryview(self.buf)[:n])

    async def send(self, data):
        async with self.sending:  # one drain at a time per stream
            if self.stream is None:
                raise OSError(errno.ENOTCONN)
            try:
                await write_all(self.stream, data, self.cfg["write_timeout"] * 1000)
            except BaseException:
                # A write cut short (a timeout, a cancelled caller) leaves
                # part of a frame sent: the stream is unusable, and the
                # closed socket makes the link's own task notice.
                self.stream.s.close()
                raise

    async def send_text(self, text):
        await self.send(ws.encode(ws.OP_TEXT, text, mask=True))

    async def receive(self, wait_ms):
        # The next JSON message, or None when wait_ms passes first. After
        # half of idle_timeout in silence the other side is pinged; silence
        # for all of it is taken for death.
        deadline = ticks_add(ticks_ms(), max(wait_ms, 1))
        idle = self.cfg["idle_timeout"] * 1000
        while True:
            while self.pending:
                op, payload = self.pending.pop(0)
                msg = await self._frame(op, payload)
                if msg is not None:
                    return msg
            now = ticks_ms()
            quiet = ticks_diff(now, self.heard)
            if quiet >= idle:
                raise LinkError("silent for %d s" % self.cfg["idle_timeout"])
            if quiet >= idle // 2 and not self.pinged:
                self.pinged = True
                await self.send(ws.encode(ws.OP_PING, b"", mask=True))
            left = ticks_diff(deadline, now)
            if left <= 0:
                return None
            data = await self._read(min(left, (idle if self.pinged else idle // 2) - quiet))
            if data:
                self.heard = ticks_ms()
                self.pinged = False
                try:
                    self.pending = self.decoder.feed(data)
                except ws.ProtocolError as e:
                    raise LinkError("protocol error: %s" % e.reason)

    async def _frame(self, op, payload):
        if op == ws.OP_PING:
            await self.send(ws.encode(ws.OP_PONG, payload, mask=True))
        elif op == ws.OP_CLOSE:
            raise LinkError("closed by the other side")
        elif op == ws.OP_TEXT:
            try:
                msg = json.loads(payload)
            except Exception:  # ValueError, or MemoryError on absurd input
                raise LinkError("malformed JSON")
            if isinstance(msg, dict):
                return msg
            raise LinkError("a message is not an object")
        elif op == ws.OP_BINARY:
            raise LinkError("binary message")
        return None

    async def request(self, msg):
        # Answers a request from the other side: the subclass's.
        raise NotImplementedError

    async def call(self, method, params, api=None):
        # Sends a request and returns its reply; requests that arrive
        # meanwhile are answered on the way.
        self.ids += 1
        rid = "p%d" % self.ids
        req = {"id": rid, "method": method, "params": params}
        if api:
            req["api"] = api
        await self.send_text(json.dumps(req))
        deadline = ticks_add(ticks_ms(), self.cfg["write_timeout"] * 1000)
        handled = 0
        while True:
            msg = await self.receive(ticks_diff(deadline, ticks_ms()))
            if msg is None:
                raise LinkError("no reply to %s" % method)
            if is_request(msg):
                handled += 1
                if handled > FLOOD:
                    raise LinkError("flooded with requests instead of a reply")
                await self.request(msg)
            elif msg.get("id") == rid:
                return msg
