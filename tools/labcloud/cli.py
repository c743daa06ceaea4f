"""`python -m tools.labcloud DB COMMAND ...`: a thin layer over tools.labcloud.db.
Errors print one line to stderr and exit 1 (argparse's own exit 2; `serve`
on an address it cannot bind, 3)."""
import argparse
import sqlite3
import sys

from tools.labcloud import db as store
from tools.labcloud import server


def _kind(args):
    return "ec" if args.ec else "rsa"


def _version(db, controller):
    return store.versions(db)[store.resolve(db, controller)[0]]


def cmd_init(args):
    db = store.init(args.db, args.host, args.port, _kind(args))
    names = ", ".join(dict.fromkeys([args.host, "localhost", "127.0.0.1"]))
    print("Created %s: lab CA (%s) and the cloud's certificate for %s."
          % (args.db, "ECDSA P-256" if args.ec else "RSA-2048", names))
    print("Serve it with: python -m tools.labcloud %s serve  (%s)" % (args.db, store.cloud_url(db)))
    db.close()


def cmd_add_controller(db, args):
    uuid, serial = store.add_controller(db, args.uuid, args.serial, _kind(args))
    print("Added controller %s, serial %s (version 1)." % (uuid, serial))


def cmd_remove_controller(db, args):
    uuid = store.remove_controller(db, args.controller)
    print("Removed controller %s with its users and links." % uuid)


def cmd_add_user(db, args):
    user, token = store.add_user(db, args.controller, args.user)
    print("User %s on controller %s (version %d)."
          % (user, store.resolve(db, args.controller)[0], _version(db, args.controller)))
    print("Token, shown only now (the cloud keeps only its SHA-256): %s" % token)


def cmd_remove_user(db, args):
    store.remove_user(db, args.controller, args.user)
    print("Removed user %s (version %d)." % (args.user, _version(db, args.controller)))


def cmd_rotate_cert(db, args):
    store.rotate_cert(db, args.controller, _kind(args))
    info = store.detail(db, args.controller)
    print("New certificate for controller %s: %s (version %d)."
          % (info["uuid"], info["certificate"], info["version"]))


def _pair_line(db, verb, args):
    a, b = store.resolve(db, args.a), store.resolve(db, args.b)
    print("%s %s (serial %s, version %d) and %s (serial %s, version %d)."
          % (verb, a[0], a[1], _version(db, a[0]), b[0], b[1], _version(db, b[0])))


def cmd_link(db, args):
    store.link(db, args.a, args.b)
    _pair_line(db, "Linked", args)


def cmd_unlink(db, args):
    store.unlink(db, args.a, args.b)
    _pair_line(db, "Unlinked", args)


def _peer_urls(db, pairs):
    """{peer uuid: url} from PEER=URL arguments (PEER a UUID or serial)."""
    urls = {}
    for pair in pairs or ():
        peer, sep, url = pair.partition("=")
        if not sep or not url.startswith("wss://"):
            raise store.LabCloudError("--peer-url wants PEER=wss://HOST:PORT/, not %r" % pair)
        urls[store.resolve(db, peer)[0]] = url
    return urls


def cmd_provision(db, args):
    cfg = store.provision(db, args.controller, args.dir, args.host, args.wss_port, args.ws_port,
                          args.force, _peer_urls(db, args.peer_url))
    print("Wrote %s for controller %s (serial %s): config.json, access.json (version %d),"
          " cloud-ca.pem." % (args.dir, cfg["hub"], cfg["serial"], _version(db, cfg["hub"])))
    print("Its new cloud secret is in config.json only; the previous one no longer logs in.")


def cmd_show(db, args):
    if args.controller:
        return _show_one(store.detail(db, args.controller))
    rows = store.summary(db)
    print("%d controller(s); cloud %s" % (len(rows), store.cloud_url(db)))
    for uuid, serial, version, users, peers in rows:
        print("%s  serial %-10s version %-4d users %-3d peers %s"
              % (uuid, serial, version, users, ", ".join(peers) or "-"))


