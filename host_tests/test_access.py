"""firmware.core.access: PEM to DER, token digests, and parse() of the sync data."""
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization

from firmware.core import access, bounds
from firmware.core.access import AccessError
from tools import devdata
from tools.devdata import sha256_digest, sha256_hex

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER
PKCS8 = serialization.PrivateFormat.PKCS8
TRAD = serialization.PrivateFormat.TraditionalOpenSSL
NOENC = serialization.NoEncryption()

USER_A = "95d8cd00-5bba-46e5-ae33-f1e4b2d65e6e"
USER_B = "708e3376-5cb1-4fa8-923f-cda75b9e9e33"
PEER = "c89723f7-03a3-423d-a556-7eba4270d064"


def _cert(key, name, issuer_key=None, issuer_name=None):
    """A bare certificate (no names, no usages) for NAME, signed by
    ISSUER_KEY, or by KEY itself."""
    return (devdata.cert_builder(devdata.name(name), devdata.name(issuer_name or name), key.public_key(), 30)
            .sign(issuer_key or key, hashes.SHA256()))


class Pair:
    def __init__(self, key, cert):
        self.key = key
        self.cert = cert
        self.cert_pem = cert.public_bytes(PEM).decode()
        self.cert_der = cert.public_bytes(DER)

    def key_pem(self, fmt=PKCS8, enc=NOENC):
        return self.key.private_bytes(PEM, fmt, enc).decode()

    def key_der(self, fmt=PKCS8):
        return self.key.private_bytes(DER, fmt, NOENC)


@pytest.fixture(scope="module")
def ca():
    key = devdata.new_key("ec")
    return Pair(key, _cert(key, "test CA"))


@pytest.fixture(scope="module")
def rsa_pair(ca):
    key = devdata.new_key("rsa")
    return Pair(key, _cert(key, "rsa hub", ca.key, "test CA"))


@pytest.fixture(scope="module")
def ec_pair(ca):
    key = devdata.new_key("ec")
    return Pair(key, _cert(key, "ec hub", ca.key, "test CA"))


# ---------------------------------------------------------------- PEM -> DER

def test_cert_pem_to_der_matches_cryptography(rsa_pair, ec_pair):
    assert access.der_cert(rsa_pair.cert_pem) == rsa_pair.cert_der
    assert access.der_cert(ec_pair.cert_pem) == ec_pair.cert_der


@pytest.mark.parametrize("fmt,label", [(PKCS8, "PRIVATE KEY"), (TRAD, None)])
@pytest.mark.parametrize("which", ["rsa_pair", "ec_pair"])
def test_key_pem_to_der_matches_cryptography(request, which, fmt, label):
    pair = request.getfixturevalue(which)
    pem = pair.key_pem(fmt)
    expected_label = label or ("RSA PRIVATE KEY" if which == "rsa_pair" else "EC PRIVATE KEY")
    assert pem.startswith("-----BEGIN %s-----" % expected_label)
    assert access.der_key(pem) == pair.key_der(fmt)


def test_pem_blocks_returns_every_block_in_order(rsa_pair, ec_pair, ca):
    text = "\n".join([rsa_pair.cert_pem, rsa_pair.key_pem(TRAD), ca.cert_pem, ec_pair.cert_pem])
    blocks = access.pem_blocks(text)
    assert [label for label, _ in blocks] == [
        "CERTIFICATE", "RSA PRIVATE KEY", "CERTIFICATE", "CERTIFICATE"]
    assert [der for _, der in blocks] == [
        rsa_pair.cert_der, rsa_pair.key_der(TRAD), ca.cert_der, ec_pair.cert_der]
    assert all(isinstance(der, bytes) for _, der in blocks)


def test_pem_blocks_of_text_without_blocks_is_empty():
    assert access.pem_blocks("") == []
    assert access.pem_blocks("  \n just words \r\n") == []


