"""The WSS endpoint behind `serve` (the protocol is described in
tools.labcloud). One task per connection plus one that polls the database,
so changes made by the CLI in another process reach connected controllers."""
import asyncio
import datetime
import itertools
import json
import os
import signal
import sqlite3
import ssl
import tempfile

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from tools.labcloud import db as store

POLL_S = 0.4
MAX_MESSAGE = 64 * 1024
LOGIN, SYNC, PUSH = ("cloud.controller.login", "cloud.access_keys_controller_sync",
                     "hub.offline.credentials.updated")
PARSE = (-32700, "Parse error", "rpc.parse.error")
INVALID = (-32600, "Bad request", "rpc.request.invalid")
NOT_FOUND = (-32601, "Method not found", "rpc.method.notfound")
MISSING = (-32600, "Bad request", "rpc.params.notfound")
WRONG = (-32602, "Wrong params", "rpc.params.invalid")
BAD_PASSWORD = (-32500, "Bad password", "user.login.badpassword")
ALREADY = (-32500, "Already logged in", "user.login.alreadylogged")
REQUIRED = (-32500, "Login required", "user.login.required")


def log(text, *args):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(stamp, text % args, flush=True)


def reply(request, result=None, error=None):
    if error is not None:
        error = dict(zip(("code", "message", "data"), error, strict=True))
    return json.dumps({"id": request.get("id"), "method": request.get("method"),
                       "error": error, "result": result})


def params_of(request):
    """The request's params object ({} when absent), or None when not an object."""
    params = request.get("params")
    if params is None:
        return {}
    return params if isinstance(params, dict) else None


def param(params, name):
    """params[name], matched exactly first, then case-insensitively (API-NOTES 1)."""
    if name in params:
        return params[name]
    for key, value in params.items():
        if isinstance(key, str) and key.lower() == name:
            return value
    return None


class Session:
    """A logged-in controller connection and the last version it was told."""

    def __init__(self, ws, hub, peer):
        self.ws, self.hub, self.peer, self.told = ws, hub, peer, 0


class Cloud:
    def __init__(self, db, push=True):
        self.db = db
        self.push = push
        self.sessions = {}  # hub uuid -> Session: one connection per controller
        self.push_ids = itertools.count(1)
        self.tasks = set()  # closes and pushes must not block the caller

    def spawn(self, coro):
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def handler(self, ws):
        peer = "%s:%s" % ws.remote_address[:2]
        log("connect %s", peer)
        session = None
        try:
            async for message in ws:
                session = await self.handle(ws, peer, session, message)
        except ConnectionClosed:
            pass
        finally:
            if session and self.sessions.get(session.hub) is session:
                del self.sessions[session.hub]
            log("disconnect %s%s", peer, " hub %s" % session.hub if session else "")

    async def handle(self, ws, peer, session, message):
        """Answers one message; returns the connection's session (or None)."""
        if isinstance(message, bytes):
            await ws.close(1003, "binary messages are not part of the API")
            return session
        try:
            request = json.loads(message)
        except ValueError:
            await ws.send(reply({}, error=PARSE))
            return session
        if isinstance(request, dict) and ("result" in request or "error" in request):
            return session  # a controller's answer to a push
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            await ws.send(reply({"id": request.get("id")} if isinstance(request, dict) else {},
                                error=INVALID))
            return session
        method = request["method"]
        if method == LOGIN:
            return await self.login(ws, peer, session, request)
        if session is None:
            await ws.send(reply(request, error=REQUIRED))
        elif method == SYNC:
            await self.sync(session, request)
        else:
            await ws.send(reply(request, error=NOT_FOUND))
        return session

    async def login(self, ws, peer, session, request):
        if session is not None:
            await ws.send(reply(request, error=ALREADY))
            return session
        params = params_of(request)
        if params is None:
            await ws.send(reply(request, error=WRONG))
            return None
        hub, token = param(params, "hub"), param(params, "token")
        if hub is None or token is None:
            await ws.send(reply(request, error=MISSING))
            return None
        if not (isinstance(hub, str) and isinstance(token, str)):
            await ws.send(reply(request, error=WRONG))
            return None
        versions = store.versions(self.db)
        if not store.check_secret(self.db, hub, token):
            # Only a known UUID reaches the log: the field could hold anything.
            log("login failed %s hub %s", peer, hub if hub in versions else "(unknown)")
            await ws.send(reply(request, error=BAD_PASSWORD))
            await ws.close(1008, "bad password")
            return None
        session = Session(ws, hub, peer)
        old = self.sessions.get(hub)
        self.sessions[hub] = session
        if old is not None:
            log("replaced %s hub %s by %s", old.peer, hub, peer)
            self.spawn(old.ws.close(1001, "replaced by a new connection"))
        await ws.send(reply(request, result={}))
        log("login ok %s hub %s", peer, hub)
        # Nothing was told on this connection yet: the controller may have
        # booted from an older access.json.
        await self.notify(session, versions[hub])
        return session

    async def sync(self, session, request):
        params = params_of(request)
        had = None if params is None else param(params, "version")
        if params is None or not (had is None or type(had) is int):
            await session.ws.send(reply(request, error=WRONG))
            return
        try:
            data = store.access_data(self.db, session.hub)
        except store.LabCloudError:  # removed since the last poll
            await session.ws.close(1008, "controller removed")
            return
        session.told = max(session.told, data["version"])
        await session.ws.send(reply(request, result=data))
        log("sync served hub %s version %d (controller had %s)", session.hub, data["version"],
            "none" if had is None else had)

    async def notify(self, session, version):
        """Pushes VERSION if it is newer than what the connection was told."""
        if not self.push or version <= session.told:
            return
        session.told = version
        push = {"id": "cloud-%d" % next(self.push_ids), "method": PUSH,
                "params": {"newVersion": version}}
        try:
            await session.ws.send(json.dumps(push))
        except ConnectionClosed:
            return
        log("push sent hub %s newVersion %d", session.hub, version)

    async def poll(self):
        while True:
            await asyncio.sleep(POLL_S)
            try:
                versions = store.versions(self.db)
            except sqlite3.Error as e:  # a busy or replaced file: try again
                log("database poll failed: %s", e)
                continue
            for hub, session in list(self.sessions.items()):
                if hub not in versions:
                    del self.sessions[hub]
                    log("controller removed: closing %s hub %s", session.peer, hub)
                    self.spawn(session.ws.close(1008, "controller removed"))
                elif self.push and versions[hub] > session.told:
                    self.spawn(self.notify(session, versions[hub]))


