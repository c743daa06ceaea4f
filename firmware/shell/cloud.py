# The link to the cloud endpoint: one WSS client connection, kept up with
# capped exponential backoff, that keeps the access data current.
#
# After the upgrade the peer logs in (cloud.controller.login {hub, token}),
# then syncs (cloud.access_keys_controller_sync) on connect, whenever the
# cloud announces a newer version (hub.offline.credentials.updated), and
# periodically. A result is applied only once all of it is valid; then it is
# persisted atomically and put in force. The local server never waits on
# any of this.

from firmware.core import rpc
from firmware.core.ticks import ticks_add, ticks_diff, ticks_ms
from firmware.flash import store
from firmware.seam import board, memory
from firmware.shell.link import Link, LinkError, error_data, jitter, reason

WANTED_TRIES = 3  # syncs that may miss an announced version before it is let go
UPDATED = "hub.offline.credentials.updated"
SYNC = "cloud.access_keys_controller_sync"
LOGIN = "cloud.controller.login"


class CloudLink(Link):
    BACKOFF_KEY = "cloud_backoff_max"

    def __init__(self, cfg, server, ca_der, access_path, log):
        super().__init__(cfg, cfg["cloud_url"], cfg["cloud_max_message"], log)
        self.server = server
        self.ca_der = ca_der
        self.path = access_path
        self.wanted = None  # a version the cloud announced that we lack
        self.wanted_tries = 0
        self.announced = False  # an announcement came while a sync was out
        self.sync_at = 0  # ticks when the next sync is due
        # Made once, while the heap is young: it needs a few KB in one piece.
        memory.collect()
        self.tls = self._tls_context()

    # ---- the life of the link

    async def run(self):
        if not self.cfg["cloud_verify"]:
            self.log("WARNING: cloud_verify is false: the cloud's certificate is NOT checked")
        await super().run()

    def down(self, why):
        self.log("cloud link down: %s" % why)

    async def work(self):
        reply = await self.call(LOGIN, {"hub": self.cfg["hub"], "token": self.cfg["cloud_token"]})
        if reply.get("error"):
            raise LinkError("login refused (%s)" % error_data(reply))
        self.log("cloud link up: %s:%d" % (self.host, self.port))
        self.sync_at = ticks_ms()  # at once on connect
        while True:
            if ticks_diff(self.sync_at, ticks_ms()) <= 0:
                self.announced = False
                ok = await self._sync()
                # Backoff ends only with a sync: a cloud that takes the
                # login and then fails must not be hammered.
                if ok:
                    self.failures = 0
                wait = self.cfg["sync_interval"] if ok else self.cfg["cloud_backoff_max"]
                self.sync_at = ticks_add(ticks_ms(), jitter(wait * 1000, 0.1))
                if self.announced and self.wanted is not None:
                    self.sync_at = ticks_ms()  # announced during this sync: once more, now
            await self.keep(ticks_diff(self.sync_at, ticks_ms()))

    def _tls_context(self):
        # None when the CA does not load: its PEM held a CERTIFICATE block
        # that the TLS stack does not parse. The CA is no secret, so the TLS
        # stack's words on it may be logged.
        from firmware.shell import tls

        try:
            return tls.client_context([self.ca_der] if self.cfg["cloud_verify"] else None)
        except (ValueError, OSError) as e:
            self.log("cloud CA %s unusable (does not load: %s): no cloud link"
                     % (self.cfg["cloud_ca"], reason(e)))
            return None

    async def request(self, msg):
        # A request from the cloud: only the credentials announcement.
        method = msg.get("method")
        rid = msg.get("id")
        try:
            if method != UPDATED:
                raise rpc.fail("rpc.method.notfound")
            params = msg.get("params")
            version = rpc.param(params if isinstance(params, dict) else {}, "newVersion", int)
        except rpc.RpcError as e:
            await self.send_text(rpc.error(rid, method, e))
            return
        await self.send_text(rpc.result(rid, method, {}))
        current = self.server.access.version
        if current is None or version > current:
            self.wanted = version
            self.announced = True
            self.sync_at = ticks_ms()  # "soon", as the API asks
            self.alarm.set()

    # ---- sync

    async def _sync(self):
        # True when the data is current afterwards.
        current = self.server.access.version
        params = {} if current is None else {"version": current}
        reply = await self.call(SYNC, params, api="3")
        if reply.get("error") or not isinstance(reply.get("result"), dict):
            self.log("cloud sync refused by the cloud (%s)" % error_data(reply))
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
        have = self.server.access.version
        if self.wanted is None or (have is not None and have >= self.wanted):
            self.wanted = None
            self.wanted_tries = 0
            return True
        if self.announced:  # a sync asked before the announcement is no try
            return False
        self.wanted_tries += 1
        if self.wanted_tries >= WANTED_TRIES:
            self.log("cloud announced version %d but serves %s: letting it go" % (self.wanted, have))
            self.wanted = None
            self.wanted_tries = 0
            return True
        return False

    async def _apply(self, result, started):
        # Returns why the result was refused, or None once it is in force.
        from firmware.core import access

        # Refused whole only for what makes the data unusable as a whole (its
        # shape, a section missing, a limit, no version, a rollback, no
        # certificate set that loads); a bad entry is dropped and logged, as
        # at start-up, so that it cannot hold back every later update.
        try:
            data, problems = access.parse(result, self.cfg, True)
        except access.AccessError as e:
            return str(e)
        finally:
            memory.release("core.access")
        current = self.server.access.version
        if data.version is None:
            return "no version"
        if current is not None and data.version < current:
            return "version %d is older than %d (rollback)" % (data.version, current)
        if data.version == current:
            self.log("cloud sync: version %d is current" % current)
            return None
        for p in problems:  # a bounded list (bounds.PROBLEMS_MAX)
            self.log("cloud data version %d: %s" % (data.version, p))
        from firmware.shell import tls

        context = tls.server_context(data, self.log)
        if context is None:
            return "no certificate set loads"
        try:
            # It holds the TLS key: owner-only where there are file modes.
            store.write_json(self.path, result, board.pause_point, True)
        except OSError as e:
            return "cannot persist (%s)" % e
        await self.server.use_access(data, context)
        self.log("access data version %d in force: %d user(s), %d peer(s) in %d ms"
                 % (data.version, len(data.clients), len(data.peers),
                    ticks_diff(ticks_ms(), started)))
        return None

