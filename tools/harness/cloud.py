"""Runs the real lab cloud (tools/labcloud) as a subprocess for end-to-end
tests, and provisions controllers from it."""
import contextlib
import json
import os
import socket
import ssl
import sys
import tempfile
import threading

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve

from tools.devdata import write_private
from tools.harness.peer import PORT_ATTEMPTS, config_of, configure, free_port, listen_ports
from tools.harness.proc import LoggedProcess
from tools.harness.wait import WAIT, wait_until
from tools.labcloud import ca as lab_ca
from tools.labcloud import db as lab


class Lab(LoggedProcess):
    def __init__(self, folder):
        self.folder = str(folder)
        self.path = os.path.join(self.folder, "lab.db")
        self.port = free_port()
        os.makedirs(self.folder, exist_ok=True)
        lab.init(self.path, port=self.port)
        self.db = lab.open_db(self.path)
        self.provisioned = []  # folders whose cloud_url follows a new port

    def start(self, *extra, move_port=True):
        """Serves (EXTRA: more `serve` options) and waits until it listens.
        A port taken by another process (exit status 3, see free_port)
        moves the cloud to a new one, PORT_ATTEMPTS times at most, and the
        folders provisioned here with it; MOVE_PORT False, for a restart
        while a peer dials the old port, fails the test instead."""
        for _ in range(PORT_ATTEMPTS):
            self.spawn([sys.executable, "-m", "tools.labcloud", self.path, "serve"] + list(extra))
            line = self.wait_log("listening on|error: cannot listen", 30)
            if "listening on" in line:
                return self
            assert self.wait_exit() == 3, line
            assert move_port, "the cloud's port was taken while it was down: " + line
            self.move_port()
        raise AssertionError("ports taken %d times in a row" % PORT_ATTEMPTS)

    def move_port(self):
        self.port = free_port()
        with lab.tx(self.db):
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'port'", (str(self.port),))
        for folder in self.provisioned:
            configure(folder, cloud_url=lab.cloud_url(self.db))

    def controller(self, name="peer", **folder_cfg):
        """A new controller provisioned into a data folder: (uuid, folder)."""
        uuid, _serial = lab.add_controller(self.db)
        return uuid, self.provision(uuid, name, **folder_cfg)

    def provision(self, uuid, name, **folder_cfg):
        """UUID's data folder NAME with its current access data and free
        ports, FOLDER_CFG written over its config.json; returns the folder."""
        folder = os.path.join(self.folder, name)
        lab.provision(self.db, uuid, folder, **listen_ports())
        self.provisioned.append(folder)
        if folder_cfg:
            configure(folder, **folder_cfg)
        return folder


