"""Soak driver: sessions that keep several requests in flight against a
running peer, checking that every request is answered, in order, within a
deadline, and that the peer never closes the connection. Used by the soak
tests (short, in `make test`) and by `make soak` (long)."""
import asyncio
import json
import os
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tools.harness.peer import client_tls

# Requests per soak: `make soak` raises it.
SCALE = int(os.environ.get("SOAK_REQUESTS") or 0)


def scaled(default):
    return SCALE or default


class SoakError(AssertionError):
    pass


class Tally:
    def __init__(self, name):
        self.name = name
        self.answered = 0
        self.worst_ms = 0.0
        self.started = time.monotonic()
        self.seconds = 0.0

    def __str__(self):
        rate = self.answered / self.seconds if self.seconds else 0
        return "%s: %d answered in order, none late, no close; worst %.0f ms, %.0f/s" % (
            self.name, self.answered, self.worst_ms, rate)


async def session(url, login, count, depth, deadline_s, method="hub.info.get",
                  params=None, name="session"):
    """Logs in with LOGIN (user, token), then keeps DEPTH requests in flight
    until COUNT are answered. Every reply must echo the next id in order,
    carry no error and come within DEADLINE_S of its request."""
    tally = Tally(name)
    async with connect(url, ssl=client_tls(), open_timeout=30, ping_interval=None,
                       max_size=2 ** 16) as ws:
        await ws.send(json.dumps({"id": "login", "method": "hub.offline.login.ui",
                                  "params": {"user": login[0], "token": login[1]}}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), deadline_s))
        if reply.get("error") is not None:
            raise SoakError("%s: login refused: %r" % (name, reply["error"]))
        sent = {}
        nxt = 0

        async def send_one():
            nonlocal nxt
            rid = "%s-%07d" % (name, nxt)
            req = {"id": rid, "method": method}
            if params is not None:
                req["params"] = params
            sent[rid] = time.monotonic()
            nxt += 1
            await ws.send(json.dumps(req))

        for _ in range(min(depth, count)):
            await send_one()
        while tally.answered < count:
            want = "%s-%07d" % (name, tally.answered)
            try:
                text = await asyncio.wait_for(ws.recv(), deadline_s)
            except asyncio.TimeoutError:
                raise SoakError("%s: no reply to %s within %s s (%d answered)"
                                % (name, want, deadline_s, tally.answered))
            except ConnectionClosed as e:
                raise SoakError("%s: the peer closed the connection (%s) after %d answers"
                                % (name, e, tally.answered))
            reply = json.loads(text)
            if reply.get("id") != want:
                raise SoakError("%s: expected a reply to %s, got %r" % (name, want, text[:200]))
            if reply.get("error") is not None:
                raise SoakError("%s: %s answered with an error: %r" % (name, want, reply["error"]))
            late = (time.monotonic() - sent.pop(want)) * 1000
            tally.worst_ms = max(tally.worst_ms, late)
            tally.answered += 1
            if nxt < count:
                await send_one()
    tally.seconds = time.monotonic() - tally.started
    return tally


def run(*sessions):
    """Runs the session coroutines side by side; returns their tallies."""
    async def all_of():
        return await asyncio.gather(*sessions)

    return asyncio.run(all_of())