def test_der_cert_takes_the_first_certificate_block(rsa_pair, ec_pair):
    text = rsa_pair.key_pem() + ec_pair.cert_pem + rsa_pair.cert_pem
    assert access.der_cert(text) == ec_pair.cert_der


def test_der_key_skips_other_blocks(ec_pair):
    # What `openssl ecparam -genkey` writes: parameters first, then the key.
    params = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    text = ec_pair.cert_pem + params + ec_pair.key_pem(TRAD)
    assert access.der_key(text) == ec_pair.key_der(TRAD)


def test_crlf_indentation_and_explanatory_text_tolerated(rsa_pair):
    pem = rsa_pair.cert_pem + rsa_pair.key_pem()
    crlf = "Subject: rsa hub\r\n\r\n" + "\r\n".join("  %s\t" % l for l in pem.split("\n")) + "\r\n\r\n"
    assert access.der_cert(crlf) == rsa_pair.cert_der
    assert access.der_key(crlf) == rsa_pair.key_der()


def _malformed(pair, name):
    lines = pair.cert_pem.strip().split("\n")
    begin, body, end = lines[0], lines[1:-1], lines[-1]
    variants = {
        "unterminated": [begin] + body,
        "mismatched END": [begin] + body + ["-----END PRIVATE KEY-----"],
        "bad base64 char": [begin, "!" + body[0][1:]] + body[1:] + [end],
        "non-ASCII char": [begin, "\u00e9" + body[0][1:]] + body[1:] + [end],
        "char missing": [begin, body[0][1:]] + body[1:] + [end],
        "padding inside": [begin, "QUI=" + body[0]] + body[1:] + [end],
        "empty body": [begin, end],
        "BEGIN inside block": [begin, body[0], begin] + body + [end],
        "stray END": [end, begin] + body + [end],
        "bad marker": ["-----BEGIN CERTIFICATE----"] + body + [end],
        "empty label": ["-----BEGIN -----"] + body + ["-----END -----"],
        # PEM flattened into one line with two-char "\n" escapes
        "literal backslash-n": ["\\n".join(lines)],
    }
    return "\n".join(variants[name])


@pytest.mark.parametrize("name", [
    "unterminated", "mismatched END", "bad base64 char", "non-ASCII char", "char missing",
    "padding inside", "empty body", "BEGIN inside block", "stray END", "bad marker",
    "empty label", "literal backslash-n"])
def test_malformed_pem_refused(rsa_pair, name):
    text = _malformed(rsa_pair, name)
    for func in (access.pem_blocks, access.der_cert, access.der_key):
        with pytest.raises(AccessError) as err:
            func(text)
        assert str(err.value) == "malformed PEM"


def test_der_cert_without_certificate(rsa_pair):
    with pytest.raises(AccessError, match="^no CERTIFICATE block$"):
        access.der_cert(rsa_pair.key_pem())
    with pytest.raises(AccessError):
        access.der_cert("")


def test_der_key_without_key(rsa_pair):
    with pytest.raises(AccessError, match="^no private key block$"):
        access.der_key(rsa_pair.cert_pem)


@pytest.mark.parametrize("fmt", [PKCS8, TRAD])
def test_encrypted_key_refused(rsa_pair, fmt):
    pem = rsa_pair.key_pem(fmt, serialization.BestAvailableEncryption(b"pw"))
    assert "ENCRYPTED" in pem
    with pytest.raises(AccessError) as err:
        access.der_key(pem)
    assert str(err.value) == "encrypted private key not supported"


# ------------------------------------------------------------------ digests

def test_digest():
    assert access.digest("Hs87Kns41106743NMS2") == sha256_digest("Hs87Kns41106743NMS2")
    assert access.digest("t\u00f6k\u20ac") == hashlib.sha256("t\u00f6k\u20ac".encode("utf-8")).digest()
    assert access.digest(b"raw") == hashlib.sha256(b"raw").digest()
    assert len(access.digest("")) == 32


