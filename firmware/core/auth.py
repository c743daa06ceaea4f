# Who may log in: the access data's digests, compared in constant time, and
# a throttle that slows repeated failures from one address without blocking
# others.
import hashlib
import os

from firmware.core.ticks import ticks_diff, ticks_ms

DIGEST_LEN = 32


def digest(token):
    """SHA-256 of a token (str as UTF-8) as 32 raw bytes."""
    if isinstance(token, str):
        token = token.encode()
    return hashlib.sha256(token).digest()


class Peer:
    def __init__(self, serial, tokens):
        self.serial = serial
        self.tokens = tokens  # plain: needed to log in to that peer
        self.digests = tuple(digest(t) for t in tokens)  # checks its logins here


class Access:
    # The access data as logins and TLS use it (see access.parse).
    def __init__(self, version=None, clients=None, peers=None, certs=None):
        self.version = version
        self.clients = {} if clients is None else clients
        self.peers = {} if peers is None else peers
        self.certs = [] if certs is None else certs
        self.parents = ()  # DER chain that verifies peers (set by the TLS set-up)

    def digests(self, role, ident):
        # The token digests that let `ident` log in as `role`, or None.
        if role == "user":
            return self.clients.get(ident)
        peer = self.peers.get(ident)
        return peer.digests if peer else None


def _same(a, b):
    # Every byte is visited whatever the mismatch position.
    diff = len(a) ^ len(b)
    for i in range(min(len(a), len(b))):
        diff |= a[i] ^ b[i]
    return diff == 0


# Compared against when the identity is unknown, so that an unknown user
# and a wrong token cost the same work.
_DECOY = (os.urandom(DIGEST_LEN),)


def check(digests, presented, slots):
    # Is the presented token digest among `digests`? Visits `slots` digests
    # whatever the identity holds, so the time taken tells neither whether
    # the identity exists nor how many tokens it has.
    known = digests is not None and len(digests) > 0
    pool = digests if known else _DECOY
    ok = False
    for i in range(max(slots, len(pool))):
        match = _same(pool[i % len(pool)], presented)
        ok = ok or (match and i < len(pool))
    return ok and known


class Throttle:
    # Failed logins per remote address, kept for `window_s`; the table is
    # bounded so a flood of addresses cannot grow it.
    def __init__(self, base_ms, max_ms, window_s=300, size=16):
        self.base_ms = base_ms
        self.max_ms = max_ms
        self.window_ms = window_s * 1000
        self.size = size
        self.fails = {}  # addr -> (count, ticks of last failure)

    def _count(self, addr):
        entry = self.fails.get(addr)
        if entry is None:
            return 0
        if ticks_diff(ticks_ms(), entry[1]) > self.window_ms:
            del self.fails[addr]
            return 0
        return entry[0]

    def failed(self, addr):
        # Returns the delay to apply before answering this failure.
        count = self._count(addr) + 1
        now = ticks_ms()
        if addr not in self.fails and len(self.fails) >= self.size:
            # Ages, not raw ticks: the tick counter wraps on the board.
            oldest = max(self.fails, key=lambda a: ticks_diff(now, self.fails[a][1]))
            del self.fails[oldest]
        self.fails[addr] = (count, now)
        return min(self.base_ms << min(count - 1, 30), self.max_ms)

    def succeeded(self, addr):
        self.fails.pop(addr, None)
