"""Runs the real lab cloud (tools/labcloud) as a subprocess for end-to-end
tests, and provisions controllers from it."""
import json
import os
import socket
import ssl
import sys
import tempfile
import threading

from websockets.sync.server import serve

from host_tests.peer import free_port
from host_tests.proc import LoggedProcess
from tools.labcloud import db as lab


class Lab(LoggedProcess):
    def __init__(self, folder):
        self.folder = str(folder)
        self.path = os.path.join(self.folder, "lab.db")
        self.port = free_port()
        os.makedirs(self.folder, exist_ok=True)
        lab.init(self.path, port=self.port)
        self.db = lab.open_db(self.path)

    def start(self, *extra):
        self.spawn([sys.executable, "-m", "tools.labcloud", self.path, "serve"] + list(extra))
        self.wait_log("listening", 15)
        return self

    def controller(self, name="peer", **folder_cfg):
        """A new controller provisioned into a data folder: (uuid, folder)."""
        uuid, _serial = lab.add_controller(self.db)
        folder = os.path.join(self.folder, name)
        lab.provision(self.db, uuid, folder, wss_port=free_port(), ws_port=free_port())
        if folder_cfg:
            path = os.path.join(folder, "config.json")
            with open(path) as f:
                cfg = json.load(f)
            cfg.update(folder_cfg)
            with open(path, "w") as f:
                json.dump(cfg, f)
        return uuid, folder


class FakeCloud:
    """A misbehaving cloud: logs controllers in, then answers every sync with
    reply(request) -> text, or None to cut the connection instead. It uses
    the lab's server certificate, so the firmware trusts it."""

    def __init__(self, lab_db, reply):
        self.reply = reply
        self.port = free_port()
        self.syncs = self.logins = 0
        pem = lab.meta(lab_db, "server_cert") + lab.meta(lab_db, "server_key")
        self._dir = tempfile.mkdtemp()
        path = os.path.join(self._dir, "server.pem")
        with open(path, "w") as f:
            f.write(pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(path)
        # No pings of its own: keeping the link alive is the peer's job.
        self.server = serve(self._handle, "127.0.0.1", self.port, ssl=ctx, ping_interval=None)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "wss://127.0.0.1:%d/" % self.port

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

    def close(self):
        self.server.shutdown()