class WssServer:
    """A websockets server over TLS on 127.0.0.1 that hands every connection
    to self._handle; PEM holds its certificate and key."""

    def __init__(self, pem):
        with tempfile.TemporaryDirectory() as folder:  # the key leaves no file behind
            path = os.path.join(folder, "server.pem")
            write_private(path, pem)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(path)
        # No pings of its own: keeping a link alive is the peer's job. Port
        # 0: the system picks a free one as it binds, so nobody can take it.
        self.server = serve(self._handle, "127.0.0.1", 0, ssl=ctx, ping_interval=None)
        self.port = self.server.socket.getsockname()[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "wss://127.0.0.1:%d/" % self.port

    def close(self):
        self.server.shutdown()


class FakeCloud(WssServer):
    """A misbehaving cloud: logs controllers in, then answers every sync with
    reply(request) -> text, or None to cut the connection instead. It uses
    the lab's server certificate, so the firmware trusts it."""

    def __init__(self, lab_db, reply):
        self.reply = reply
        self.syncs = self.logins = 0
        super().__init__(lab.meta(lab_db, "server_cert") + lab.meta(lab_db, "server_key"))

    def _handle(self, ws):
        for text in ws:
            req = json.loads(text)
            if "method" not in req or "result" in req:
                continue  # a reply to something we sent
            if req["method"] != "cloud.access_keys_controller_sync":
                self.logins += 1
                ws.send(json.dumps({"id": req["id"], "method": req["method"],
                                    "error": None, "result": {}}))
                continue
            self.syncs += 1
            answer = self.reply(req)
            if answer is None:
                ws.socket.shutdown(socket.SHUT_RDWR)
                return
            ws.send(answer)


BACKOFF_MAX = 2  # peer_backoff_max of the peers a Pair makes, in seconds


class Pair:
    """Controllers a and b, linked in the lab cloud, each with one user, each
    dialling the other at its local port."""

    def __init__(self, cloud, run_folder, **cfg):
        # run_folder(folder, users) starts the firmware on a data folder.
        self.cloud = cloud
        self.a, self.b = (lab.add_controller(cloud.db)[0] for _ in range(2))
        lab.link(cloud.db, self.a, self.b)
        self.users = {u: lab.add_user(cloud.db, u) for u in (self.a, self.b)}
        cfg = dict(peer_backoff_max=BACKOFF_MAX, sync_interval=3600, **cfg)
        self.folders = {u: cloud.provision(u, name, **cfg) for u, name in ((self.a, "a"), (self.b, "b"))}
        self.run_folder = run_folder
        for _ in range(PORT_ATTEMPTS):
            ports = {u: self.config(u)["wss_port"] for u in self.folders}
            for u, other in ((self.a, self.b), (self.b, self.a)):
                configure(self.folders[u], peer_urls={other: "wss://127.0.0.1:%d/" % ports[other]})
            self.peers = {u: self.start(u) for u in (self.a, self.b)}
            if all(p.cfg["wss_port"] == ports[u] for u, p in self.peers.items()):
                return
            # One moved to new ports (see Peer.start) after the other was
            # told the old: both again, each told where the other is now.
            for p in self.peers.values():
                p.stop()
        raise AssertionError("ports taken %d times in a row" % PORT_ATTEMPTS)

    def config(self, uuid):
        return config_of(self.folders[uuid])

    def start(self, uuid, move_ports=True):
        """Starts UUID's peer; after the first start the other dials it at
        its port, so a restart passes MOVE_PORTS False."""
        user, token = self.users[uuid]
        return self.run_folder(self.folders[uuid], {user: [token]}, move_ports=move_ports)

    @contextlib.contextmanager
    def user_session(self, uuid):
        p = self.peers[uuid]
        with p.connect() as ws:
            assert p.login(ws)["error"] is None
            yield ws


class FakeController(WssServer):
    """The far end of a peer's link, made here: a websockets server with a
    certificate issued by CA for HUB<serial> (naming NAMES, if given), that
    logs the peer in when it presents one of TOKENS and then sends the
    SCRIPT requests; the EARLY requests it sends before it answers the
    login. Requests of
    the peer's own (other than its login) go unanswered, or with HANGUP make
    it close the connection."""

    def __init__(self, ca, serial, tokens, script=(), hangup=False, names=None, early=()):
        self.tokens = tokens
        self.script = script
        self.early = early
        self.hangup = hangup
        self.received = []
        if names is None:  # the lab's usual names, 127.0.0.1 among them
            pair = lab_ca.controller_cert(ca, serial)
        else:
            pair = lab_ca.issue(ca, "HUB" + serial, names, client=True)
        super().__init__("".join(pair))

    def _handle(self, ws):
        try:
            for text in ws:
                msg = json.loads(text)
                self.received.append(msg)
                if msg.get("method") == "hub.offline.login.hub":
                    self._send_all(ws, "early", self.early)
                    ok = msg["params"]["token"] in self.tokens
                    err = None if ok else {"code": -32500, "message": "Bad password",
                                          "data": "user.login.badpassword"}
                    ws.send(json.dumps({"id": msg["id"], "method": msg["method"],
                                        "error": err, "result": {} if ok else None}))
                    self._send_all(ws, "fake", self.script if ok else ())
                elif "method" in msg and self.hangup:
                    ws.close()
        except ConnectionClosed:
            pass

    @staticmethod
    def _send_all(ws, prefix, requests):
        for i, (method, params) in enumerate(requests):
            ws.send(json.dumps({"id": "%s%d" % (prefix, i), "method": method, "params": params}))

    def answers(self, count, timeout=WAIT, prefix="fake"):
        def got():
            answered = [m for m in self.received if str(m.get("id")).startswith(prefix)]
            return answered if len(answered) >= count else None
        return wait_until(got, timeout, lambda: "%d answers to the %s requests: %r"
                          % (count, prefix, self.received))
