"""Call one JSON-RPC method on an Ezlo peer over WebSocket and print the reply.

    python -m tools.ezlo_cli wss://127.0.0.1:17000 --no-verify \\
        --user UUID --token=TOKEN hub.info.get '{}'

With --via-peer PEER_UUID the method runs on that peer controller instead,
through this one's link to it (hub.peer.call); the reply printed is the
peer's result or error.

Exit status: 0 on a result, 1 on an error reply (or a refused login),
2 when the connection fails.
"""
import argparse
import json
import ssl
import sys

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect


def tls_context(url, args):
    if not url.startswith("wss:"):
        return None
    if args.no_verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=args.cafile)


def call(ws, rid, method, params, timeout):
    ws.send(json.dumps({"id": str(rid), "method": method, "params": params}))
    while True:
        reply = json.loads(ws.recv(timeout=timeout))
        if reply.get("id") == str(rid):  # pushes carry other ids
            return reply


def login_request(args):
    if args.user:
        return "hub.offline.login.ui", {"user": args.user, "token": args.token}
    if args.hub:
        return "hub.offline.login.hub", {"hub": args.hub, "token": args.token}
    return None


def run(args, params):
    with connect(args.url, ssl=tls_context(args.url, args), open_timeout=args.timeout,
                 max_size=2 ** 20) as ws:
        login = login_request(args)
        if login:
            reply = call(ws, 1, login[0], login[1], args.timeout)
            err = reply.get("error")
            if err and err.get("data") != "user.login.alreadylogged":
                print(json.dumps(reply, indent=2))
                return 1
        method = args.method
        if args.via_peer:
            method, params = "hub.peer.call", {"peer": args.via_peer, "method": method,
                                               "params": params}
        reply = call(ws, 2, method, params, args.timeout)
    print(json.dumps(reply, indent=2))
    return 1 if reply.get("error") else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", help="wss://HOST:17000 or ws://HOST:17001")
    ap.add_argument("method")
    ap.add_argument("params", nargs="?", default="{}", help="JSON object")
    ap.add_argument("--user", help="log in as this user (UUID) first")
    ap.add_argument("--hub", help="log in as this controller (UUID) first")
    ap.add_argument("--token", help="the access token for --user or --hub; write --token=TOKEN,"
                    " since a token may start with '-'")
    ap.add_argument("--no-verify", action="store_true",
                    help="accept any server certificate (self-signed peers)")
    ap.add_argument("--cafile", help="verify the server certificate against this CA file")
    ap.add_argument("--via-peer", metavar="PEER_UUID",
                    help="call the method on this peer controller through the link to it")
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args(argv)
    if (args.user or args.hub) and not args.token:
        ap.error("--user/--hub need --token")
    try:
        params = json.loads(args.params)
    except ValueError as e:
        ap.error("params are not JSON: %s" % e)
    if not isinstance(params, dict):
        ap.error("params must be a JSON object")
    try:
        return run(args, params)
    except (OSError, TimeoutError, WebSocketException) as e:
        print("connection to %s failed: %s" % (args.url, e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
