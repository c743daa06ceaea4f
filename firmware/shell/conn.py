# One client connection: WebSocket upgrade, then frames in, replies out.
# Its task reads without a timeout (see wire.py); the server's clock keeps
# its deadlines (tick) and sends its keepalive pings.
import asyncio

from firmware.core import ws
from firmware.core.ticks import ticks_add, ticks_diff, ticks_ms
from firmware.seam import board, memory
from firmware.shell import wire
from firmware.shell.hub import Session

READ_CHUNK = 256
LINGER_MS = 500
LINGER_BYTES = 16384
PING = ws.encode(ws.OP_PING)


class Conn:
    def __init__(self, server, raw, sock, addr, secure):
        self.server = server
        self.raw = raw
        self.hub = server.hub
        self.cfg = server.cfg
        self.log = server.log
        self.sock = sock
        self.stream = asyncio.StreamReader(sock)
        self.buf = bytearray(READ_CHUNK)
        ip, port = board.peer(addr)
        self.name = "%s:%d/%s" % (ip, port, "wss" if secure else "ws")
        self.session = Session(self.name, ip)
        self.secure = secure
        self.task = None
        self.why = "closed"  # for the log line at the end
        self._stop = None  # (close code or None, why) once it must end
        # The clock's business: a deadline for the upgrade and the linger,
        # and while serving the time of the last frame, the login deadline
        # and the next ping.
        self.due = ticks_add(ticks_ms(), self.cfg["handshake_timeout"] * 1000)
        self.last_rx = None
        self.login_by = 0
        self.ping_at = 0

    def stop(self, code, why):
        # From another task: end this connection now, with a close frame of
        # CODE when it has one. The task is waiting (for bytes, a write or a
        # method) and takes a CancelledError there.
        if self._stop is None:
            self._stop = (code, why)
        self.task.cancel()

    def tick(self, now):
        # The server's clock, a few times a second.
        if self.due is not None:  # upgrading or lingering
            if ticks_diff(now, self.due) >= 0:
                self.due = None
                self.stop(None, "timed out")
            return
        if self.last_rx is None or self._stop:
            return
        cfg = self.cfg
        if ticks_diff(now, ticks_add(self.last_rx, cfg["idle_timeout"] * 1000)) >= 0:
            self.stop(ws.CLOSE_GOING_AWAY, "idle timeout")
        elif (self.session.role is None and not self.hub.switches.get("anonymous")
              and ticks_diff(now, self.login_by) >= 0):
            self.stop(ws.CLOSE_POLICY, "login timeout")
        elif ticks_diff(now, self.ping_at) >= 0 and wire.write_now(self.stream, PING):
            self.ping_at = ticks_add(now, cfg["ping_interval"] * 1000)

    async def run(self):
        try:
            await self._life()
        except asyncio.CancelledError:  # stopped by the clock or another task
            code, self.why = self._stop or (None, "closed")
            if code and not wire.writing(self.stream):
                await self._guarded(self._close(code, self.why))
        except Exception as e:
            if self._stop is None:  # not while saying goodbye: keep what we sent
                self.why = self._failure(e)
        finally:
            self.sock.close()
            # mbedTLS leaves the TCP socket open after a failed handshake.
            self.raw.close()
            self.server.forget(self)
            self.log("%s %s" % (self.name, self.why))
            memory.collect()  # hand the connection's memory back whole

    async def _guarded(self, coro):
        # The last words of a stopped connection: whatever goes wrong, or a
        # second stop, ends them quietly.
        try:
            await coro
        except (asyncio.CancelledError, Exception):
            pass

    def _failure(self, e):
        if isinstance(e, asyncio.TimeoutError):
            return "timed out"
        if isinstance(e, (OSError, EOFError)):
            return "connection lost"
        if isinstance(e, MemoryError):
            return "closed: out of memory"
        from firmware.seam import faults

        return "closed: internal error %s" % faults.describe(e)  # a bug: log it, free the slot

    async def _life(self):
        rest = await self._upgrade()
        if rest is not None:
            await self._serve(rest)

    async def _send(self, data):
        await wire.write(self.stream, data, self.cfg["write_timeout"] * 1000)

    async def _upgrade(self):
        # Returns the bytes that followed the request head, or None.
        try:
            head, end = await wire.read_head(self.stream, self.buf)
            key = ws.parse_request(head[:end])[1]
        except ws.HandshakeError as e:
            self.log("%s bad upgrade: %d %s" % (self.name, e.status, e.reason))
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
        self.due = ticks_add(ticks_ms(), LINGER_MS)
        if self._stop is None:  # no close frame after this one
            self._stop = (None, self.why)
        left = LINGER_BYTES
        try:
            while left > 0:
                left -= len(await wire.read(self.stream, self.buf))
        except (EOFError, OSError):
            pass

    async def _serve(self, pending):
        cfg = self.cfg
        decoder = ws.Decoder(cfg["max_message"])
        now = ticks_ms()
        self.login_by = ticks_add(now, cfg["login_timeout"] * 1000)
        self.ping_at = ticks_add(now, cfg["ping_interval"] * 1000)
        self.last_rx = now
        self.due = None  # from here on the clock watches last_rx and login_by
        while True:
            if pending:
                try:
                    events = decoder.feed(pending)
                except ws.ProtocolError as e:
                    return await self._close(e.code, e.reason)
                for op, payload in events:  # the frames before an error too
                    self.last_rx = ticks_ms()
                    if await self._event(op, payload):
                        return
                if decoder.error:
                    return await self._close(decoder.error.code, decoder.error.reason)
            pending = await wire.read(self.stream, self.buf)

    async def _event(self, op, payload):
        # True when the connection ends.
        if op == ws.OP_TEXT:
            reply = await self.hub.handle(self.session, payload)
            await self._send(ws.encode(ws.OP_TEXT, reply))
            if self.session.close_reason:
                await self._close(ws.CLOSE_POLICY, self.session.close_reason)
                return True
        elif op == ws.OP_BINARY:
            await self._close(ws.CLOSE_UNSUPPORTED, "binary messages not supported")
            return True
        elif op == ws.OP_PING:
            await self._send(ws.encode(ws.OP_PONG, payload))
        elif op == ws.OP_CLOSE:
            try:
                code = ws.parse_close(payload)[0]
            except ws.ProtocolError as e:
                await self._close(e.code, e.reason)
                return True
            # The client said its last word: reply and hang up first (RFC 6455 7.1.1).
            await self._send(ws.encode(ws.OP_CLOSE, ws.close_payload(code or ws.CLOSE_NORMAL)))
            self.why = "closed by client"
            return True
        return False

    async def _close(self, code, reason):
        # The log names what we sent, whatever the client does meanwhile.
        self.why = "closed %d %s" % (code, reason)
        await self._send(ws.encode(ws.OP_CLOSE, ws.close_payload(code, reason)))
        await self._linger()
