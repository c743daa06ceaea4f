# The listeners: WSS always (when a certificate loads), plain WS only while
# insecure access is on. Refuses connections over the limit before any TLS.
# One clock keeps every connection's deadlines and pings.
import asyncio

from firmware.core import ws
from firmware.core.ticks import ticks_add, ticks_diff, ticks_ms
from firmware.seam import board
from firmware.shell import wire
from firmware.shell.conn import Conn
from firmware.shell.hub import Hub

TICK_MS = 250  # how late a deadline or a ping may be


class Server:
    # The running peer: the access data and the TLS context in force, the
    # listeners, the connections, the peer links, and the hub whose methods
    # read them.
    def __init__(self, cfg, access, switches, tls, log):
        self.cfg = cfg
        self.log = log
        self.access = access
        self.tls = tls
        self.switches = switches
        self.conns = []
        self.links = None  # peers.PeerLinks, once the access data names a peer
        self.listeners = {}  # "wss" / "ws" -> asyncio server
        self.switching = asyncio.Lock()
        self.refused = 0  # refusals not yet logged
        self.refused_at = ticks_add(ticks_ms(), -1000)  # the first is logged at once
        self.hub = Hub(cfg, switches, log, self)

    async def use_access(self, data, tls):
        # New access data in force: its certificate for new connections (the
        # listener stays), sessions whose token it no longer holds end, and
        # the peer links follow it.
        self.access = data
        self.tls = tls
        if "wss" not in self.listeners:
            await self._listen("wss")
        for conn in list(self.conns):
            who = conn.session
            digests = who.role and data.digests(who.role, who.ident)
            if who.role and not (digests and who.proof in digests):
                conn.stop(ws.CLOSE_POLICY, "access revoked")
        self.follow_peers(data)

    def follow_peers(self, data):
        # The peer links' code loads only once the access data names a peer
        # to dial (max_peer_links 0 keeps it out of the heap).
        if (data.peers and self.cfg["max_peer_links"]) or self.links:
            try:
                from firmware.shell.peers import PeerLinks

                if self.links is None:
                    self.links = PeerLinks(self)
                self.links.update(data)
            except MemoryError:
                self.log("no peer links: not enough memory for them (see README, Memory)")

    async def start(self):
        asyncio.create_task(self._clock())
        if self.tls is not None:
            await self._listen("wss")
        else:
            self.log("no WSS listener until a loadable certificate arrives")
        if self.switches.get("insecure"):
            await self._listen("ws")

    async def _listen(self, kind):
        port = self.cfg["wss_port" if kind == "wss" else "ws_port"]
        host = self.cfg["host"]

        async def accept(reader, _writer):
            await self._accept(reader, kind)

        try:
            srv = await asyncio.start_server(accept, host, port, self.cfg["max_connections"])
        except OSError as e:
            if kind == "wss":
                # A peer that cannot serve WSS (its port held by another
                # program, or by a second copy of this peer) stops: running
                # on, it would claim the cloud session of the copy that
                # serves. Exit status 3 (README, "The data folder"); main.py
                # lets it through as no crash.
                self.log("cannot listen for wss on %s:%d (%s): stopping, exit status 3"
                         % (host, port, e))
                raise SystemExit(3)
            # The plain listener is optional: the switch stays on, the peer
            # serves on; switching it off and on again, or a restart, tries
            # the port again.
            self.log("cannot listen for ws on %s:%d (%s): insecure access stays on"
                     " without a plain listener" % (host, port, e))
            return
        self.listeners[kind] = srv
        self.log("listening %s %s:%d" % (kind, host, port))

    async def _accept(self, reader, kind):
        raw = sock = wire.socket(reader)
        if kind == "ws" and not self.switches.get("insecure"):
            sock.close()  # accepted just before the listener closed
            return
        if len(self.conns) >= self.cfg["max_connections"]:
            sock.close()
            self._log_refusal()
            return
        board.no_delay(sock)
        if kind == "wss":
            try:
                sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                sock.setblocking(False)
            except (OSError, MemoryError) as e:
                raw.close()
                self.log("TLS set-up failed (%s)" % e)
                return
        try:
            conn = Conn(self, raw, sock, reader.get_extra_info("peername"), kind == "wss")
        except MemoryError:  # no room for one more: refuse it like the limit does
            sock.close()
            raw.close()
            self._log_refusal()
            return
        conn.task = asyncio.current_task()
        self.conns.append(conn)
        self.log("%s connected" % conn.name)
        await conn.run()

    def _log_refusal(self):
        # At most one line a second: a flood must not flood a UART console.
        self.refused += 1
        now = ticks_ms()
        if ticks_diff(now, self.refused_at) >= 1000:
            self.log("refused %d connection(s), %d of %d open"
                     % (self.refused, len(self.conns), self.cfg["max_connections"]))
            self.refused = 0
            self.refused_at = now

    async def _clock(self):
        # Deadlines checked against the time rather than by timed reads: a
        # read cut by a timeout can lose bytes (see wire.py).
        while True:
            await asyncio.sleep_ms(TICK_MS)
            now = ticks_ms()
            for conn in self.conns:
                conn.tick(now)

    def forget(self, conn):
        if conn in self.conns:
            self.conns.remove(conn)

    async def apply_switch(self, name):
        # Brings the plain listener in line with the stored switch, one change
        # at a time, whatever order concurrent requests finished in.
        if name != "insecure":
            return
        async with self.switching:
            on = self.switches.get("insecure")
            if on and "ws" not in self.listeners:
                await self._listen("ws")
            elif not on and "ws" in self.listeners:
                self.listeners.pop("ws").close()
                self.log("stopped listening ws")
                self._close_plain()

    def _close_plain(self):
        me = asyncio.current_task()
        for conn in [c for c in self.conns if not c.secure]:
            if conn.task is me:
                conn.session.close_reason = "insecure access disabled"
            else:
                conn.stop(ws.CLOSE_GOING_AWAY, "insecure access disabled")
