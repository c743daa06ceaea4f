# A WSS client link: TCP, TLS verified by the caller's context, the
# WebSocket upgrade, then JSON messages both ways with keepalive. The cloud
# link and the links to peer controllers are made of it.
#
# Two tasks per link. The reader reads without a timeout (see wire.py),
# decodes, answers pings and the other side's requests (request()), and
# hands replies to whoever waits for them. The link's own task (run) dials,
# backs off, and runs the subclass's work(), which calls the other side
# and keeps time: pings after silence, deadlines, periodic work.
import asyncio
import errno
import json
import os
import socket

from firmware.core import ws, wsclient
from firmware.core.ticks import ticks_add, ticks_diff, ticks_ms
from firmware.seam import memory
from firmware.shell import wire

BACKOFF_MIN_MS = 1000
RESOLVE_EVERY = 8  # failed connects before a name is looked up again


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
    # Replies carry "result" or "error".
    return msg is not None and "method" in msg and "result" not in msg and "error" not in msg


def error_data(reply):
    # The other side's words, quoted and cut: they reach a console.
    err = reply.get("error")
    return repr(err.get("data"))[:64] if isinstance(err, dict) else "no result"


def reason(e):
    # Why a link ended, for the log. The text of the errors a link expects
    # (its own, the socket's, mbedTLS's, which wraps its own in newlines)
    # never carries secrets; of anything else only the type and place.
    if isinstance(e, (LinkError, OSError, EOFError, ValueError, asyncio.TimeoutError)):
        return str(e).strip() or type(e).__name__
    if isinstance(e, MemoryError):
        return "out of memory"
    from firmware.seam import faults

    return faults.describe(e)