# -------------------------------------------------------------------- parse

def _entry(pair, parent="", fmt=PKCS8):
    return {"certificate": pair.cert_pem, "private": pair.key_pem(fmt), "public_parent": parent}


def spec_result(rsa_pair, ec_pair, ca):
    """The response table's shape, with the example's ids and real data."""
    return {
        "clients": {
            USER_A: [sha256_hex("user-a-token-1"), sha256_hex("user-a-token-2")],
            USER_B: [sha256_hex("user-b-token")],
        },
        "peers": {
            PEER: {"id": "70010111", "tokens": [PEER + "-key-12-02", PEER + "-key-01-03"]},
        },
        "current": [_entry(rsa_pair, ca.cert_pem), _entry(ec_pair, ca.cert_pem, TRAD)],
        "version": 12,
    }


def test_parse_spec_shape(rsa_pair, ec_pair, ca):
    acc, problems = access.parse(spec_result(rsa_pair, ec_pair, ca))
    assert problems == []
    assert acc.version == 12
    assert acc.clients == {
        USER_A: (sha256_digest("user-a-token-1"), sha256_digest("user-a-token-2")),
        USER_B: (sha256_digest("user-b-token"),),
    }
    assert access.digest("user-b-token") in acc.clients[USER_B]
    assert access.digest("wrong") not in acc.clients[USER_B]
    peer = acc.peers[PEER]
    assert isinstance(peer, access.Peer)
    assert peer.serial == "70010111"
    assert peer.tokens == (PEER + "-key-12-02", PEER + "-key-01-03")
    assert peer.digests == tuple(sha256_digest(t) for t in peer.tokens)
    assert acc.certs == [
        (rsa_pair.cert_der, rsa_pair.key_der(), [ca.cert_der]),
        (ec_pair.cert_der, ec_pair.key_der(TRAD), [ca.cert_der]),
    ]


def test_empty_access_object():
    acc = access.Access()
    assert (acc.version, acc.clients, acc.peers, acc.certs) == (None, {}, {}, [])


def _parse(**sections):
    data = {"clients": {}, "peers": {}, "current": []}
    data.update(sections)
    return access.parse(data)


def test_digests_normalised():
    hexd = sha256_hex("tok")
    acc, problems = _parse(clients={USER_A: [hexd.upper(), "  %s\r\n" % hexd, "\t" + hexd[:32].upper() + hexd[32:]]})
    assert problems == []
    assert acc.clients[USER_A] == (sha256_digest("tok"),) * 3
    assert all(type(d) is bytes and len(d) == 32 for d in acc.clients[USER_A])


def test_bad_digests_dropped_with_precise_problems():
    good = sha256_hex("good")
    bad = [good[:63], good + "0", "g" + good[1:], good[:32] + " " + good[33:], 42, None, "",
           "\u00e9" * 64]
    acc, problems = _parse(clients={USER_A: [bad[0], good] + bad[1:]})
    assert acc.clients == {USER_A: (sha256_digest("good"),)}
    assert problems == ["clients[%s][%d]: not a SHA-256 hex digest" % (USER_A, i)
                        for i in [0, 2, 3, 4, 5, 6, 7, 8]]


def test_user_without_valid_digest_dropped():
    acc, problems = _parse(clients={USER_A: ["nope"], USER_B: [sha256_hex("b")]})
    assert list(acc.clients) == [USER_B]
    assert problems == ["clients[%s][0]: not a SHA-256 hex digest" % USER_A,
                        "clients[%s]: no valid digest, user dropped" % USER_A]


def test_user_with_empty_list_dropped_silently():
    # All of a user's tokens revoked: legitimate, so not a problem.
    acc, problems = _parse(clients={USER_A: []})
    assert acc.clients == {}
    assert problems == []


