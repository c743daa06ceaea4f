# One client connection: WebSocket upgrade, then frames in, replies out,
# with every wait bounded by a deadline. All writes happen in this task.
import asyncio
import gc

from firmware import board, ws
from firmware.ticks import ticks_add, ticks_diff, ticks_ms

READ_CHUNK = 256
LINGER_MS = 500
LINGER_BYTES = 16384


async def read_some(stream, buf, wait_ms):
    # How many bytes were read into buf, or 0 when wait_ms passes first;
    # EOFError when the other side hangs up. TLS may wake us with no
    # application data yet (handshake progress): keep waiting then.
    deadline = ticks_add(ticks_ms(), wait_ms)
    while True:
        left = ticks_diff(deadline, ticks_ms())
        if left <= 0:
            return 0
        try:
            n = await asyncio.wait_for_ms(stream.readinto(buf), left)
        except asyncio.TimeoutError:
            return 0
        if n == 0:
            raise EOFError
        if n is not None:
            return n


async def write_all(stream, data, wait_ms):
    # Stream.write sends at once what the socket takes; only a remainder
    # waits for the event loop, whose every round costs a poll (1 ms on the
    # unix port once two TLS sockets are open).
    stream.write(data)
    if stream.out_buf:  # type: ignore[attr-defined]  # (a stub gap)
        await asyncio.wait_for_ms(stream.drain(), wait_ms)


