# Links to the peer controllers of the access data: one WSS client link per
# peer (up to max_peer_links), verified against the chain in
# current[].public_parent, logged in with hub.offline.login.hub and one of
# the peer's tokens. Requests go both ways over it: the peer calls our
# methods as a controller, and our users call its methods through
# hub.peer.call. The links follow the access data: a new peer gets one, a
# removed or changed one loses it. Loaded only once the data names a peer.
import asyncio
import time

from firmware.core import bounds, rpc
from firmware.core.ticks import ticks_diff, ticks_ms
from firmware.seam import board
from firmware.shell.hub import Session
from firmware.shell.link import Link, LinkError, error_data, reason

DEFAULT_PORT = 17000  # where a controller found by its .local name listens
FORWARDS = 2  # hub.peer.call requests in flight per link
LOGIN = "hub.offline.login.hub"

CONNECTING, LOGGED_IN, BACKING_OFF = "connecting", "logged in", "backing off"



class PeerLink(Link):
    BACKOFF_KEY = "peer_backoff_max"

    def __init__(self, links, uuid, peer):
        cfg = links.cfg
        url = cfg["peer_urls"].get(uuid) or "wss://HUB%s.local:%d" % (peer.serial, DEFAULT_PORT)
        super().__init__(cfg, url, cfg["peer_max_message"], links.log)
        self.name = "peer %s" % peer.serial
        # The peer as the caller of the requests it sends us (see request()).
        self.session = Session(self.name)
        self.hub = links.server.hub
        self.tls = links.tls
        self.uuid = uuid
        self.peer = peer
        self.state = CONNECTING
        self.changed = time.time()  # shown in the listing; durations use ticks
        self.up_at = 0  # ticks of the login
        self.error = None  # why the link is not logged in, while it is not
        self.first = 0  # the token to try first: the one that worked last
        self.login_id = None  # the id of our login request in flight
        self.forwards = 0  # hub.peer.call requests in flight
        self.task = None

    def _enter(self, state):
        self.state = state
        self.changed = time.time()

    def starting(self):
        self._enter(CONNECTING)

    def down(self, why):
        self.session = Session(self.name)
        self.error = why[:96]
        # The backoff ends only with a link that lasted: a peer that takes
        # the login and then drops us must not be redialled at once.
        if self.state == LOGGED_IN and ticks_diff(ticks_ms(), self.up_at) >= self.cfg["idle_timeout"] * 1000:
            self.failures = 0
        self.log("%s link down: %s (%s:%d)" % (self.name, self.error, self.host, self.port))
        self._enter(BACKING_OFF)

    async def work(self):
        started = ticks_ms()
        await self._login()
        # The peer's certificate chains to public_parent and names the
        # address we dialled: over this link it has the controller role
        # (given by _deliver).
        self.up_at = ticks_ms()
        self.error = None
        self._enter(LOGGED_IN)
        self.log("%s link up in %d ms" % (self.name, ticks_diff(self.up_at, started)))
        while True:
            await self.keep(self.cfg["idle_timeout"] * 1000)

    async def _login(self):
        # Each token once, starting with the last that worked.
        tokens = self.peer.tokens
        for i in range(len(tokens)):
            k = (self.first + i) % len(tokens)
            self.login_id = self.new_id()
            reply = await self.call(LOGIN, {"hub": self.cfg["hub"], "token": tokens[k]},
                                    rid=self.login_id)
            err = reply.get("error")
            if not err:
                self.first = k
                return
            if not (isinstance(err, dict) and err.get("data") == "user.login.badpassword"):
                raise LinkError("login refused (%s)" % error_data(reply))
        raise LinkError("login refused: none of %d token(s) accepted" % len(tokens))

    def _deliver(self, reply):
        # The reader's: a login accepted is in force from the peer's next
        # message on, which may be a request sent right after its reply.
        if reply.get("id") == self.login_id and not reply.get("error"):
            self.session.role, self.session.ident = "hub", self.uuid
        super()._deliver(reply)

    async def request(self, msg):
        # A request from the peer over the link we opened: answered as to a
        # controller once we are logged in there, refused before. A
        # controller's methods change nothing, so nothing is left to do
        # after the reply.
        if self.session.role is None:
            reply = rpc.error(msg.get("id"), msg.get("method"), rpc.fail("user.login.required"))
        else:
            reply = await self.hub.handle(self.session, msg, True)
        await self.send_text(reply)

    async def forward(self, method, params):
        # hub.peer.call: our user's request, the peer's answer, within one
        # deadline for the send and the answer.
        if self.state != LOGGED_IN:
            raise rpc.fail("hub.peer.notlinked")
        if self.forwards >= FORWARDS:
            raise rpc.fail("hub.peer.busy")
        self.forwards += 1
        try:
            reply = await asyncio.wait_for_ms(self.ask({"method": method, "params": params}),
                                              self.cfg["write_timeout"] * 1000)
        except asyncio.TimeoutError:
            raise rpc.fail("hub.peer.timeout")
        except OSError:
            raise rpc.fail("hub.peer.notlinked")
        finally:
            self.forwards -= 1
        if reply is None:  # the link went down meanwhile
            raise rpc.fail("hub.peer.notlinked")
        return _answer(reply)