@pytest.mark.parametrize("value", [sha256_hex("x"), {"a": sha256_hex("x")}, None, 5])
def test_user_value_not_a_list(value):
    acc, problems = _parse(clients={USER_A: value, USER_B: [sha256_hex("b")]})
    assert list(acc.clients) == [USER_B]
    assert problems == ["clients[%s]: not a list, user dropped" % USER_A]


@pytest.mark.parametrize("section", ["clients", "peers"])
def test_bad_ids_dropped(section):
    value = [sha256_hex("t")] if section == "clients" else {"id": "1", "tokens": ["t"]}
    good64 = "u" * 64
    bad_ids = ["", "u" * 65, "has space", "new\nline", "t\u00e9st", 7]
    acc, problems = _parse(**{section: dict([(k, value) for k in bad_ids] + [(good64, value)])})
    assert list(getattr(acc, section)) == [good64]
    assert problems == [section + ": dropped an id that is not 1-64 printable ASCII chars"] * len(bad_ids)


def test_peer_id_int_converted_bool_refused():
    acc, problems = _parse(peers={
        "p1": {"id": 70010111, "tokens": ["a"]},
        "p2": {"id": True, "tokens": ["b"]},
        "p3": {"tokens": ["c"]},
        "p4": {"id": "", "tokens": ["d"]},
        "p5": {"id": 1.5, "tokens": ["e"]},
    })
    assert list(acc.peers) == ["p1"]
    assert acc.peers["p1"].serial == "70010111"
    assert problems == ["peers[p%d].id: not a non-empty string, peer dropped" % i for i in (2, 3, 4, 5)]


def test_peer_tokens_checked():
    acc, problems = access.parse(
        {"clients": {}, "current": [], "peers": {
            "p1": {"id": "1", "tokens": ["ok", "", 5, "x" * 9, "y" * 8, None]},
            "p2": {"id": "2", "tokens": "single"},
            "p3": {"id": "3"},
            "p4": {"id": "4", "tokens": ["", "z" * 9]},
            "p5": {"id": "5", "tokens": []},
            "p6": ["not", "an", "object"],
        }}, {"token_max": 8})
    assert list(acc.peers) == ["p1"]
    assert acc.peers["p1"].tokens == ("ok", "y" * 8)
    assert acc.peers["p1"].digests == (sha256_digest("ok"), sha256_digest("y" * 8))
    assert problems == [
        "peers[p1].tokens[1]: not a string of 1-8 chars",
        "peers[p1].tokens[2]: not a string of 1-8 chars",
        "peers[p1].tokens[3]: not a string of 1-8 chars",
        "peers[p1].tokens[5]: not a string of 1-8 chars",
        "peers[p2].tokens: not a list, peer dropped",
        "peers[p3].tokens: not a list, peer dropped",
        "peers[p4].tokens[0]: not a string of 1-8 chars",
        "peers[p4].tokens[1]: not a string of 1-8 chars",
        "peers[p4]: no valid token, peer dropped",
        "peers[p6]: not an object, peer dropped",
    ]


def test_default_token_max_is_256():
    acc, problems = _parse(peers={"p": {"id": "1", "tokens": ["a" * 256, "b" * 257]}})
    assert acc.peers["p"].tokens == ("a" * 256,)
    assert problems == ["peers[p].tokens[1]: not a string of 1-256 chars"]


