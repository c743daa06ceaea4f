"""Local access data: the `result` of cloud.access_keys_controller_sync.

Validated once on load and reduced to what logins and TLS need: user token
digests as 32 raw bytes, peer tokens with their digests, and certificate sets
converted from PEM to DER (the board's TLS stack takes DER only). Exception
messages and problem strings end up in logs, so they never quote a token, a
digest or key text.
"""
import binascii

# The records live in auth, which stays loaded: this module's code leaves
# the heap after start-up, and methods defined here would pin it there.
from firmware.core import bounds
from firmware.core.auth import Access, Peer, digest  # noqa: F401 (re-exported)


class AccessError(ValueError):
    """The data is refused as a whole; the message is safe to log."""


# Defaults sized for the board's heap; parse(limits=...) overrides them.
_LIMITS = {"max_users": bounds.USERS_MAX, "max_tokens_per_user": bounds.TOKENS_PER_USER_MAX,
           "max_peers": bounds.PEERS_MAX, "token_max": bounds.TOKEN_MAX,
           "max_certs": bounds.CERTS_MAX}
# Problems kept per parse (bounds.PROBLEMS_MAX): the rest are counted, so
# that bad data can fill neither the heap nor the console with them.
_KEY_LABELS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")
_ENCRYPTED = "encrypted private key not supported"
_MALFORMED = "malformed PEM"


def _b64(body):
    # Both ports' a2b_base64 silently skip foreign characters, so decode and
    # re-encode: only canonical base64 (what every PEM writer emits) survives.
    try:
        der = binascii.a2b_base64(body)
    except ValueError:
        der = b""
    if not der or binascii.b2a_base64(der).strip() != body.encode():
        raise AccessError(_MALFORMED)
    return der


def _marker(line, kind):
    # Label of "-----<kind> LABEL-----"
    head = "-----" + kind + " "
    label = line[len(head):-5]
    if not (line.startswith(head) and line.endswith("-----") and label):
        raise AccessError(_MALFORMED)
    return label


def pem_blocks(text):
    """[(label, der)] for every PEM block in text, in order."""
    blocks = []
    label = None
    body = []
    for line in text.split("\n"):
        line = line.strip()  # drops "\r" and indentation
        if label is None:
            if line.startswith("-----"):
                label = _marker(line, "BEGIN")
            # other lines outside blocks are explanatory text (RFC 7468)
        elif line.startswith("-----"):
            if _marker(line, "END") != label:
                raise AccessError(_MALFORMED)
            blocks.append((label, _b64("".join(body))))
            label = None
            body = []
        else:
            body.append(line)
    if label is not None:
        raise AccessError(_MALFORMED)
    return blocks


def der_cert(pem):
    """DER of the first CERTIFICATE block."""
    for label, der in pem_blocks(pem):
        if label == "CERTIFICATE":
            return der
    raise AccessError("no CERTIFICATE block")


def der_key(pem):
    """DER of the first unencrypted private key block (PKCS#8, RSA or EC)."""
    # Legacy encrypted keys carry headers the base64 check would only call
    # malformed; say what is really wrong.
    if "Proc-Type: 4,ENCRYPTED" in pem:
        raise AccessError(_ENCRYPTED)
    for label, der in pem_blocks(pem):
        if label == "ENCRYPTED PRIVATE KEY":
            raise AccessError(_ENCRYPTED)
        if label in _KEY_LABELS:
            return der
    raise AccessError("no private key block")


def _chain(pem):
    chain = [der for label, der in pem_blocks(pem) if label == "CERTIFICATE"]
    if pem.strip() and not chain:
        raise AccessError("no CERTIFICATE block")
    return chain


class _Problems:
    # The list of problems as parse() fills it, bounded (bounds.PROBLEMS_MAX).
    def __init__(self):
        self.kept = []
        self.more = 0

    def append(self, line):
        if len(self.kept) < bounds.PROBLEMS_MAX:
            self.kept.append(line)
        else:
            self.more += 1

    def lines(self):
        if self.more:
            self.kept.append("%d more problem(s) not shown" % self.more)
        return self.kept


def _cap(count, limit, where):
    if count > limit:
        raise AccessError("%s: more than %d entries" % (where, limit))


def _section(obj, name, kind, problems, strict):
    if name not in obj:
        if strict:
            raise AccessError(name + ": missing")
        problems.append(name + ": missing")
        return kind()
    if not isinstance(obj[name], kind):
        raise AccessError(name + ": wrong type")
    return obj[name]


def _version(value, problems):
    if value is None or (bounds.is_int(value) and value >= 0):
        return value
    problems.append("version: not a non-negative integer")
    return None


def _where(section, key, problems):
    # Ids are logged and compared with login params: keep them short and
    # printable so neither a log line nor a lookup can be garbled.
    if (isinstance(key, str) and 0 < len(key) <= bounds.ID_MAX
            and all(" " < c <= "~" for c in key)):
        return "%s[%s]" % (section, key)
    problems.append(section + ": dropped an id that is not 1-64 printable ASCII chars")
    return None


