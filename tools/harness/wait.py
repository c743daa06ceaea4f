"""Waiting in the tests, on a loaded machine (two cores shared with other
test runs): on a condition polled until a deadline, or through a window in
which a condition must stay false. No bare sleeps: a test that waits for
something says what, and one that proves something does not happen says for
how long and why that long.
"""
import time

# The deadline of a wait that a passing test never reaches: generous, so a
# busy machine does not fail a test that is only slow.
WAIT = 20.0
# What a loaded machine may add to a timer that should fire at a given
# time: an upper bound on a duration is the expected time plus this. It is
# kept below the failure it tells apart (a timer that never fires, or one
# twice as long), so such bounds still catch what they are for.
SLACK = 4.0
POLL = 0.05


def _describe(what, check):
    if callable(what):  # made at the failure, with the state of then
        return what()
    return what or getattr(check, "__name__", repr(check))


def wait_until(check, timeout=WAIT, what=None, poll=POLL):
    """Polls check() until it returns a true value, and returns that value;
    fails at the deadline naming WHAT was awaited (a text, or a function
    that makes one). POLL is the pause between calls: 0 for a check that
    takes its own time and whose moment of success is measured."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError("not within %g s: %s (last: %r)" % (timeout, _describe(what, check), got))
        time.sleep(poll)


def assert_never(check, seconds, what=None):
    """Asserts that check() stays false for SECONDS, polling it: the window
    in which what it looks for would have happened. Fails as soon as it
    does; the caller's comment says why the window is that long."""
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        assert not got, "within %g s: %s (%r)" % (seconds, _describe(what, check), got)
        if time.monotonic() >= deadline:
            return
        time.sleep(POLL)