def test_current_entries(rsa_pair, ec_pair, ca):
    broken = _entry(rsa_pair)
    broken["certificate"] = broken["certificate"].replace("\n-----END", "!\n-----END")
    two_parents = _entry(ec_pair, ca.cert_pem + rsa_pair.cert_pem)
    acc, problems = access.parse({"clients": {}, "peers": {}, "current": [
        broken,
        two_parents,
        "not an object",
        {"certificate": rsa_pair.cert_pem, "private": rsa_pair.key_pem()},
        {"certificate": rsa_pair.cert_pem, "private": None, "public_parent": ""},
        _entry(rsa_pair, "no pem here"),
        dict(_entry(rsa_pair), private=rsa_pair.key_pem(PKCS8, serialization.BestAvailableEncryption(b"pw"))),
        dict(_entry(rsa_pair), private=rsa_pair.cert_pem),
        dict(_entry(rsa_pair), certificate=rsa_pair.key_pem()),
        _entry(rsa_pair, "  \r\n"),
    ]}, {"max_certs": 10})
    assert acc.certs == [
        (ec_pair.cert_der, ec_pair.key_der(), [ca.cert_der, rsa_pair.cert_der]),
        (rsa_pair.cert_der, rsa_pair.key_der(), []),
    ]
    assert problems == [
        "current[0]: certificate: malformed PEM",
        "current[2]: not an object",
        "current[3]: public_parent: not a string",
        "current[4]: private: not a string",
        "current[5]: public_parent: no CERTIFICATE block",
        "current[6]: private: encrypted private key not supported",
        "current[7]: private: no private key block",
        "current[8]: certificate: no CERTIFICATE block",
    ]


def test_empty_public_parent_is_empty_chain(rsa_pair):
    acc, problems = _parse(current=[_entry(rsa_pair, "")])
    assert problems == []
    assert acc.certs == [(rsa_pair.cert_der, rsa_pair.key_der(), [])]


def test_missing_sections_are_empty_with_problems():
    acc, problems = access.parse({"version": 3})
    assert (acc.version, acc.clients, acc.peers, acc.certs) == (3, {}, {}, [])
    assert problems == ["clients: missing", "peers: missing", "current: missing"]


@pytest.mark.parametrize("name,value", [
    ("clients", []), ("clients", None), ("peers", []), ("peers", "x"),
    ("current", {}), ("current", None),
])
def test_wrong_section_type_refused(name, value):
    data = {"clients": {}, "peers": {}, "current": []}
    data[name] = value
    with pytest.raises(AccessError, match="^%s: wrong type$" % name):
        access.parse(data)


@pytest.mark.parametrize("obj", [None, [], "data", 5])
def test_non_object_refused(obj):
    with pytest.raises(AccessError):
        access.parse(obj)


@pytest.mark.parametrize("value,expected", [(0, 0), (12, 12), (2 ** 40, 2 ** 40), (None, None)])
def test_version_accepted(value, expected):
    acc, problems = _parse(version=value)
    assert acc.version == expected
    assert problems == []


def test_version_absent():
    acc, problems = _parse()
    assert acc.version is None and problems == []


@pytest.mark.parametrize("value", [True, False, -1, 1.0, 1.5, "12", [12], {}])
def test_version_rejected(value):
    acc, problems = _parse(version=value)
    assert acc.version is None
    assert problems == ["version: not a non-negative integer"]


# ------------------------------------------------------------------- limits

def _users(n, per_user=1):
    return {"user-%d" % i: [sha256_hex("t%d-%d" % (i, j)) for j in range(per_user)] for i in range(n)}


def _peers(n, per_peer=1):
    return {"peer-%d" % i: {"id": str(i), "tokens": ["k%d-%d" % (i, j) for j in range(per_peer)]}
            for i in range(n)}


def test_default_limits_at_the_edge_accepted(rsa_pair):
    acc, problems = _parse(clients=_users(200, 16), peers=_peers(32, 16), current=[_entry(rsa_pair)] * 4)
    assert problems == []
    assert (len(acc.clients), len(acc.peers), len(acc.certs)) == (200, 32, 4)


@pytest.mark.parametrize("sections,message", [
    ({"clients": _users(201)}, "clients: more than 200 entries"),
    ({"peers": _peers(33)}, "peers: more than 32 entries"),
    ({"current": [{}] * 5}, "current: more than 4 entries"),
])
def test_default_limits_exceeded_refused(sections, message):
    with pytest.raises(AccessError) as err:
        _parse(**sections)
    assert str(err.value) == message


