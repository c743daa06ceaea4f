"""The lab cloud's state in one SQLite file, and every change to it.

User tokens and controller secrets are kept only as SHA-256 digests. Peer
tokens are kept in plain text because the sync hands them out that way, and
the CA key is kept too: the file is created 0600 and is the lab's secret.
The CLI and a running server share the file (WAL mode); every change runs in
one IMMEDIATE transaction.
"""
import contextlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import sqlite3
import uuid as uuidlib

from tools.devdata import sha256_hex, write_private
from tools.labcloud import ca

# The firmware refuses or drops more than these (README "The data folder").
MAX_USERS, MAX_TOKENS, MAX_PEERS = 200, 16, 32
_DECOY = sha256_hex("no such controller")

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE controllers (
    uuid TEXT PRIMARY KEY,
    serial TEXT NOT NULL UNIQUE,
    version INTEGER NOT NULL DEFAULT 1,
    certificate TEXT NOT NULL,
    private TEXT NOT NULL,
    secret TEXT  -- sha256 hex of the cloud login secret, NULL until provisioned
);
CREATE TABLE tokens (
    controller TEXT NOT NULL REFERENCES controllers(uuid) ON DELETE CASCADE,
    user TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (controller, digest)
);
CREATE TABLE links (  -- one row per pair, a < b
    a TEXT NOT NULL REFERENCES controllers(uuid) ON DELETE CASCADE,
    b TEXT NOT NULL REFERENCES controllers(uuid) ON DELETE CASCADE,
    token_ab TEXT NOT NULL,
    token_ba TEXT NOT NULL,
    PRIMARY KEY (a, b),
    CHECK (a < b)
);
"""


class LabCloudError(Exception):
    """A refused command; the message is one line, safe to print."""


def _connect(path):
    db = sqlite3.connect(path, isolation_level=None, timeout=10)  # tx() opens transactions
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA foreign_keys=ON")
    return db


@contextlib.contextmanager
def tx(db):
    """One write transaction, taken at once so concurrent writers queue."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@contextlib.contextmanager
def snapshot(db):
    """Reads that see one state of the file, even while another process
    writes (a WAL read transaction); inside a write transaction, that one."""
    if db.in_transaction:
        yield db
        return
    db.execute("BEGIN")
    try:
        yield db
    finally:
        db.execute("COMMIT")


def open_db(path):
    """The database made by init(); refuses anything else."""
    if not os.path.isfile(path):
        raise LabCloudError("no database at %s (run init first)" % path)
    db = None
    try:
        db = _connect(path)  # reads the header: a foreign file fails here
        db.execute("SELECT 1 FROM meta, controllers, tokens, links LIMIT 1")
    except sqlite3.DatabaseError:
        if db is not None:
            db.close()
        raise LabCloudError("%s is not a lab cloud database" % path)
    return db


def check_host(host):
    """HOST must name this machine for controllers: an IP or a DNS name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not all(re.fullmatch(r"[A-Za-z0-9-]{1,63}", label) for label in host.split(".")):
            raise LabCloudError("--host %r is neither an IP address nor a DNS name" % host)
        return host
    if address.is_unspecified:  # it goes into the certificate and cloud_url
        raise LabCloudError("--host must be an address controllers can reach, not %s" % host)
    return host


def init(path, host="127.0.0.1", port=17443, kind="rsa"):
    """A new database with the lab CA and the cloud's server certificate."""
    check_host(host)
    refusal = LabCloudError("%s already exists; init makes a new database only" % path)
    if os.path.exists(path):
        raise refusal
    authority = ca.make_ca(kind)
    server = ca.server_cert(authority, host, kind)
    try:  # created 0600 before SQLite opens it: it holds the CA key
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise refusal
    db = _connect(path)
    try:
        with tx(db):
            for statement in _SCHEMA.split(";"):  # executescript would commit midway
                if statement.strip():
                    db.execute(statement)
            db.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("host", host), ("port", str(port)),
                ("ca_cert", authority[0]), ("ca_key", authority[1]),
                ("server_cert", server[0]), ("server_key", server[1])])
    except BaseException:  # no half-made database left behind
        db.close()
        os.unlink(path)
        raise
    return db


def meta(db, key):
    return db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]


def ca_pair(db):
    return meta(db, "ca_cert"), meta(db, "ca_key")


def _uuid(text, what):
    try:
        return str(uuidlib.UUID(text))
    except ValueError:
        raise LabCloudError("%s %r is not a UUID" % (what, text))


def resolve(db, ident):
    """(uuid, serial) of the controller named by its UUID or serial."""
    row = db.execute("SELECT uuid, serial FROM controllers WHERE uuid = lower(?) OR serial = ?",
                     (ident, ident)).fetchone()
    if row is None:
        raise LabCloudError("unknown controller %r" % ident)
    return row