def tls_context(db):
    """A server context with the cloud's certificate from the database."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # No TLS 1.3 session tickets: controllers never resume sessions, and a
    # ticket arriving just after the handshake races the first write of a
    # threaded client (websockets.sync on CPython < 3.13 reads and writes one
    # SSL object from two threads); about one upgrade in a thousand was lost.
    ctx.num_tickets = 0
    with tempfile.TemporaryDirectory() as tmp:  # ssl loads keys from files only
        path = os.path.join(tmp, "server.pem")
        store.write_private(path, store.meta(db, "server_cert") + store.meta(db, "server_key"))
        ctx.load_cert_chain(path)
    return ctx


def _only_root(connection, request):
    if request.path != "/":
        return connection.respond(404, "Not Found: the cloud endpoint is /\n")
    return None


class CannotListen(OSError):
    """The endpoint's address cannot be bound (another cloud holds the port,
    most likely): `serve` exits with status 3 and this one line."""


async def run(db, host=None, port=None, stop=None, push=True):
    """Serves until STOP (an asyncio.Event) is set; port 0 picks a free one.
    The 'listening on wss://host:port/' line says it is ready; an address
    that cannot be bound raises CannotListen. PUSH False sends no
    announcements (to exercise controllers' periodic sync)."""
    host = host or store.meta(db, "host")
    port = int(store.meta(db, "port")) if port is None else port
    stop = stop or asyncio.Event()
    cloud = Cloud(db, push)
    tls = tls_context(db)
    try:
        server = await serve(cloud.handler, host, port, ssl=tls, max_size=MAX_MESSAGE,
                             compression=None, process_request=_only_root)
    except OSError as e:
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        raise CannotListen(e.errno, "cannot listen on %s:%d (%s)" % (host, port, reason)) from e
    async with server:
        bound = server.sockets[0].getsockname()[1]
        log("listening on wss://%s:%d/ (%d controllers%s)", host, bound, len(store.versions(db)),
            "" if push else "; announcements off")
        poller = asyncio.create_task(cloud.poll())
        await stop.wait()
        poller.cancel()
    log("stopped")


def serve_forever(db, host=None, port=None, push=True):
    """run() until SIGINT or SIGTERM."""
    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(db, host, port, stop, push)
    asyncio.run(main())