@pytest.mark.parametrize("sections,problem,kept", [
    ({"clients": dict(_users(1, 17), ok=[sha256_hex("x")])},
     "clients[user-0]: more than 16 tokens, user dropped", "clients"),
    ({"peers": dict(_peers(1, 17), ok={"id": "1", "tokens": ["k"]})},
     "peers[peer-0].tokens: more than 16 tokens, peer dropped", "peers"),
])
def test_too_many_tokens_drop_only_that_entry(sections, problem, kept):
    acc, problems = _parse(**sections)
    assert problems == [problem]
    assert list(getattr(acc, kept)) == ["ok"]


def test_custom_limits():
    data = {"clients": _users(3, 2), "peers": _peers(2, 2), "current": []}
    for limits, message in [
        ({"max_users": 2}, "clients: more than 2 entries"),
        ({"max_peers": 1}, "peers: more than 1 entries"),
        ({"max_certs": 0, "max_users": 3}, None),
    ]:
        if message is None:
            assert access.parse(data, limits)[1] == []
            continue
        with pytest.raises(AccessError) as err:
            access.parse(data, limits)
        assert str(err.value) == message
    with pytest.raises(AccessError, match="^current: more than 0 entries$"):
        access.parse(dict(data, current=[{}]), {"max_certs": 0})
    acc, problems = access.parse(data, {"max_tokens_per_user": 1})
    assert acc.clients == {} and acc.peers == {} and len(problems) == 5


# ------------------------------------------------------------------ secrets

def test_no_secret_in_any_problem_or_error(rsa_pair):
    # Distinctive values that look almost right, so every rejection path is hit.
    secret_digest = "5ec12e7" + "ab" * 29  # 65 hex chars: wrong length
    secret_nonhex = "5ec12e7z" + "ab" * 28  # 64 chars with 'z'
    secret_token = "SECRET-TOKEN-" + "q" * 300
    key_pem = rsa_pair.key_pem()
    key_body = key_pem.split("\n")[1]
    corrupt_key = key_pem.replace(key_body, key_body[:-1] + "!")
    enc_key = rsa_pair.key_pem(TRAD, serialization.BestAvailableEncryption(b"SECRETPASS"))
    data = {
        "clients": {USER_A: [secret_digest, secret_nonhex, 12345]},
        "peers": {PEER: {"id": "1", "tokens": [secret_token, ""]}, "p2": {"id": "2", "tokens": secret_token}},
        "current": [
            {"certificate": rsa_pair.cert_pem, "private": corrupt_key, "public_parent": ""},
            {"certificate": rsa_pair.cert_pem, "private": enc_key, "public_parent": ""},
            {"certificate": key_pem, "private": key_pem, "public_parent": key_pem},
            {"certificate": rsa_pair.cert_pem, "private": rsa_pair.cert_pem, "public_parent": corrupt_key},
        ],
        "version": secret_token,
    }
    acc, problems = access.parse(data)
    assert len(problems) == 13 and acc.clients == {} and acc.peers == {} and acc.certs == []
    text = "\n".join(problems)
    key_lines = [l for l in (key_pem + enc_key + corrupt_key).split("\n") if len(l) > 8]
    for secret in [secret_digest[:16], secret_nonhex[:16], "5ec12e7", "SECRET", "q" * 8, "12345",
                   "SECRETPASS"] + key_lines:
        assert secret not in text
    # Entries over a limit too: problems name counts and ids only.
    for bad in [{"clients": {USER_A: [secret_digest] * 17}, "peers": {}, "current": []},
                {"clients": {}, "peers": {PEER: {"id": "1", "tokens": [secret_token] * 17}}, "current": []}]:
        text = "\n".join(access.parse(bad)[1])
        assert text and "5ec12e7" not in text and "SECRET" not in text
    for func in (access.der_cert, access.der_key, access.pem_blocks):
        for pem in (corrupt_key, enc_key):
            try:
                func(pem)
            except AccessError as e:
                assert not any(l in str(e) or l in repr(e) for l in key_lines)


