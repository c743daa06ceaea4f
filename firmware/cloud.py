# The link to the cloud endpoint: one WSS client connection, kept up with
# capped exponential backoff, that keeps the access data current.
#
# After the upgrade the peer logs in (cloud.controller.login {hub, token}),
# then syncs (cloud.access_keys_controller_sync) on connect, whenever the
# cloud announces a newer version (hub.offline.credentials.updated), and
# periodically. A result is applied only once all of it is valid; then it is
# persisted atomically and put in force. The local server never waits on
# any of this.
import asyncio
import errno
import gc
import json
import os
import socket

from firmware import board, rpc, store, ws
from firmware.conn import read_some
from firmware.ticks import ticks_add, ticks_diff, ticks_ms

try:
    import ssl
except ImportError:
    ssl = None

BACKOFF_MIN_MS = 1000
RESOLVE_EVERY = 8  # failed connects before the cloud's name is looked up again
WANTED_TRIES = 3  # syncs that may miss an announced version before it is let go
FLOOD = 16  # requests from the cloud while a reply is awaited
UPDATED = "hub.offline.credentials.updated"
SYNC = "cloud.access_keys_controller_sync"
LOGIN = "cloud.controller.login"


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


def _jitter(ms, spread):
    # ms scaled by a random factor in [1 - spread, 1]
    r = int.from_bytes(os.urandom(2), "big") / 65535
    return int(ms * (1 - spread * r))