def _show_one(info):
    print("controller %s  serial %s  version %d" % (info["uuid"], info["serial"], info["version"]))
    print("certificate: %s" % info["certificate"])
    print("cloud secret: %s"
          % ("set (provisioned)" if info["provisioned"] else "none yet (run provision)"))
    print("users (%d):" % len(info["users"]))
    for user, count in info["users"].items():
        print("  %s  %d token(s)" % (user, count))
    print("peers (%d):" % len(info["peers"]))
    for peer, serial in info["peers"].items():
        print("  %s  serial %s" % (peer, serial))


def cmd_serve(db, args):
    server.serve_forever(db, args.host, args.port, not args.no_push)


def parser():
    ap = argparse.ArgumentParser(prog="python -m tools.labcloud",
                                 description="The lab cloud for ezlo-peer controllers.")
    ap.add_argument("db", metavar="DB", help="the SQLite database file")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, func, help, *positionals):
        p = sub.add_parser(name, help=help, description=help)
        for positional in positionals:
            p.add_argument(positional, metavar=positional.upper())
        p.set_defaults(func=func)
        return p

    p = command("init", cmd_init, "create the database, the lab CA and the cloud's certificate")
    p.add_argument("--host", default="127.0.0.1", help="the address controllers reach the cloud at")
    p.add_argument("--port", type=int, default=17443)
    p.add_argument("--ec", action="store_true", help="ECDSA P-256 keys instead of RSA-2048")
    p = command("add-controller", cmd_add_controller, "add a controller with its certificate")
    p.add_argument("--uuid")
    p.add_argument("--serial")
    p.add_argument("--ec", action="store_true", help="an ECDSA P-256 key instead of RSA-2048")
    command("remove-controller", cmd_remove_controller, "remove a controller", "controller")
    p = command("add-user", cmd_add_user, "issue a token for a new user, or for --user", "controller")
    p.add_argument("--user", help="an existing user's UUID, to give it another token")
    command("remove-user", cmd_remove_user, "remove a user and its tokens", "controller", "user")
    p = command("rotate-cert", cmd_rotate_cert, "issue a new certificate set", "controller")
    p.add_argument("--ec", action="store_true", help="an ECDSA P-256 key instead of RSA-2048")
    command("link", cmd_link, "make two controllers peers", "a", "b")
    command("unlink", cmd_unlink, "undo link", "a", "b")
    p = command("provision", cmd_provision, "write a controller's data folder", "controller", "dir")
    p.add_argument("--host", default="127.0.0.1", help="the controller's bind address")
    p.add_argument("--wss-port", type=int, default=17000)
    p.add_argument("--ws-port", type=int, default=17001)
    p.add_argument("--force", action="store_true", help="write into an existing folder")
    p.add_argument("--peer-url", action="append", metavar="PEER=URL",
                   help="where this controller dials peer PEER (UUID or serial), e.g."
                        " PEER=wss://127.0.0.1:17010/; repeatable")
    p = command("show", cmd_show, "list controllers, or one controller's users and peers")
    p.add_argument("controller", nargs="?", metavar="CONTROLLER")
    p = command("serve", cmd_serve, "run the WSS endpoint until Ctrl-C")
    p.add_argument("--host", help="bind address (default: init's --host)")
    p.add_argument("--port", type=int, help="port (default: init's --port)")
    p.add_argument("--no-push", action="store_true",
                   help="send no hub.offline.credentials.updated (tests controllers' periodic sync)")
    return ap


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        if args.func is cmd_init:
            cmd_init(args)
        else:
            db = store.open_db(args.db)
            try:
                args.func(db, args)
            finally:
                db.close()
    except server.CannotListen as e:
        print("error: %s" % e.strerror, file=sys.stderr)
        return 3
    except (store.LabCloudError, OSError, sqlite3.Error) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0