def test_repr_shows_no_secret():
    peer = access.Peer("1", ("SECRET-TOKEN",))
    acc = access.Access(1, {USER_A: (sha256_digest("x"),)}, {PEER: peer}, [])
    for obj in (peer, acc):
        assert "SECRET" not in repr(obj) and sha256_hex("x") not in repr(obj)


@pytest.mark.parametrize("junk", [None, True, 0, -1, 1.5, "", "x", [], [None], {}, {"": None}, [[]], [{}]])
def test_junk_anywhere_only_yields_problems_or_access_error(junk):
    shapes = [
        {"clients": {USER_A: junk}, "peers": {}, "current": []},
        {"clients": {USER_A: [junk]}, "peers": {}, "current": []},
        {"clients": {}, "peers": {PEER: junk}, "current": []},
        {"clients": {}, "peers": {PEER: {"id": junk, "tokens": junk}}, "current": []},
        {"clients": {}, "peers": {PEER: {"id": "1", "tokens": [junk]}}, "current": []},
        {"clients": {}, "peers": {}, "current": [junk]},
        {"clients": {}, "peers": {}, "current": [{"certificate": junk, "private": junk, "public_parent": junk}]},
        {"clients": junk, "peers": junk, "current": junk, "version": junk},
    ]
    for shape in shapes:
        try:
            acc, problems = access.parse(shape)
        except AccessError:
            continue
        assert isinstance(acc, access.Access) and isinstance(problems, list)


# ------------------------------------------- certificate and key belong together

MISMATCH = "current[0]: certificate and private key do not match"


@pytest.fixture(scope="module")
def other_keys():
    """Keys that belong to no certificate here; the RSA one shares the
    certificates' exponent, so only the modulus tells them apart."""
    return {kind: devdata.new_key(kind) for kind in ("rsa", "ec")}


def _pem(key, fmt):
    return key.private_bytes(PEM, fmt, NOENC).decode()


@pytest.mark.parametrize("fmt", [PKCS8, TRAD])
@pytest.mark.parametrize("which", ["rsa_pair", "ec_pair"])
def test_a_key_that_belongs_to_its_certificate_is_kept(request, which, fmt):
    pair = request.getfixturevalue(which)
    acc, problems = _parse(current=[_entry(pair, fmt=fmt)])
    assert problems == []
    assert acc.certs == [(pair.cert_der, pair.key_der(fmt), [])]


@pytest.mark.parametrize("fmt", [PKCS8, TRAD])
@pytest.mark.parametrize("cert,key", [("rsa", "rsa"), ("ec", "ec"), ("rsa", "ec"), ("ec", "rsa")])
def test_a_key_that_is_not_its_certificates_is_dropped(request, other_keys, rsa_pair, cert, key, fmt):
    pair = request.getfixturevalue(cert + "_pair")
    wrong = dict(_entry(pair), private=_pem(other_keys[key], fmt))
    acc, problems = _parse(current=[wrong, _entry(rsa_pair)])
    assert problems == [MISMATCH]
    assert acc.certs == [(rsa_pair.cert_der, rsa_pair.key_der(), [])]  # the next set serves


def _der_len(n):
    return bytes([n]) if n < 0x80 else bytes([0x81, n]) if n < 0x100 else bytes([0x82, n >> 8, n & 0xFF])


def _tlv(tag, body):
    return bytes([tag]) + _der_len(len(body)) + body


def _pem_of(label, der):
    import base64
    body = base64.b64encode(der).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)


def _sec1_without_point(key):
    # SEC1 ECPrivateKey with no [1] publicKey: version 1, scalar, [0] curve.
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    p256 = b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07"
    return _tlv(0x30, b"\x02\x01\x01" + _tlv(0x04, scalar) + _tlv(0xA0, p256))