def _bump(db, controller):
    db.execute("UPDATE controllers SET version = version + 1 WHERE uuid = ?", (controller,))


def _new_serial(db):
    while True:
        serial = str(10000000 + secrets.randbelow(90000000))
        if not db.execute("SELECT 1 FROM controllers WHERE serial = ?", (serial,)).fetchone():
            return serial


def add_controller(db, uuid=None, serial=None, kind="rsa"):
    """A new controller at version 1 with its own certificate set: (uuid, serial)."""
    uuid = _uuid(uuid, "--uuid") if uuid else str(uuidlib.uuid4())
    if serial is not None and not re.fullmatch(r"[A-Za-z0-9-]{1,32}", serial):
        raise LabCloudError("--serial must be 1-32 letters, digits or hyphens"
                            " (it names HUB<serial>.local)")
    with tx(db):
        serial = serial or _new_serial(db)
        if db.execute("SELECT 1 FROM controllers WHERE uuid = ? OR serial = ?",
                      (uuid, serial)).fetchone():
            raise LabCloudError("a controller with uuid %s or serial %s exists" % (uuid, serial))
        cert, key = ca.controller_cert(ca_pair(db), serial, kind)
        db.execute("INSERT INTO controllers (uuid, serial, certificate, private) VALUES (?, ?, ?, ?)",
                   (uuid, serial, cert, key))
    return uuid, serial


def _peers_of(db, controller):
    return [row[0] for row in db.execute(
        "SELECT b FROM links WHERE a = ? UNION SELECT a FROM links WHERE b = ?",
        (controller, controller))]


def remove_controller(db, controller):
    """Removes it with its users and links; its peers' data changes."""
    with tx(db):
        uuid, _ = resolve(db, controller)
        peers = _peers_of(db, uuid)
        db.execute("DELETE FROM controllers WHERE uuid = ?", (uuid,))
        for peer in peers:
            _bump(db, peer)
    return uuid


def add_user(db, controller, user=None):
    """A new token for USER (a new user when None): (user, token). The token
    is returned only here; the database keeps its SHA-256."""
    user = _uuid(user, "--user") if user else str(uuidlib.uuid4())
    token = secrets.token_urlsafe(24)
    with tx(db):
        uuid, _ = resolve(db, controller)
        tokens = db.execute("SELECT count(*) FROM tokens WHERE controller = ? AND user = ?",
                            (uuid, user)).fetchone()[0]
        users = db.execute("SELECT count(DISTINCT user) FROM tokens WHERE controller = ?",
                           (uuid,)).fetchone()[0]
        if tokens >= MAX_TOKENS:
            raise LabCloudError("user %s already has %d tokens, the most a controller takes"
                                % (user, MAX_TOKENS))
        if not tokens and users >= MAX_USERS:
            raise LabCloudError("controller has %d users, the most it takes" % MAX_USERS)
        db.execute("INSERT INTO tokens VALUES (?, ?, ?)", (uuid, user, sha256_hex(token)))
        _bump(db, uuid)
    return user, token


def remove_user(db, controller, user):
    """Removes every token of USER on that controller."""
    user = _uuid(user, "user")
    with tx(db):
        uuid, _ = resolve(db, controller)
        if not db.execute("DELETE FROM tokens WHERE controller = ? AND user = ?",
                          (uuid, user)).rowcount:
            raise LabCloudError("controller %s has no user %s" % (uuid, user))
        _bump(db, uuid)


def rotate_cert(db, controller, kind="rsa"):
    """Replaces the controller's certificate set with a new key and certificate."""
    with tx(db):
        uuid, serial = resolve(db, controller)
        cert, key = ca.controller_cert(ca_pair(db), serial, kind)
        db.execute("UPDATE controllers SET certificate = ?, private = ? WHERE uuid = ?",
                   (cert, key, uuid))
        _bump(db, uuid)


def _pair(db, a, b):
    a, b = resolve(db, a)[0], resolve(db, b)[0]
    if a == b:
        raise LabCloudError("a controller cannot be linked with itself")
    return min(a, b), max(a, b)


def link(db, a, b):
    """Peers A and B with one new plain token per direction."""
    with tx(db):
        a, b = _pair(db, a, b)
        if db.execute("SELECT 1 FROM links WHERE a = ? AND b = ?", (a, b)).fetchone():
            raise LabCloudError("%s and %s are already linked" % (a, b))
        for side in (a, b):
            if len(_peers_of(db, side)) >= MAX_PEERS:
                raise LabCloudError("controller %s has %d peers, the most it takes" % (side, MAX_PEERS))
        db.execute("INSERT INTO links VALUES (?, ?, ?, ?)",
                   (a, b, secrets.token_urlsafe(24), secrets.token_urlsafe(24)))
        _bump(db, a)
        _bump(db, b)