def _unhex(text):
    if not isinstance(text, str):
        return None
    text = text.strip()  # unhexlify takes either case
    if len(text) != 64:
        return None
    try:
        return binascii.unhexlify(text)
    except ValueError:
        return None


def _token_list(where, items, limits, problems, what):
    # ITEMS when a list of at most max_tokens_per_user entries (logins check
    # a fixed number of slots, and more would not fit); else None.
    most = limits["max_tokens_per_user"]
    if not isinstance(items, list):
        problems.append("%s: not a list, %s dropped" % (where, what))
    elif len(items) > most:
        problems.append("%s: more than %d tokens, %s dropped" % (where, most, what))
    else:
        return items
    return None


def _user(where, hexes, limits, problems):
    hexes = _token_list(where, hexes, limits, problems, "user")
    if hexes is None:
        return None
    digests = []
    for i, text in enumerate(hexes):
        raw = _unhex(text)
        if raw is None:
            problems.append("%s[%d]: not a SHA-256 hex digest" % (where, i))
        else:
            digests.append(raw)
    # An empty list is a user whose tokens were all revoked: no problem.
    if hexes and not digests:
        problems.append(where + ": no valid digest, user dropped")
    return tuple(digests)


def _peer(where, info, limits, problems):
    if not isinstance(info, dict):
        problems.append(where + ": not an object, peer dropped")
        return None
    serial = info.get("id")
    if bounds.is_int(serial):
        serial = str(serial)
    if not isinstance(serial, str) or not serial:
        problems.append(where + ".id: not a non-empty string, peer dropped")
        return None
    tokens = _token_list(where + ".tokens", info.get("tokens"), limits, problems, "peer")
    if tokens is None:
        return None
    most = limits["token_max"]
    good = []
    for i, token in enumerate(tokens):
        if isinstance(token, str) and 0 < len(token) <= most:
            good.append(token)
        else:
            problems.append("%s.tokens[%d]: not a string of 1-%d chars" % (where, i, most))
    if tokens and not good:
        problems.append(where + ": no valid token, peer dropped")
    return Peer(serial, tuple(good)) if good else None


def _convert(convert, entry, name):
    text = entry.get(name)
    if not isinstance(text, str):
        raise AccessError(name + ": not a string")
    try:
        return convert(text)
    except AccessError as e:
        raise AccessError(name + ": " + str(e))


# ---- does the key belong to the certificate?
# MicroPython's TLS stack takes a key that does not match its certificate,
# and then fails every handshake. A short DER walk finds the public key in
# both: the certificate's SubjectPublicKeyInfo, and what the private key
# holds of it (RSA: modulus and exponent; EC: the public point, which SEC1
# keys carry when the writer put it there, as OpenSSL and the lab cloud do).

_SEQ, _INT, _BITS, _OCTETS, _OID = 0x30, 0x02, 0x03, 0x04, 0x06
_RSA = b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01"  # 1.2.840.113549.1.1.1
_EC = b"\x2a\x86\x48\xce\x3d\x02\x01"  # 1.2.840.10045.2.1
_NOT_DER = "not DER"


def _tlv(der, i, end):
    # (tag, start, end) of the element at der[i], which must end by end.
    if i + 2 > end:
        raise AccessError(_NOT_DER)
    tag, n = der[i], der[i + 1]
    i += 2
    if n & 0x80:  # long form: n & 0x7f length bytes follow
        k = n & 0x7F
        if not 0 < k <= 3 or i + k > end:
            raise AccessError(_NOT_DER)
        n = int.from_bytes(der[i:i + k], "big")
        i += k
    if i + n > end:
        raise AccessError(_NOT_DER)
    return tag, i, i + n


def _child(der, item, tag, n):
    # The n-th element (from 0) inside item, which must be a `tag`.
    if item[0] != tag:
        raise AccessError(_NOT_DER)
    child = (0, 0, item[1])
    for _ in range(n + 1):
        child = _tlv(der, child[2], item[2])
    return child


def _value(der, item, tag):
    if item[0] != tag:
        raise AccessError(_NOT_DER)
    return der[item[1]:item[2]]


def _int(der, item):
    # An INTEGER's magnitude, leading zero bytes dropped.
    if item[0] != _INT:
        raise AccessError(_NOT_DER)
    i = item[1]
    while i < item[2] - 1 and der[i] == 0:
        i += 1
    return der[i:item[2]]


def _bits(der, item):
    # (start, end) of a BIT STRING's bytes; it must have no unused bits.
    if item[0] != _BITS or item[1] >= item[2] or der[item[1]]:
        raise AccessError(_NOT_DER)
    return item[1] + 1, item[2]