class Link:
    BACKOFF_KEY = ""  # the config key capping the backoff: the subclass's

    def __init__(self, cfg, url, max_message, log):
        self.cfg = cfg
        self.log = log
        self.host, self.port, self.url_path = parse_url(url)
        self.max_message = max_message
        self.tls = None  # the client context: the subclass's
        self.failures = 0
        self.ids = 0
        self.sockaddr = None  # the resolved address
        self.raw = None  # the TCP socket under the TLS one
        self.stream = None
        self.reader = None  # the task reading the stream
        self.buf = bytearray(512)
        self.heard = 0  # ticks when the other side last sent anything
        self.pinged = False
        self.opened = False  # the upgrade was accepted
        self.dead = None  # why the reader stopped
        self.alarm = asyncio.Event()  # wakes work(): see wait()
        self.waiting = {}  # request id -> Event set by its reply
        self.replies = {}  # request id -> the reply
        self.sending = asyncio.Lock()  # one drain at a time per stream

    # ---- the life of the link

    async def run(self):
        while True:
            self.starting()
            why = "closed"
            try:
                await self.connect(self.tls)
                await self.work()
            except Exception as e:  # MemoryError, or a bug, too: the link must live on
                why = reason(e)
            finally:
                self.close()
                memory.collect()
            self.down(why)
            await self.backoff()

    def starting(self):
        pass

    async def work(self):
        # After the upgrade: the subclass's login and work, until it raises.
        raise NotImplementedError

    def down(self, why):
        raise NotImplementedError

    async def request(self, msg):
        # Answers a request from the other side: the subclass's.
        raise NotImplementedError

    async def backoff(self):
        # Capped exponential, jittered; a fresh name lookup now and then.
        delay = min(self.cfg[self.BACKOFF_KEY] * 1000, BACKOFF_MIN_MS << min(self.failures, 16))
        self.failures += 1
        if self.failures % RESOLVE_EVERY == 0:
            self.sockaddr = None
        await asyncio.sleep_ms(jitter(delay, 0.5))

    async def connect(self, tls):
        # TCP, TLS, then the upgrade, within handshake_timeout. The TLS
        # handshake runs inside the first write and read.
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
        self.pinged = self.opened = False
        self.dead = None
        key = wsclient.new_key()
        # The first write drives the TLS handshake, and its errors name the
        # certificate problem; the reader starts once it is through.
        await self.send(wsclient.client_request("%s:%d" % (self.host, self.port), self.url_path, key))
        self.reader = asyncio.create_task(self._read_all(key))
        deadline = ticks_add(ticks_ms(), self.cfg["handshake_timeout"] * 1000)
        while not self.opened:
            if self.dead:
                raise LinkError(self.dead)
            left = ticks_diff(deadline, ticks_ms())
            if left <= 0:
                raise LinkError("upgrade timed out")
            await self.wait(left)

    def close(self):
        # The reader (whose end wakes the callers still waiting) and both
        # sockets: mbedTLS leaves the TCP one open after a failed handshake.
        if self.reader is not None:
            self.reader.cancel()
            self.reader = None
        for sock in (self.stream and wire.socket(self.stream), self.raw):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
        self.stream = self.raw = None

    # ---- the reader

    async def _read_all(self, key):
        try:
            data = await self._upgraded(key)
            decoder = ws.Decoder(self.max_message, client=True)
            while True:
                if data:
                    self.heard = ticks_ms()
                    self.pinged = False
                    try:
                        frames = decoder.feed(data)
                    except ws.ProtocolError as e:
                        raise LinkError("protocol error: %s" % e.reason)
                    for op, payload in frames:
                        await self._frame(op, payload)
                    if decoder.error:
                        raise LinkError("protocol error: %s" % decoder.error.reason)
                data = await wire.read(self.stream, self.buf)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.dead = reason(e) if not isinstance(e, EOFError) else "closed by the other side"
        finally:
            self.dead = self.dead or "link closed"
            self.alarm.set()
            for done in self.waiting.values():
                done.set()

    async def _upgraded(self, key):
        # Reads the server's answer to the upgrade; returns what followed it.
        try:
            head, end = await wire.read_head(self.stream, self.buf)
            wsclient.check_response(head[:end], key)
        except ws.HandshakeError as e:
            raise LinkError("upgrade refused: %d %s" % (e.status, e.reason))
        self.opened = True
        self.alarm.set()
        return bytes(head[end:])

    async def _frame(self, op, payload):
        if op == ws.OP_PING:
            await self.send(ws.encode(ws.OP_PONG, payload, mask=True))
        elif op == ws.OP_CLOSE:
            raise LinkError("closed by the other side")
        elif op == ws.OP_TEXT:
            try:
                msg = json.loads(payload)
            except ValueError:  # a MemoryError is no fault of the other side's
                raise LinkError("malformed JSON")
            if not isinstance(msg, dict):
                raise LinkError("a message is not an object")
            if is_request(msg):
                await self.request(msg)
            else:
                self._deliver(msg)
        elif op == ws.OP_BINARY:
            raise LinkError("binary message")

    def _deliver(self, reply):
        # To the caller waiting for it; a late or stray reply is dropped.
        rid = reply.get("id")
        done = self.waiting.get(rid) if isinstance(rid, str) else None
        if done is not None:
            self.replies[rid] = reply
            done.set()

    # ---- writing, calling, keeping time

    async def send(self, data):
        async with self.sending:
            if self.stream is None:
                raise OSError(errno.ENOTCONN)
            try:
                await wire.write(self.stream, data, self.cfg["write_timeout"] * 1000)
            except BaseException:
                # A write cut short (a timeout, a cancelled caller) leaves
                # part of a frame sent: the stream is unusable. The closed
                # socket ends the reader, and the reader work().
                wire.socket(self.stream).close()
                raise

    async def send_text(self, text):
        await self.send(ws.encode(ws.OP_TEXT, text, mask=True))

    def new_id(self):
        self.ids += 1
        return "p%d" % self.ids

    async def ask(self, req):
        # Sends request REQ (a dict; an id is given to it if it has none) and
        # returns the reply, or None when the link ends first. The caller
        # bounds the wait: cancelling it loses nothing, the reader reads on.
        rid = req["id"] = req.get("id") or self.new_id()
        done = self.waiting[rid] = asyncio.Event()
        try:
            await self.send_text(json.dumps(req))
            await done.wait()
        finally:
            del self.waiting[rid]
        return self.replies.pop(rid, None)

    async def call(self, method, params, api=None, rid=None):
        # The requests of work(): the reply within write_timeout, or LinkError.
        req = {"id": rid, "method": method, "params": params}
        if api:
            req["api"] = api
        try:
            reply = await asyncio.wait_for_ms(self.ask(req), self.cfg["write_timeout"] * 1000)
        except asyncio.TimeoutError:
            raise LinkError("no reply to %s" % method)
        if reply is None:
            raise LinkError(self.dead or "link closed")
        return reply

    async def wait(self, wait_ms):
        # Sleeps up to wait_ms, less when the reader rings the alarm (the
        # link ended, the upgrade passed, a request asked for work).
        self.alarm.clear()
        try:
            await asyncio.wait_for_ms(self.alarm.wait(), max(wait_ms, 1))
        except asyncio.TimeoutError:
            pass

    async def keep(self, wait_ms):
        # The idle time of work(): up to wait_ms, pinging the other side
        # after half of idle_timeout in silence and giving it up after all
        # of it. LinkError once the link has ended.
        if self.dead:
            raise LinkError(self.dead)
        idle = self.cfg["idle_timeout"] * 1000
        quiet = ticks_diff(ticks_ms(), self.heard)
        if quiet >= idle:
            raise LinkError("silent for %d s" % self.cfg["idle_timeout"])
        if quiet >= idle // 2 and not self.pinged:
            self.pinged = True
            await self.send(ws.encode(ws.OP_PING, b"", mask=True))
        await self.wait(min(wait_ms, (idle if self.pinged else idle // 2) - quiet))
