"""Make a data folder the firmware can run from: config.json and access.json
with a fresh self-signed certificate and one demo user.

    python -m tools.devdata DIR [--host 127.0.0.1] [--port 17000]

The demo user's token is printed once; only its SHA-256 digest is stored.
An existing folder is left untouched.

The keys, certificate frame and names here are also what the lab cloud's CA
(tools.labcloud.ca) issues its certificates from, and write_private() what
both write keys and secrets with (mode 0600).
"""
import argparse
import datetime
import hashlib
import ipaddress
import json
import os
import secrets
import sys
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

LEAF_DAYS = 825  # the longest validity clients accept for a server certificate


def new_key(kind="rsa"):
    """RSA-2048 (the default: old clients need RSA key exchange) or, with
    KIND "ec", P-256."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError("key kind %r: 'rsa' or 'ec'" % (kind,))


def key_pem(key):
    """The private key as unencrypted PKCS#8 PEM text."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def local_names(common_name):
    """The names a controller's certificate is valid for: COMMON_NAME.local,
    localhost and 127.0.0.1 (so a client verifying it on this machine works)."""
    return [common_name + ".local", "localhost", "127.0.0.1"]


def alt_names(hosts):
    """The subjectAltName extension for HOSTS (in order, each once): an IP
    address entry for an address, else a DNS name."""
    entries = []
    for host in hosts:
        try:
            entry = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            entry = x509.DNSName(host)
        if entry not in entries:
            entries.append(entry)
    return x509.SubjectAlternativeName(entries)


def cert_builder(subject, issuer, public_key, days):
    """A certificate valid from 5 minutes ago (clock skew) for DAYS, with a
    random serial and its subject key identifier; the caller adds the rest
    and signs it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def make_cert(common_name, kind="rsa", days=LEAF_DAYS):
    """A self-signed (certificate PEM, PKCS#8 key PEM) pair, RSA-2048 or P-256,
    valid for local_names(COMMON_NAME). The lab cloud's certificates
    (tools.labcloud.ca) are made from the same pieces, signed by its CA."""
    key = new_key(kind)
    subject = name(common_name)
    cert = (cert_builder(subject, subject, key.public_key(), days)
            .add_extension(alt_names(local_names(common_name)), critical=False)
            .sign(key, hashes.SHA256()))
    return cert_pem(cert), key_pem(key)


def sha256_digest(token):
    """The SHA-256 of a token's UTF-8 bytes: what the firmware compares."""
    return hashlib.sha256(token.encode()).digest()


def sha256_hex(token):
    """The same as hex text: what access.json and the lab cloud store."""
    return sha256_digest(token).hex()


def make_access(users, cert, peers=None, version=1):
    """The sync `result` shape: users {uuid: [token]}, peers {uuid: (serial, [token])}."""
    cert_pem, key_pem = cert
    return {
        "clients": {u: [sha256_hex(t) for t in tokens] for u, tokens in users.items()},
        "peers": {
            p: {"id": serial, "tokens": list(tokens)}
            for p, (serial, tokens) in (peers or {}).items()
        },
        "current": [{"certificate": cert_pem, "private": key_pem, "public_parent": cert_pem}],
        "version": version,
    }


def write_private(path, data):
    """Writes DATA (text or bytes) to a file only its owner can read, from the
    first byte on: private keys, and files that hold them or secrets."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as f:
        os.fchmod(f.fileno(), 0o600)  # a file that existed keeps its mode otherwise
        f.write(data)


def write_json(path, obj):
    # Owner-only: access.json holds the TLS private key.
    write_private(path, json.dumps(obj, indent=2))


def create(folder, host="127.0.0.1", wss_port=17000, ws_port=17001):
    """Write a new data folder; returns (config, user uuid, token)."""
    os.makedirs(folder, mode=0o700)
    serial = str(90000000 + secrets.randbelow(10000000))
    cfg = {"hub": str(uuid.uuid4()), "serial": serial, "host": host,
           "wss_port": wss_port, "ws_port": ws_port}
    user, token = str(uuid.uuid4()), secrets.token_urlsafe(24)
    access = make_access({user: [token]}, make_cert("HUB" + serial))
    write_json(os.path.join(folder, "config.json"), cfg)
    write_json(os.path.join(folder, "access.json"), access)
    return cfg, user, token


def try_command(port, user, token):
    return ("make client ARGS='wss://127.0.0.1:%d --no-verify --user %s --token=%s hub.info.get'"
            % (port, user, token))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=17000)
    args = ap.parse_args(argv)
    user_file = os.path.join(args.folder, "demo-user.txt")
    if os.path.exists(args.folder):
        print("Using the existing data folder %s." % args.folder)
        if os.path.exists(user_file):
            with open(user_file) as f:
                user = f.read().strip()
            with open(os.path.join(args.folder, "config.json")) as f:
                port = json.load(f).get("wss_port", 17000)
            print("Try it (TOKEN: the demo token printed when the folder was made):")
            print("  " + try_command(port, user, "TOKEN"))
        return 0
    cfg, user, token = create(args.folder, args.host, args.port, args.port + 1)
    with open(user_file, "w") as f:
        f.write(user + "\n")
    print("Created %s for hub %s (serial %s)." % (args.folder, cfg["hub"], cfg["serial"]))
    print("Demo user %s; its token is shown only now and stored only as a digest." % user)
    print("Try it from another terminal once the peer is listening:")
    print("  " + try_command(args.port, user, token))
    return 0


if __name__ == "__main__":
    sys.exit(main())
