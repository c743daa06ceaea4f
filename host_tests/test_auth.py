"""Token digests, constant-work checks and the login throttle (firmware.core.auth)
under CPython."""
import hashlib

import pytest

from firmware.core import auth
from tools.devdata import sha256_digest


# ---------------------------------------------------------------- digest()


@pytest.mark.parametrize("token", ["", "abc", "token-" + "x" * 300, "jeton-\u00e9\u4e2d\U0001f600"])
def test_digest_is_raw_sha256_of_utf8(token):
    got = auth.digest(token)
    assert got == hashlib.sha256(token.encode("utf-8")).digest()
    assert isinstance(got, bytes) and len(got) == auth.DIGEST_LEN == 32


def test_digest_of_bytes_equals_digest_of_str():
    assert auth.digest(b"abc") == auth.digest("abc") == bytes.fromhex(
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_digest_differs_for_different_tokens():
    assert auth.digest("a") != auth.digest("b")


# ---------------------------------------------------------------- check()


@pytest.mark.parametrize("which", [0, 1, 2])
def test_check_accepts_each_token_among_several(which):
    tokens = ["alpha", "bravo", "charlie"]
    digests = tuple(sha256_digest(t) for t in tokens)
    assert auth.check(digests, auth.digest(tokens[which]), 16) is True


@pytest.mark.parametrize("token", ["delta", "", "alph", "alphaa", "ALPHA", sha256_digest("alpha").hex()])
def test_check_refuses_wrong_token(token):
    digests = (sha256_digest("alpha"), sha256_digest("bravo"))
    assert auth.check(digests, auth.digest(token), 16) is False


def test_check_finds_a_token_beyond_slots():
    # slots is a minimum of work, never a cap on the tokens looked at
    tokens = ["t%d" % i for i in range(20)]
    digests = tuple(sha256_digest(t) for t in tokens)
    assert auth.check(digests, auth.digest("t19"), 16) is True
    assert auth.check(digests, auth.digest("t0"), 1) is True


@pytest.mark.parametrize("digests", [None, (), []])
def test_check_unknown_identity_never_matches(digests):
    assert auth.check(digests, auth.digest("anything"), 16) is False
    assert auth.check(digests, auth.digest(""), 16) is False


@pytest.mark.parametrize("digests", [None, ()])
def test_check_unknown_identity_refused_even_if_token_matches_the_decoy(monkeypatch, digests):
    # The decoy is what an unknown identity is compared against; a token
    # that happens to hash to it must still be refused.
    monkeypatch.setattr(auth, "_DECOY", (sha256_digest("lucky"),))
    assert auth.check(digests, auth.digest("lucky"), 16) is False
    assert auth.check((sha256_digest("lucky"),), sha256_digest("lucky"), 16) is True  # the patch is in effect


@pytest.fixture
def counting(monkeypatch):
    calls = []
    real = auth._same

    def wrapper(a, b):
        calls.append((bytes(a), bytes(b)))
        return real(a, b)

    monkeypatch.setattr(auth, "_same", wrapper)
    return calls


def visits(calls, digests, token, slots=16):
    del calls[:]
    ok = auth.check(digests, auth.digest(token), slots)
    return ok, len(calls)


def test_check_work_does_not_depend_on_identity(counting):
    one = (sha256_digest("one"),)
    three = (sha256_digest("a"), sha256_digest("b"), sha256_digest("c"))
    results = {
        "unknown": visits(counting, None, "x"),
        "no tokens": visits(counting, (), "x"),
        "1 token, wrong": visits(counting, one, "x"),
        "1 token, right": visits(counting, one, "one"),
        "3 tokens, wrong": visits(counting, three, "x"),
        "3 tokens, first": visits(counting, three, "a"),
        "3 tokens, last": visits(counting, three, "c"),
    }
    assert {name: n for name, (_, n) in results.items()} == {name: 16 for name in results}
    assert [ok for ok, _ in results.values()] == [False, False, False, True, False, True, True]


def test_check_compares_every_stored_digest(counting):
    three = (sha256_digest("a"), sha256_digest("b"), sha256_digest("c"))
    auth.check(three, auth.digest("x"), 16)
    seen = {a for a, _ in counting}
    assert set(three) <= seen
    assert all(b == sha256_digest("x") for _, b in counting)  # always the presented token's digest


def test_check_unknown_identity_compares_against_the_decoy(counting):
    auth.check(None, auth.digest("x"), 4)
    assert len(counting) == 4
    assert all(a == auth._DECOY[0] for a, _ in counting)


def test_check_more_tokens_than_slots_visits_each(counting):
    many = tuple(sha256_digest("t%d" % i) for i in range(20))
    assert visits(counting, many, "zzz", 16) == (False, 20)


# ---------------------------------------------------------------- _same()


def test_same_equal():
    assert auth._same(sha256_digest("a"), sha256_digest("a")) is True
    assert auth._same(b"", b"") is True


@pytest.mark.parametrize("pos", [0, 15, 31])
def test_same_one_byte_differs(pos):
    a = bytearray(sha256_digest("a"))
    b = bytearray(a)
    b[pos] ^= 0x01
    assert auth._same(bytes(a), bytes(b)) is False


@pytest.mark.parametrize("a, b", [(b"abc", b"abcd"), (b"abcd", b"abc"), (b"", b"a"),
                                  (sha256_digest("a"), sha256_digest("a")[:31]),
                                  (sha256_digest("a"), sha256_digest("a") + b"\x00")])
def test_same_different_lengths(a, b):
    assert auth._same(a, b) is False


class CountingBytes:
    def __init__(self, data):
        self.data = data
        self.reads = 0

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        self.reads += 1
        return self.data[i]


@pytest.mark.parametrize("pos", [0, 10, 31])
def test_same_reads_every_byte_whatever_the_mismatch(pos):
    a = sha256_digest("a")
    b = bytearray(a)
    b[pos] ^= 0xFF
    ca, cb = CountingBytes(a), CountingBytes(bytes(b))
    assert auth._same(ca, cb) is False
    assert ca.reads == 32 and cb.reads == 32


# ---------------------------------------------------------------- Throttle


class Clock:
    def __init__(self, now=1000):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(auth, "ticks_ms", c)
    return c


def test_throttle_doubles_from_base_up_to_cap(clock):
    t = auth.Throttle(250, 4000)
    assert [t.failed("10.0.0.1") for _ in range(8)] == [250, 500, 1000, 2000, 4000, 4000, 4000, 4000]


def test_throttle_cap_not_a_power_of_two_multiple(clock):
    t = auth.Throttle(100, 350)
    assert [t.failed("a") for _ in range(5)] == [100, 200, 350, 350, 350]


def test_throttle_many_failures_stay_at_cap(clock):
    t = auth.Throttle(250, 4000)
    delays = [t.failed("a") for _ in range(200)]
    assert delays[-1] == 4000 and max(delays) == 4000


def test_throttle_is_per_address(clock):
    t = auth.Throttle(250, 4000)
    for _ in range(3):
        t.failed("10.0.0.1")
    assert t.failed("10.0.0.2") == 250
    assert t.failed("10.0.0.1") == 2000
    assert t.failed("10.0.0.2") == 500


def test_throttle_success_resets_only_that_address(clock):
    t = auth.Throttle(250, 4000)
    for _ in range(3):
        t.failed("a")
        t.failed("b")
    t.succeeded("a")
    assert t.failed("a") == 250
    assert t.failed("b") == 2000


def test_throttle_success_of_unknown_address_is_harmless(clock):
    t = auth.Throttle(250, 4000)
    t.succeeded("never-failed")
    assert t.failed("never-failed") == 250


def test_throttle_window_expiry(clock):
    t = auth.Throttle(250, 4000, window_s=300)
    assert t.failed("a") == 250
    clock.now += 299_999
    assert t.failed("a") == 500  # still within the window of the last failure
    clock.now += 299_999
    assert t.failed("a") == 1000  # the window counts from the latest failure
    clock.now += 300_001
    assert t.failed("a") == 250  # forgotten
    assert t.failed("a") == 500


def test_throttle_window_expiry_drops_the_entry(clock):
    t = auth.Throttle(250, 4000, window_s=10)
    t.failed("a")
    clock.now += 10_001
    t.failed("b")
    assert t.failed("a") == 250


def test_throttle_table_is_bounded_and_evicts_oldest(clock):
    t = auth.Throttle(250, 4000, size=3)
    for addr in ("a", "b", "c"):
        t.failed(addr)
        t.failed(addr)
        clock.now += 10
    t.failed("d")
    assert len(t.fails) == 3
    assert "a" not in t.fails and {"b", "c", "d"} == set(t.fails)
    assert t.failed("b") == 1000  # survivors keep their counts
    assert t.failed("a") == 250  # the evicted one starts over


def test_throttle_evicts_least_recently_failed_not_first_inserted(clock):
    t = auth.Throttle(250, 4000, size=3)
    for addr in ("a", "b", "c"):
        t.failed(addr)
        clock.now += 10
    t.failed("a")  # a is now the most recent
    clock.now += 10
    t.failed("d")
    assert set(t.fails) == {"a", "c", "d"}


def test_throttle_full_table_existing_address_evicts_nothing(clock):
    t = auth.Throttle(250, 4000, size=2)
    t.failed("a")
    clock.now += 1
    t.failed("b")
    clock.now += 1
    assert t.failed("a") == 500
    assert set(t.fails) == {"a", "b"}


def test_throttle_flood_of_addresses_stays_bounded(clock):
    t = auth.Throttle(250, 4000, size=16)
    for i in range(1000):
        clock.now += 1
        assert t.failed("10.0.%d.%d" % (i // 256, i % 256)) == 250
        assert len(t.fails) <= 16
    assert len(t.fails) == 16


def test_throttle_evicts_oldest_across_tick_wraparound(monkeypatch):
    # MicroPython's ticks on the ESP32: a 2**30 period, ticks_diff wrap-aware.
    period = 1 << 30
    now = [period - 20]

    def ticks_diff(a, b):
        return ((a - b + period // 2) % period) - period // 2

    monkeypatch.setattr(auth, "ticks_ms", lambda: now[0] % period)
    monkeypatch.setattr(auth, "ticks_diff", ticks_diff)
    t = auth.Throttle(250, 4000, size=2)
    t.failed("old")  # ticks 2**30 - 20
    now[0] += 30
    t.failed("new")  # ticks 10, after the wrap
    now[0] += 5
    t.failed("newest")
    assert set(t.fails) == {"new", "newest"}