def unlink(db, a, b):
    with tx(db):
        a, b = _pair(db, a, b)
        if not db.execute("DELETE FROM links WHERE a = ? AND b = ?", (a, b)).rowcount:
            raise LabCloudError("%s and %s are not linked" % (a, b))
        _bump(db, a)
        _bump(db, b)


def access_data(db, controller):
    """The controller's full local access data: the sync `result`."""
    with snapshot(db):  # a version always matches the data sent with it
        return _access_data(db, resolve(db, controller)[0])


def _access_data(db, uuid):
    clients = {}
    for user, digest in db.execute(
            "SELECT user, digest FROM tokens WHERE controller = ? ORDER BY rowid", (uuid,)):
        clients.setdefault(user, []).append(digest)
    peers = {}
    for other, serial, ab, ba in db.execute(
            "SELECT c.uuid, c.serial, l.token_ab, l.token_ba FROM links l JOIN controllers c"
            " ON c.uuid = (CASE WHEN l.a = ? THEN l.b ELSE l.a END)"
            " WHERE ? IN (l.a, l.b) ORDER BY c.serial", (uuid, uuid)):
        peers[other] = {"id": serial, "tokens": [ab, ba]}
    cert, key, version = db.execute(
        "SELECT certificate, private, version FROM controllers WHERE uuid = ?", (uuid,)).fetchone()
    current = [{"certificate": cert, "private": key, "public_parent": meta(db, "ca_cert")}]
    return {"clients": clients, "peers": peers, "current": current, "version": version}


def versions(db):
    """{controller uuid: version}: the server polls this."""
    return dict(db.execute("SELECT uuid, version FROM controllers"))


def check_secret(db, hub, secret):
    """Whether SECRET is HUB's cloud secret; the same work for unknown hubs."""
    row = db.execute("SELECT secret FROM controllers WHERE uuid = ?", (hub,)).fetchone()
    stored = row[0] if row and row[0] else _DECOY
    return hmac.compare_digest(sha256_hex(secret), stored) and stored != _DECOY


def cloud_url(db):
    host = meta(db, "host")
    return "wss://%s:%s/" % ("[%s]" % host if ":" in host else host, meta(db, "port"))


def provision(db, controller, folder, host="127.0.0.1", wss_port=17000, ws_port=17001, force=False,
              peer_urls=None):
    """Writes the firmware's data folder with a new controller secret (the
    previous one stops working); returns the config written. PEER_URLS
    ({peer uuid: wss url}) tells it where to dial its peers."""
    resolve(db, controller)  # before anything is written
    if os.path.exists(folder) and not force:
        raise LabCloudError("%s exists; use --force to overwrite its files" % folder)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    secret = secrets.token_urlsafe(32)
    with tx(db):
        uuid, serial = resolve(db, controller)
        config = {"hub": uuid, "serial": serial, "host": host, "wss_port": wss_port,
                  "ws_port": ws_port, "cloud_url": cloud_url(db), "cloud_ca": "cloud-ca.pem",
                  "cloud_token": secret}
        if peer_urls:
            config["peer_urls"] = peer_urls
        write_private(os.path.join(folder, "config.json"), json.dumps(config, indent=2))
        write_private(os.path.join(folder, "cloud-ca.pem"), meta(db, "ca_cert"))
        write_private(os.path.join(folder, "access.json"),
                      json.dumps(access_data(db, uuid), indent=2))
        db.execute("UPDATE controllers SET secret = ? WHERE uuid = ?", (sha256_hex(secret), uuid))
    return config


def summary(db):
    """[(uuid, serial, version, users, peer serials)] for listings."""
    out = []
    with snapshot(db):
        rows = db.execute("SELECT uuid, serial, version FROM controllers ORDER BY serial").fetchall()
        for uuid, serial, version in rows:
            users = db.execute("SELECT count(DISTINCT user) FROM tokens WHERE controller = ?",
                               (uuid,)).fetchone()[0]
            peers = sorted(resolve(db, p)[1] for p in _peers_of(db, uuid))
            out.append((uuid, serial, version, users, peers))
    return out


def detail(db, controller):
    """One controller without secrets: its row, users {uuid: token count},
    peers {uuid: serial}, certificate description, whether provisioned."""
    with snapshot(db):
        uuid, serial = resolve(db, controller)
        version, cert, secret = db.execute(
            "SELECT version, certificate, secret FROM controllers WHERE uuid = ?", (uuid,)).fetchone()
        users = dict(db.execute("SELECT user, count(*) FROM tokens WHERE controller = ?"
                                " GROUP BY user ORDER BY min(rowid)", (uuid,)))
        peers = {p: resolve(db, p)[1] for p in _peers_of(db, uuid)}
    return {"uuid": uuid, "serial": serial, "version": version, "users": users, "peers": peers,
            "certificate": ca.describe(cert), "provisioned": secret is not None}
