# The methods this peer answers, and who may call them.
import asyncio
import json
import time

from firmware.core import auth, bounds, rpc
from firmware.seam import board, memory

VERSION = "0.1.0"


def _uptime(s):
    return "%dd %dh %dm %ds" % (s // 86400, s // 3600 % 24, s // 60 % 60, s % 60)


class Session:
    # Who is at the other end of a connection, or of a link we opened, as
    # the methods see it: the connection or the link owns it, the login
    # fills it in.
    def __init__(self, name, addr=None):
        self.name = name
        self.addr = addr  # for the login throttle; None on our own links
        self.role = None  # "user" or "hub" once logged in
        self.ident = None
        self.proof = None  # digest of the token it logged in with
        self.since = 0  # time.time() of the login
        self.fails = 0
        self.close_reason = None  # set by a method: close after the reply


class Hub:
    # The methods. What they read or change of the running peer (the access
    # data, the connections, the switches' listener, the peer links) is the
    # shell's (server.py), given here when the hub is made.
    def __init__(self, cfg, switches, log, shell):
        self.cfg = cfg
        self.switches = switches
        self.log = log
        self.shell = shell
        self.throttle = auth.Throttle(cfg["login_delay_ms"], cfg["login_delay_max_ms"])

    def allowed(self, session):
        return session.role is not None or self.switches.get("anonymous")

    async def handle(self, session, data, decoded=False):
        # One request in (text, or an object already decoded), one reply
        # string out.
        rid = method = None
        try:
            rid, method, params = rpc.check(data) if decoded else rpc.parse(data)
            return rpc.result(rid, method, await self._call(session, method, params))
        except rpc.RequestError as e:
            return rpc.error(e.rid, e.method, e.err)
        except rpc.RpcError as e:
            return rpc.error(rid, method, e)
        except MemoryError:  # the heap, not the client: said as such
            self.log("%s %s: out of memory" % (session.name, method or "request"))
            return rpc.error(rid, method, rpc.fail("hub.memory.exhausted"))
        except Exception as e:  # a bug here must not take the connection down
            # The type and place only: a message could quote a parameter.
            from firmware.seam import faults

            self.log("%s %s failed: %s" % (session.name, method, faults.describe(e)))
            return rpc.error(rid, method, rpc.fail("hub.internal.error"))

    async def _call(self, session, method, params):
        # A table of small ints and one dispatcher: every function object
        # costs RAM on the board, a dict entry to an int almost none.
        kind = METHODS.get(method)
        if kind is None:
            raise rpc.fail("rpc.method.notfound")
        if kind > _PUBLIC and not self.allowed(session):
            raise rpc.fail("user.login.required")
        if kind > _CONTROLLER and session.role == "hub":
            raise rpc.fail("hub.method.notallowed")
        if kind >= _LINKS and session.role is None:
            # Peer links act with this controller's credentials: never for
            # an anonymous caller.
            raise rpc.fail("user.login.required")
        if kind == _LOGIN:
            return await self._login(session, "user" if method.endswith(".ui") else "hub", params)
        if kind == _INFO:
            return self.info(session)
        if kind == _SWITCH:
            return await self.set_switch(session, "insecure" if "insecure" in method else "anonymous", params)
        if kind == _DIAGNOSTICS:
            return self.diagnostics()
        if kind == _INVENTORY:
            return json.loads(INVENTORY[method])
        links = self.shell.links
        if links is None:  # no peers in the access data
            if kind == _LINKS:
                return {"links": []}
            raise rpc.fail("hub.peer.notlinked")
        return await links.answer(kind == _LINKS, params)

    async def _login(self, session, role, params):
        ident = rpc.param(params, role, str, bounds.ID_MAX)
        token = rpc.param(params, "token", str, bounds.TOKEN_MAX)
        if session.role is not None:
            raise rpc.fail("user.login.alreadylogged")
        digests = self.shell.access.digests(role, ident)
        proof = auth.digest(token)
        if auth.check(digests, proof, self.cfg["max_tokens_per_user"]):
            # The proof is kept to end the session if a sync revokes it.
            session.role, session.ident, session.proof = role, ident, proof
            session.since = time.time()
            self.throttle.succeeded(session.addr)
            self.log("%s logged in as %s %s" % (session.name, role, ident))
            return {}
        session.fails += 1
        delay = self.throttle.failed(session.addr)
        self.log("%s failed login %d as %s" % (session.name, session.fails, role))
        await asyncio.sleep(delay / 1000)
        if session.fails >= self.cfg["max_failed_logins"]:
            session.close_reason = "too many failed logins"
        raise rpc.fail("user.login.badpassword")

    def info(self, session):
        # Before login: enough for a client to learn whether it must log in.
        on = self.switches.get
        res = {
            "serial": self.cfg["serial"],
            "uuid": self.cfg["hub"],
            "model": self.cfg["model"],
            "firmware": VERSION,
            "offlineAnonymousAccess": on("anonymous"),
            "offlineInsecureAccess": on("insecure"),
        }
        if self.allowed(session):
            res["architecture"] = board.architecture()
            res["hardware"] = board.hardware()
            res["kernel"] = board.kernel()
            res["uptime"] = _uptime(board.uptime_s())
            res["localtime"] = board.localtime()
            # GC heap free now, without a collection (hub.diagnostics.get
            # collects first): cheap enough for every call.
            res["freeMemory"] = memory.heap()[1]
        return res

    async def set_switch(self, session, name, params):
        on = rpc.param(params, "enabled", bool)
        if on != self.switches.get(name):
            try:
                self.switches.set(name, on)
            except OSError as e:  # flash full or failing: nothing changed
                self.log("cannot save %s access: %s" % (name, e))
                raise rpc.fail("hub.storage.failed")
            self.log("%s set %s access %s" % (session.name, name, "on" if on else "off"))
            # In force before the reply: a client that reads it finds the
            # listener as the switch says.
            await self.shell.apply_switch(name)
        return {}

    def diagnostics(self):
        alloc, free = memory.heap(collect=True)
        return {"heapAlloc": alloc, "heapFree": free,
                "connections": len(self.shell.conns), "modules": memory.resident()}


# Kinds in order of who may call them: up to _PUBLIC anyone, up to
# _CONTROLLER a peer controller too, above it users (from _LINKS on, only
# users who logged in).
_LOGIN, _INFO, _DIAGNOSTICS, _INVENTORY, _SWITCH, _LINKS, _VIA_PEER = 0, 1, 2, 3, 4, 5, 6
_PUBLIC = _INFO
_CONTROLLER = _INVENTORY

METHODS = {
    "hub.offline.login.ui": _LOGIN,
    "hub.offline.login.hub": _LOGIN,
    "hub.info.get": _INFO,
    "hub.offline.anonymous_access.set": _SWITCH,
    "hub.offline.anonymous_access.enabled.set": _SWITCH,
    "hub.offline.insecure_access.enabled.set": _SWITCH,
    "hub.diagnostics.get": _DIAGNOSTICS,
    "hub.peer.links.list": _LINKS,
    "hub.peer.call": _VIA_PEER,
}

# An empty inventory: clients take stock right after login and keep working
# when each list is well formed and empty. Kept as text, parsed per call.
INVENTORY = {
    "hub.devices.list": '{"devices": []}',
    "hub.items.list": '{"items": []}',
    "hub.room.list": "[]",
    "hub.scenes.list": '{"scenes": []}',
    "hub.data.list": '{"devices": [], "items": [], "rooms": [], "scenes": []}',
    "hub.modes.get": '{"current": "1", "modes": [{"_id": "1", "name": "Home"}]}',
}
for _name in INVENTORY:
    METHODS[_name] = _INVENTORY