def test_an_ec_key_without_its_public_point_is_kept_unchecked(ec_pair):
    der = _sec1_without_point(ec_pair.key)
    acc, problems = _parse(current=[dict(_entry(ec_pair), private=_pem_of("EC PRIVATE KEY", der))])
    assert problems == ["current[0]: the key holds no public key: its match with the certificate is unchecked"]
    assert acc.certs == [(ec_pair.cert_der, der, [])]


def test_an_ec_key_without_its_point_for_an_rsa_certificate_is_dropped(rsa_pair, ec_pair):
    der = _sec1_without_point(ec_pair.key)
    acc, problems = _parse(current=[dict(_entry(rsa_pair), private=_pem_of("EC PRIVATE KEY", der))])
    assert problems == [MISMATCH] and acc.certs == []


@pytest.mark.parametrize("der", [
    b"\x30\x03\x02\x01\x00",  # a SEQUENCE of one INTEGER
    b"\x30\x84\x00\x00\x00\x01\x00",  # a length of four bytes
    b"\x30\x82\xff\xff\x02\x01\x00",  # a length past the end
    b"\x05\x00",  # NULL
])
def test_der_that_is_no_certificate_or_key_is_dropped(rsa_pair, der):
    acc, problems = _parse(current=[dict(_entry(rsa_pair), certificate=_pem_of("CERTIFICATE", der)),
                                    dict(_entry(rsa_pair), private=_pem_of("PRIVATE KEY", der))])
    assert problems == ["current[0]: certificate: not an X.509 certificate",
                        "current[1]: private: not a PKCS#8, RSA or EC private key"]
    assert acc.certs == []


def test_every_cut_of_a_certificate_or_key_is_refused_cleanly(rsa_pair, ec_pair):
    # Truncated DER never escapes as anything but a dropped set.
    for pair, fmt in ((rsa_pair, PKCS8), (ec_pair, TRAD)):
        cert, key = pair.cert_der, pair.key_der(fmt)
        for cut in range(0, len(cert), 7):
            entry = dict(_entry(pair, fmt=fmt), certificate=_pem_of("CERTIFICATE", cert[:cut] or b"\x00"))
            acc, problems = _parse(current=[entry])
            assert acc.certs == [] and len(problems) == 1
        for cut in range(0, len(key), 7):
            entry = dict(_entry(pair, fmt=fmt), private=_pem_of("PRIVATE KEY", key[:cut] or b"\x00"))
            acc, problems = _parse(current=[entry])
            assert acc.certs == [] and len(problems) == 1


def test_strict_refuses_a_missing_section():
    # A sync must state every section: a missing one is not "none left".
    for name in ("clients", "peers", "current"):
        data = {"clients": {}, "peers": {}, "current": [], "version": 1}
        del data[name]
        with pytest.raises(AccessError, match=name + ": missing"):
            access.parse(data, strict=True)
        assert access.parse(data)[1] == [name + ": missing"]


def test_problems_are_bounded():
    # 40 users with one bad digest each: two problems apiece, 16 kept.
    bad = {"user-%02d" % i: ["zz" * 32] for i in range(40)}
    acc, problems = _parse(clients=bad)
    assert acc.clients == {}
    assert len(problems) == bounds.PROBLEMS_MAX + 1
    assert problems[-1] == "%d more problem(s) not shown" % (80 - bounds.PROBLEMS_MAX)


def test_a_key_nested_without_end_is_refused_without_recursing(rsa_pair):
    # PKCS#8 inside PKCS#8 inside ...: one level is all a key may have, so
    # a crafted key cannot exhaust the recursion depth of the firmware.
    rsa_oid = b"\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00"
    der = rsa_pair.key_der(TRAD)
    for _ in range(2000):
        der = _tlv(0x30, b"\x02\x01\x00" + rsa_oid + _tlv(0x04, der))
    acc, problems = _parse(current=[dict(_entry(rsa_pair), private=_pem_of("PRIVATE KEY", der))])
    assert acc.certs == [] and problems == ["current[0]: private: not a PKCS#8, RSA or EC private key"]
