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
from firmware.auth import Access, Peer, digest  # noqa: F401 (re-exported)


class AccessError(ValueError):
    """The data is refused as a whole; the message is safe to log."""


# Defaults sized for the board's heap; parse(limits=...) overrides them.
_LIMITS = {"max_users": 200, "max_tokens_per_user": 16, "max_peers": 32,
           "token_max": 256, "max_certs": 4}
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


def _cap(count, limit, where):
    if count > limit:
        raise AccessError("%s: more than %d entries" % (where, limit))


def _section(obj, name, kind, problems):
    if name not in obj:
        problems.append(name + ": missing")
        return kind()
    if not isinstance(obj[name], kind):
        raise AccessError(name + ": wrong type")
    return obj[name]


def _is_int(value):
    # bool is an int on CPython (not on MicroPython); JSON true is no number.
    return isinstance(value, int) and not isinstance(value, bool)


def _version(value, problems):
    if value is None or (_is_int(value) and value >= 0):
        return value
    problems.append("version: not a non-negative integer")
    return None


def _where(section, key, problems):
    # Ids are logged and compared with login params: keep them short and
    # printable so neither a log line nor a lookup can be garbled.
    if (isinstance(key, str) and 0 < len(key) <= 64
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


def _user(where, hexes, limits, problems):
    if not isinstance(hexes, list):
        problems.append(where + ": not a list, user dropped")
        return None
    if len(hexes) > limits["max_tokens_per_user"]:
        # Logins check a fixed number of digest slots: more would not fit.
        problems.append("%s: more than %d tokens, user dropped" % (where, limits["max_tokens_per_user"]))
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
    if _is_int(serial):
        serial = str(serial)
    if not isinstance(serial, str) or not serial:
        problems.append(where + ".id: not a non-empty string, peer dropped")
        return None
    tokens = info.get("tokens")
    if not isinstance(tokens, list):
        problems.append(where + ".tokens: not a list, peer dropped")
        return None
    if len(tokens) > limits["max_tokens_per_user"]:
        problems.append("%s: more than %d tokens, peer dropped" % (where, limits["max_tokens_per_user"]))
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


def _cert_set(entry):
    if not isinstance(entry, dict):
        raise AccessError("not an object")
    return (_convert(der_cert, entry, "certificate"),
            _convert(der_key, entry, "private"),
            _convert(_chain, entry, "public_parent"))


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
        try:
            out.append(_cert_set(entry))
        except AccessError as e:
            problems.append("current[%d]: %s" % (i, e))
    return out


def parse(obj, limits=None):
    """Return (Access, problems). Raises AccessError when the data is refused
    as a whole: not an object, a section of the wrong type, or over a limit."""
    if not isinstance(obj, dict):
        raise AccessError("access data is not an object")
    lim = dict(_LIMITS)
    for key in _LIMITS:  # limits may be the whole config: take what is ours
        if limits and key in limits:
            lim[key] = limits[key]
    problems = []
    clients = _section(obj, "clients", dict, problems)
    peers = _section(obj, "peers", dict, problems)
    current = _section(obj, "current", list, problems)
    _cap(len(clients), lim["max_users"], "clients")
    _cap(len(peers), lim["max_peers"], "peers")
    _cap(len(current), lim["max_certs"], "current")
    access = Access(_version(obj.get("version"), problems),
                    _entries("clients", clients, _user, lim, problems),
                    _entries("peers", peers, _peer, lim, problems),
                    _certs(current, problems))
    return access, problems