class CloudLink:
    def __init__(self, cfg, server, ca_der, access_path, log):
        self.cfg = cfg
        self.server = server
        self.hub = server.hub
        self.ca_der = ca_der
        self.path = access_path
        self.log = log
        self.host, self.port, self.url_path = parse_url(cfg["cloud_url"])
        self.failures = 0
        self.ids = 0
        self.addr = None  # the cloud's resolved address
        self.raw = None  # the TCP socket under the TLS one
        self.stream = None
        self.decoder = None
        self.pending = []  # decoded frames not yet handled
        self.buf = bytearray(512)
        self.wanted = None  # a version the cloud announced that we lack
        self.wanted_tries = 0
        self.sync_at = 0  # ticks when the next sync is due
        self.heard = 0  # ticks when the cloud last sent anything
        self.pinged = False
        # Made once, while the heap is young: it needs a few KB in one piece.
        gc.collect()
        self.tls = self._tls_context()

    # ---- the life of the link

    async def run(self):
        if not self.cfg["cloud_verify"]:
            self.log("WARNING: cloud_verify is false: the cloud's certificate is NOT checked")
        while True:
            try:
                await self._session()
            except (OSError, ValueError, EOFError, LinkError, asyncio.TimeoutError) as e:
                self.log("cloud link down: %s" % _reason(e))
            except Exception as e:  # MemoryError, or a bug: the link must live on
                self.log("cloud link down: %s" % type(e).__name__)
            finally:
                self._close()
                gc.collect()
            cap = self.cfg["cloud_backoff_max"] * 1000
            delay = min(cap, BACKOFF_MIN_MS << min(self.failures, 16))
            self.failures += 1
            if self.failures % RESOLVE_EVERY == 0:
                self.addr = None
            await asyncio.sleep_ms(_jitter(delay, 0.5))

    async def _session(self):
        await self._connect()
        reply = await self._call(LOGIN, {"hub": self.cfg["hub"], "token": self.cfg["cloud_token"]})
        if reply.get("error"):
            raise LinkError("login refused (%s)" % _error_data(reply))
        self.log("cloud link up: %s:%d" % (self.host, self.port))
        self.sync_at = ticks_ms()  # at once on connect
        while True:
            if ticks_diff(self.sync_at, ticks_ms()) <= 0:
                ok = await self._sync()
                # Backoff ends only with a sync: a cloud that takes the
                # login and then fails must not be hammered.
                if ok:
                    self.failures = 0
                wait = self.cfg["sync_interval"] if ok else self.cfg["cloud_backoff_max"]
                self.sync_at = ticks_add(ticks_ms(), _jitter(wait * 1000, 0.1))
            msg = await self._receive(max(ticks_diff(self.sync_at, ticks_ms()), 1))
            if _is_request(msg):
                await self._request(msg)

    def _tls_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.cfg["cloud_verify"]:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=self.ca_der)
        else:
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    async def _connect(self):
        # TCP, TLS (verified against the configured CA), then the upgrade.
        # The TLS handshake runs inside the first write and read, each
        # bounded by a deadline.
        timeout = self.cfg["handshake_timeout"] * 1000
        if self.addr is None:
            # A name lookup blocks the loop on a board: done once, and again
            # only after repeated failures (an IP address needs none).
            self.addr = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0][-1]
        self.raw = socket.socket()
        self.raw.setblocking(False)
        try:
            self.raw.connect(self.addr)
        except OSError as e:
            if e.errno != errno.EINPROGRESS:
                raise
        sock = self.tls.wrap_socket(self.raw, server_hostname=self.host,
                                    do_handshake_on_connect=False)
        sock.setblocking(False)
        self.stream = asyncio.StreamReader(sock)
        self.heard = ticks_ms()
        self.pinged = False
        key = ws.new_key()
        await self._send(ws.client_request("%s:%d" % (self.host, self.port), self.url_path, key))
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
            ws.check_response(head[:end], key)
        except ws.HandshakeError as e:
            raise LinkError("upgrade refused: %d %s" % (e.status, e.reason))
        self.decoder = ws.Decoder(self.cfg["cloud_max_message"], client=True)
        self.pending = self.decoder.feed(bytes(head[end:]))

    def _close(self):
        # Both sockets: mbedTLS leaves the TCP one open after a failed handshake.
        for sock in (self.stream and self.stream.s, self.raw):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
        self.stream = self.raw = None

    # ---- frames and messages

    async def _read(self, wait_ms):
        # Bytes read, or b"" when wait_ms passes first.
        n = await read_some(self.stream, self.buf, wait_ms)
        return bytes(memoryview(self.buf)[:n])

    async def _send(self, data):
        self.stream.write(data)
        await asyncio.wait_for_ms(self.stream.drain(), self.cfg["write_timeout"] * 1000)

    async def _send_text(self, text):
        await self._send(ws.encode(ws.OP_TEXT, text, mask=True))

    async def _receive(self, wait_ms):
        # The next JSON message, or None when wait_ms passes first. After
        # half of idle_timeout in silence the cloud is pinged; a cloud silent
        # for all of it is taken for dead.
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
                raise LinkError("cloud silent for %d s" % self.cfg["idle_timeout"])
            if quiet >= idle // 2 and not self.pinged:
                self.pinged = True
                await self._send(ws.encode(ws.OP_PING, b"", mask=True))
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
                    raise LinkError("protocol error from the cloud: %s" % e.reason)

    async def _frame(self, op, payload):
        if op == ws.OP_PING:
            await self._send(ws.encode(ws.OP_PONG, payload, mask=True))
        elif op == ws.OP_CLOSE:
            raise LinkError("closed by the cloud")
        elif op == ws.OP_TEXT:
            try:
                msg = json.loads(payload)
            except Exception:  # ValueError, or MemoryError on absurd input
                raise LinkError("malformed JSON from the cloud")
            if isinstance(msg, dict):
                return msg
            raise LinkError("a message from the cloud is not an object")
        elif op == ws.OP_BINARY:
            raise LinkError("binary message from the cloud")
        return None

    async def _call(self, method, params, api=None):
        # Sends a request and returns its reply; requests that arrive from
        # the cloud meanwhile are answered on the way.
        self.ids += 1
        rid = "p%d" % self.ids
        req = {"id": rid, "method": method, "params": params}
        if api:
            req["api"] = api
        await self._send_text(json.dumps(req))
        deadline = ticks_add(ticks_ms(), self.cfg["write_timeout"] * 1000)
        handled = 0
        while True:
            msg = await self._receive(ticks_diff(deadline, ticks_ms()))
            if msg is None:
                raise LinkError("no reply to %s" % method)
            if _is_request(msg):
                handled += 1
                if handled > FLOOD:
                    raise LinkError("the cloud floods requests instead of replying")
                await self._request(msg)
            elif msg.get("id") == rid:
                return msg

    async def _request(self, msg):
        # A request from the cloud: only the credentials announcement.
        method = msg.get("method")
        rid = msg.get("id")
        try:
            if method != UPDATED:
                raise rpc.method_not_found()
            params = msg.get("params")
            version = rpc.param(params if isinstance(params, dict) else {}, "newVersion", int)
        except rpc.RpcError as e:
            await self._send_text(rpc.error(rid, method, e))
            return
        await self._send_text(rpc.result(rid, method, {}))
        current = self.hub.access.version
        if current is None or version > current:
            self.wanted = version
            self.sync_at = ticks_ms()  # "soon", as the API asks

    # ---- sync

    async def _sync(self):
        # True when the data is current afterwards.
        current = self.hub.access.version
        params = {} if current is None else {"version": current}
        reply = await self._call(SYNC, params, api="3")
        if reply.get("error") or not isinstance(reply.get("result"), dict):
            self.log("cloud sync refused by the cloud (%s)" % _error_data(reply))
            return False
        started = ticks_ms()
        why = await self._apply(reply["result"], started)
        if why:
            self.log("cloud sync: data refused, keeping version %s: %s" % (current, why))
            return False
        return self._caught_up()

    def _caught_up(self):
        # Whether the data reached the version the cloud announced; a cloud
        # that keeps serving less is believed after a few tries.
        have = self.hub.access.version
        if self.wanted is None or (have is not None and have >= self.wanted):
            self.wanted = None
            self.wanted_tries = 0
            return True
        self.wanted_tries += 1
        if self.wanted_tries >= WANTED_TRIES:
            self.log("cloud announced version %d but serves %s: letting it go" % (self.wanted, have))
            self.wanted = None
            self.wanted_tries = 0
            return True
        return False

    async def _apply(self, result, started):
        # Returns why the result was refused, or None once it is in force.
        from firmware import access

        try:
            data, problems = access.parse(result, self.cfg)
        except access.AccessError as e:
            return str(e)
        finally:
            board.unload("access")
        if problems:
            return "%d problem(s), first: %s" % (len(problems), problems[0])
        current = self.hub.access.version
        if data.version is None:
            return "no version"
        if current is not None and data.version < current:
            return "version %d is older than %d (rollback)" % (data.version, current)
        if data.version == current:
            return None
        from firmware.app import tls_context

        tls = tls_context(data)
        if tls is None:
            return "no certificate set loads"
        try:
            store.write_json(self.path, result, board.pause_point)
        except OSError as e:
            return "cannot persist (%s)" % e
        await self.server.use_access(data, tls)
        self.log("access data version %d in force: %d user(s), %d peer(s) in %d ms"
                 % (data.version, len(data.clients), len(data.peers),
                    ticks_diff(ticks_ms(), started)))
        return None


def _is_request(msg):
    # Replies carry "result" or "error"; stray ones are dropped.
    return msg is not None and "method" in msg and "result" not in msg and "error" not in msg


def _error_data(reply):
    # The cloud's words, quoted and cut: they reach a console.
    err = reply.get("error")
    return repr(err.get("data"))[:64] if isinstance(err, dict) else "no result"


def _reason(e):
    # Exception text for the log (mbedTLS wraps its own in newlines); errors
    # here never carry secrets.
    return str(e).strip() or type(e).__name__
