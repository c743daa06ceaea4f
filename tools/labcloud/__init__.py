"""The lab cloud: a PC program that is the cloud for one or more ezlo-peer
controllers. It keeps their local access data in an SQLite file, issues
their certificates from a lab CA, and serves the data over WSS.

    python -m tools.labcloud DB init [--host 127.0.0.1] [--port 17443] [--ec]
    python -m tools.labcloud DB add-controller [--uuid U] [--serial S] [--ec]
    python -m tools.labcloud DB add-user CONTROLLER [--user UUID]
    python -m tools.labcloud DB provision CONTROLLER DIR [--host H] [--wss-port P] [--ws-port P] [--force]
    python -m tools.labcloud DB serve [--host H] [--port P] [--no-push]

(`--help` lists the rest: remove-controller, remove-user, rotate-cert, link,
unlink, show.) CONTROLLER is a controller's UUID or serial. The functions
below are what the CLI calls; tests use them directly.

Wire protocol of `serve`
------------------------
WSS on host:port, path "/", the cloud's certificate (signed by the lab CA,
which provisioned controllers trust through cloud-ca.pem). JSON text frames,
at most 64 KiB; websockets' default pings (20 s). Replies echo "id" and
"method"; success has "error": null, failure "result": null and
"error": {code, message, data}.

1. Login, the first request on a connection:
   {"id": X, "method": "cloud.controller.login", "params": {"hub": UUID, "token": SECRET}}
   -> result {}. SECRET is config.json's cloud_token; the database keeps its
   SHA-256 and compares digests in constant time. Unknown controller or wrong
   secret: error -32500 "Bad password" user.login.badpassword, then close
   1008. A missing hub/token: -32600 rpc.params.notfound; not strings:
   -32602 rpc.params.invalid. A second login on the connection: -32500
   "Already logged in" user.login.alreadylogged. Any other method before
   login: -32500 "Login required" user.login.required. A new login for a
   controller closes its previous connection with 1001.
2. Sync: {"id": X, "api": "3", "method": "cloud.access_keys_controller_sync",
   "params": {"version": N}} (params and version optional; "Version" works
   too) -> result {"clients": {user: [sha256 hex]}, "peers": {uuid: {"id":
   serial, "tokens": [plain]}}, "current": [{"certificate", "private",
   "public_parent"}], "version": V}: always the full current data.
3. Push: {"id": "cloud-<n>", "method": "hub.offline.credentials.updated",
   "params": {"newVersion": V}} whenever the controller's version exceeds
   the last version this connection was sent (by a sync) or told (by a
   push). Right after login that is nothing, so every login is followed by
   one push of the current version: a controller that booted from an older
   access.json learns of the newer data. The database is polled every
   0.4 s, so changes made by the CLI in another process arrive within about
   half a second. Replies to pushes (any object with "result" or "error")
   are accepted and ignored. A removed controller's connection is closed
   with 1008. `serve --no-push` sends none (to exercise a controller's
   periodic sync).
4. Otherwise: unknown method after login -32601 "Method not found"
   rpc.method.notfound; malformed JSON -32700 "Parse error" rpc.parse.error
   with "id": null (the connection stays); a request that is not an object
   with a string method -32600 rpc.request.invalid; a binary frame closes
   with 1003; another path than "/" gets HTTP 404.

`serve` logs one line per event to stdout (connect, login ok/failed, sync
served, push sent, replaced, disconnect), never a token or secret.
"""
from tools.labcloud.db import (  # noqa: F401 (the package's API)
    LabCloudError, access_data, add_controller, add_user, check_secret, detail, init, link,
    open_db, provision, remove_controller, remove_user, rotate_cert, summary, unlink, versions)
from tools.labcloud.server import run, serve_forever  # noqa: F401