def _cert_public(der):
    # (algorithm, public key) of a certificate's SubjectPublicKeyInfo.
    tbs = _child(der, _tlv(der, 0, len(der)), _SEQ, 0)
    # [0] version (v1 has none), serial, signature, issuer, validity,
    # subject, subjectPublicKeyInfo
    spki = _child(der, tbs, _SEQ, 6 if _child(der, tbs, _SEQ, 0)[0] == 0xA0 else 5)
    alg = _value(der, _child(der, _child(der, spki, _SEQ, 0), _SEQ, 0), _OID)
    start, end = _bits(der, _child(der, spki, _SEQ, 1))
    if alg == _RSA:  # the bits are RSAPublicKey: modulus, exponent
        key = _tlv(der, start, end)
        return _RSA, _int(der, _child(der, key, _SEQ, 0)), _int(der, _child(der, key, _SEQ, 1))
    return alg, der[start:end]  # EC: the point


def _key_public(der, start, end, wrapped=False):
    # (algorithm, public key or None) of a private key: PKCS#8, PKCS#1 (RSA)
    # or SEC1 (EC); a PKCS#8 key holds one of the other two, once.
    top = _tlv(der, start, end)
    second = _child(der, top, _SEQ, 1)
    if second[0] == _SEQ and not wrapped:  # PKCS#8: version, algorithm, the key in an OCTET STRING
        alg = _value(der, _child(der, second, _SEQ, 0), _OID)
        inner = _child(der, top, _SEQ, 2)
        if alg not in (_RSA, _EC) or inner[0] != _OCTETS:
            return alg, None
        got = _key_public(der, inner[1], inner[2], True)
        return got if got[0] == alg else (alg, None)
    if second[0] == _INT:  # PKCS#1: version, modulus, public exponent, ...
        return _RSA, _int(der, second), _int(der, _child(der, top, _SEQ, 2))
    if second[0] != _OCTETS:
        raise AccessError(_NOT_DER)
    item = second  # SEC1: version, private scalar, [0] curve, [1] point
    while item[2] < top[2]:
        item = _tlv(der, item[2], top[2])
        if item[0] == 0xA1:
            start, end = _bits(der, _child(der, item, 0xA1, 0))
            return _EC, der[start:end]
    return _EC, None


def _check_pair(cert, key, problems, where):
    # Raises when the key's public part is not the certificate's; an EC key
    # without its public point cannot be checked: noted, and let through.
    try:
        have = _cert_public(cert)
    except (AccessError, IndexError):
        raise AccessError("certificate: not an X.509 certificate")
    try:
        held = _key_public(key, 0, len(key))
    except (AccessError, IndexError):
        raise AccessError("private: not a PKCS#8, RSA or EC private key")
    if held[1] is None and held[0] == have[0]:
        problems.append(where + ": the key holds no public key: its match with the certificate is unchecked")
    elif held != have:
        raise AccessError("certificate and private key do not match")


def _cert_set(entry, problems, where):
    if not isinstance(entry, dict):
        raise AccessError("not an object")
    cert = _convert(der_cert, entry, "certificate")
    key = _convert(der_key, entry, "private")
    chain = _convert(_chain, entry, "public_parent")
    _check_pair(cert, key, problems, where)
    return cert, key, chain


def _entries(section, raw, convert, limits, problems):
    # {uuid: converted value} for every entry whose id and value are usable.
    out = {}
    for uuid, value in raw.items():
        where = _where(section, uuid, problems)
        kept = where and convert(where, value, limits, problems)
        if kept:
            out[uuid] = kept
    return out


def _certs(raw, problems):
    out = []
    for i, entry in enumerate(raw):
        where = "current[%d]" % i
        try:
            out.append(_cert_set(entry, problems, where))
        except AccessError as e:
            problems.append("%s: %s" % (where, e))
    return out


def parse(obj, limits=None, strict=False):
    """Return (Access, problems). Raises AccessError when the data is refused
    as a whole: not an object, a section of the wrong type (or, strict, a
    section missing), or over a limit. Every problem is an entry (or part of
    one) dropped, or a note: the rest is good to serve. Past bounds.PROBLEMS_MAX
    problems, a last one counts the rest."""
    if not isinstance(obj, dict):
        raise AccessError("access data is not an object")
    lim = dict(_LIMITS)
    for key in _LIMITS:  # limits may be the whole config: take what is ours
        if limits and key in limits:
            lim[key] = limits[key]
    problems = _Problems()
    clients = _section(obj, "clients", dict, problems, strict)
    peers = _section(obj, "peers", dict, problems, strict)
    current = _section(obj, "current", list, problems, strict)
    _cap(len(clients), lim["max_users"], "clients")
    _cap(len(peers), lim["max_peers"], "peers")
    _cap(len(current), lim["max_certs"], "current")
    access = Access(_version(obj.get("version"), problems),
                    _entries("clients", clients, _user, lim, problems),
                    _entries("peers", peers, _peer, lim, problems),
                    _certs(current, problems))
    return access, problems.lines()