class Conn:
    def __init__(self, server, raw, sock, addr, secure):
        self.server = server
        self.raw = raw
        self.hub = server.hub
        self.cfg = server.cfg
        self.sock = sock
        self.stream = asyncio.StreamReader(sock)
        self.buf = bytearray(READ_CHUNK)
        ip, port = board.peer(addr)
        self.addr = ip
        self.name = "%s:%d/%s" % (ip, port, "wss" if secure else "ws")
        self.secure = secure
        self.role = None
        self.ident = None
        self.proof = None  # digest of the token this session logged in with
        self.since = 0  # time.time() of the login
        self.fails = 0
        self.task = None
        self._after = []
        self._close_reason = None
        self._kick = None

    # Called by the methods while a request is handled.
    def after_reply(self, make_coro):
        self._after.append(make_coro)

    def close_after_reply(self, reason):
        self._close_reason = reason

    def kick(self, code, reason):
        # From another task: stop this connection now.
        self._kick = (code, reason)
        self.task.cancel()

    async def run(self):
        why = "closed"
        try:
            rest = await self._upgrade()
            if rest is not None:
                why = await self._serve(rest)
        except asyncio.TimeoutError:
            why = "timed out"
        except (OSError, EOFError):
            why = "connection lost"
        except MemoryError:
            why = "closed: out of memory"
        except Exception as e:  # a bug: log it, free the slot
            why = "closed: internal error %s" % type(e).__name__
        finally:
            if self._kick:
                why = self._kick[1]
                self._write_close_now(*self._kick)
            self.sock.close()
            # mbedTLS leaves the TCP socket open after a failed handshake.
            self.raw.close()
            self.server.forget(self)
            self.hub.log("%s %s" % (self.name, why))
            gc.collect()  # a quiet point: hand the connection's memory back whole

    async def _read(self, wait_ms):
        # A view of the bytes read into self.buf (valid until the next read),
        # or b"" when wait_ms passes first.
        n = await read_some(self.stream, self.buf, wait_ms)
        return memoryview(self.buf)[:n] if n else b""

    async def _send(self, data):
        await write_all(self.stream, data, self.cfg["write_timeout"] * 1000)

    async def _upgrade(self):
        # Returns the bytes that followed the request head, or None.
        deadline = ticks_add(ticks_ms(), self.cfg["handshake_timeout"] * 1000)
        head = bytearray()  # grows in place: a small heap fragments less
        while True:
            chunk = await self._read(ticks_diff(deadline, ticks_ms()))
            if not chunk:
                raise asyncio.TimeoutError
            head.extend(chunk)
            try:
                end = ws.head_complete(head)
                if end < 0:
                    continue
                key = ws.parse_request(head[:end])[1]
            except ws.HandshakeError as e:
                self.hub.log("%s bad upgrade: %d %s" % (self.name, e.status, e.reason))
                await self._send(ws.reject_response(e.status, e.reason))
                await self._linger()
                return None
            await self._send(ws.accept_response(key))
            return bytes(head[end:])

    async def _linger(self):
        # Closing with unread input makes TCP reset the connection, and the
        # reset can destroy our last words (an HTTP error, a close frame)
        # before the client reads them: swallow what the client is still
        # sending, briefly and boundedly, until it hangs up.
        left = LINGER_BYTES
        deadline = ticks_add(ticks_ms(), LINGER_MS)
        while left > 0:
            chunk = await self._read(ticks_diff(deadline, ticks_ms()))
            if not chunk:
                return
            left -= len(chunk)

    async def _serve(self, pending):
        cfg = self.cfg
        decoder = ws.Decoder(cfg["max_message"])
        start = ticks_ms()
        self.last_rx = start
        login_by = ticks_add(start, cfg["login_timeout"] * 1000)
        next_ping = ticks_add(start, cfg["ping_interval"] * 1000)
        while True:
            if pending:
                try:
                    events = decoder.feed(pending)
                except ws.ProtocolError as e:
                    return await self._close(e.code, e.reason)
                for op, payload in events:
                    self.last_rx = ticks_ms()
                    why = await self._event(op, payload)
                    if why:
                        return why
            now = ticks_ms()
            idle_by = ticks_add(self.last_rx, cfg["idle_timeout"] * 1000)
            if ticks_diff(idle_by, now) <= 0:
                return await self._close(ws.CLOSE_GOING_AWAY, "idle timeout")
            must_login = self.role is None and not self.hub.switches.get("anonymous")
            if must_login and ticks_diff(login_by, now) <= 0:
                return await self._close(ws.CLOSE_POLICY, "login timeout")
            if ticks_diff(next_ping, now) <= 0:
                await self._send(ws.encode(ws.OP_PING))
                next_ping = ticks_add(now, cfg["ping_interval"] * 1000)
            wake = min(ticks_diff(next_ping, now), ticks_diff(idle_by, now))
            if must_login:
                wake = min(wake, ticks_diff(login_by, now))
            # The decoder may keep slices of its input: give it a copy.
            pending = bytes(await self._read(max(wake, 1)))

    async def _event(self, op, payload):
        # Returns why the connection ends, or None to go on.
        if op == ws.OP_TEXT:
            reply = await self.hub.handle(self, payload)
            try:
                await self._send(ws.encode(ws.OP_TEXT, reply))
            finally:  # a change made is applied even if the reply is lost
                while self._after:
                    await self._after.pop(0)()
            if self._close_reason:
                return await self._close(ws.CLOSE_POLICY, self._close_reason)
        elif op == ws.OP_BINARY:
            return await self._close(ws.CLOSE_UNSUPPORTED, "binary messages not supported")
        elif op == ws.OP_PING:
            await self._send(ws.encode(ws.OP_PONG, payload))
        elif op == ws.OP_CLOSE:
            try:
                code = ws.parse_close(payload)[0]
            except ws.ProtocolError as e:
                return await self._close(e.code, e.reason)
            # The client said its last word: reply and hang up first (RFC 6455 7.1.1).
            await self._send(ws.encode(ws.OP_CLOSE, ws.close_payload(code or ws.CLOSE_NORMAL)))
            return "closed by client"
        return None

    async def _close(self, code, reason):
        await self._send(ws.encode(ws.OP_CLOSE, ws.close_payload(code, reason)))
        await self._linger()
        return "closed %d %s" % (code, reason)

    def _write_close_now(self, code, reason):
        # Cancelled tasks cannot await: one non-blocking best-effort write,
        # unless half a frame is still queued (it would corrupt the stream).
        if self.stream.out_buf:  # type: ignore[attr-defined]  # (a stub gap)
            return
        try:
            self.sock.write(ws.encode(ws.OP_CLOSE, ws.close_payload(code, reason)))
        except Exception:
            pass