def _answer(reply):
    # The peer's result, or its error raised as ours (checked and cut: it
    # reaches our user).
    err = reply.get("error")
    if err is None:
        return reply.get("result")
    if isinstance(err, dict):
        code, message, data = err.get("code"), err.get("message"), err.get("data")
        if (isinstance(code, int) and isinstance(message, str)
                and (data is None or isinstance(data, str))):
            raise rpc.RpcError(code, message[:128], data and data[:128])
    raise rpc.fail("hub.peer.badanswer")


class PeerLinks:
    def __init__(self, server):
        self.server = server
        self.cfg = server.cfg
        self.log = server.log
        self.links = {}  # peer uuid -> PeerLink
        self.parents = ()
        self.tls = None

    def update(self, data):
        # The links follow new access data.
        renewed = data.parents != self.parents
        if renewed:
            self.parents = data.parents
            self.tls = self._context(data.parents)
        held = {uuid: link.peer.tokens for uuid, link in self.links.items()}
        limit = self.cfg["max_peer_links"] if self.tls else 0
        stop, start = plan(held, data.peers, renewed, limit)
        for uuid in stop:
            self._stop(uuid)
        for uuid in start:
            link = self.links[uuid] = PeerLink(self, uuid, data.peers[uuid])
            link.task = asyncio.create_task(link.run())

    def _context(self, parents):
        # A client context that trusts only the peers' chain, or None.
        if not parents:
            if self.server.access.peers:
                self.log("no public_parent in the access data: no peer links")
            return None
        from firmware.shell import tls

        try:
            return tls.client_context(parents)
        except (ValueError, OSError) as e:
            self.log("public_parent does not load (%s): no peer links" % reason(e))
            return None

    def _stop(self, uuid):
        link = self.links.pop(uuid)
        link.task.cancel()  # its clean-up closes the sockets
        self.log("%s link closed: access data changed" % link.name)

    async def answer(self, listing, params):
        # hub.peer.links.list, or hub.peer.call: the request goes over our
        # link to that peer, and its answer (result or error) is ours.
        if listing:
            return {"links": self.status()}
        peer = rpc.param(params, "peer", str, bounds.ID_MAX)
        method = rpc.param(params, "method", str, bounds.ECHO_MAX)
        try:
            inner = rpc.param(params, "params", dict)
        except rpc.RpcError as e:
            if e.code != rpc.BAD_REQUEST:
                raise
            inner = {}
        link = self.links.get(peer)
        if link is None:
            raise rpc.fail("hub.peer.notlinked")
        return await link.forward(method, inner)

    def status(self):
        # One entry per peer and direction: what hub.peer.links.list reports.
        peers = self.server.access.peers
        idle = "not linked (%s)" % ("max_peer_links" if self.tls else "no public_parent")
        out = []
        for uuid, peer in peers.items():
            link = self.links.get(uuid)
            if link is None:
                out.append(_entry(uuid, peer.serial, "out", idle, 0, None))
            else:
                out.append(_entry(uuid, peer.serial, "out", link.state, link.changed, link.error))
        for conn in self.server.conns:
            who = conn.session
            if who.role == "hub" and who.ident in peers:
                out.append(_entry(who.ident, peers[who.ident].serial, "in", LOGGED_IN, who.since, None))
        return out


def plan(held, peers, renewed, limit):
    # Which links stop and which start, given the links held ({uuid: their
    # tokens}) and the new data's peers: a link ends when its peer is gone,
    # its tokens changed or the trust chain did (renewed); peers without a
    # link get one, in the data's order, while fewer than `limit` are held.
    stop = [u for u, tokens in held.items()
            if renewed or u not in peers or peers[u].tokens != tokens]
    count = len(held) - len(stop)
    start = []
    for uuid in peers:
        if count >= limit:
            break
        if uuid not in held or uuid in stop:
            start.append(uuid)
            count += 1
    return stop, start


def _entry(uuid, serial, direction, state, since, error):
    return {"peer": uuid, "serial": serial, "direction": direction, "state": state,
            "since": board.localtime(since) if since else None, "error": error}
