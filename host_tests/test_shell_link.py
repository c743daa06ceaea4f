"""A client link in process (tools/harness/shell.py), against a server the test
plays: dialling and the upgrade, replies handed to ask(), late replies
dropped, and the keepalive of the session (keep)."""
import asyncio

import pytest

from firmware.core import ws
from firmware.shell.link import LinkError
from tools.harness.shell import TICK_MS, ended_with, scenario

IDLE_MS, HANDSHAKE_MS, WRITE_MS = 60000, 10000, 10000  # README, "Limits"


async def linked(env, **cfg):
    """A bare link, dialled and upgraded: (the link, the server's end)."""
    lnk = env.make_link(**cfg)
    dial = env.spawn(lnk.connect(lnk.tls))
    remote = await env.net.accept()
    await remote.accept_upgrade()
    await dial
    return lnk, remote


async def keeping(lnk, wait_ms=3600 * 1000):
    # A session with nothing to do but keep the link: a peer link's, or with
    # a short wait_ms a cloud link's whose next sync is near.
    while True:
        await lnk.keep(wait_ms)


@scenario
async def test_the_link_dials_verifies_the_name_and_upgrades(env):
    lnk = env.make_link(url="wss://peer.test:17010/ws")
    dial = env.spawn(lnk.connect(lnk.tls))
    remote = await env.net.accept()
    assert env.net.lookups == ["peer.test"]
    assert remote.sock.remote == ("192.0.2.1", 17010) and remote.sock.server_hostname == "peer.test"
    head = await remote.accept_upgrade()
    assert head.startswith("GET /ws HTTP/1.1\r\n") and "Host: peer.test:17010\r\n" in head
    await dial
    assert lnk.opened and lnk.dead is None


@pytest.mark.parametrize("answer, why", [
    (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", "upgrade refused: 403"),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Accept: d3Jvbmc=\r\n\r\n", "upgrade refused: 502"),
])
@scenario
async def test_a_refused_upgrade_fails_the_dial(env, answer, why):
    lnk = env.make_link()
    dial = env.spawn(lnk.connect(lnk.tls))
    remote = await env.net.accept()
    await remote.head()
    remote.feed(answer)
    with pytest.raises(LinkError, match=why):
        await dial


@scenario
async def test_an_unanswered_upgrade_fails_at_the_handshake_timeout(env):
    lnk = env.make_link()
    dial = env.spawn(lnk.connect(lnk.tls))
    await env.net.accept()
    await env.advance(HANDSHAKE_MS - 1)
    assert not dial.done()
    await env.advance(TICK_MS)
    with pytest.raises(LinkError, match="upgrade timed out"):
        await dial


@scenario
async def test_replies_are_handed_to_the_ask_that_waits_for_them_in_any_order(env):
    lnk, remote = await linked(env)
    first = env.spawn(lnk.ask({"method": "hub.info.get"}))
    second = env.spawn(lnk.ask({"method": "hub.devices.list", "params": {}}))
    req1, req2 = await remote.json(), await remote.json()
    assert req1["method"] == "hub.info.get" and req2["method"] == "hub.devices.list"
    assert req1["id"] != req2["id"]
    remote.reply(req2, {"devices": []})
    remote.reply(req1, {"serial": "1"})
    assert (await second)["result"] == {"devices": []}
    assert (await first)["result"] == {"serial": "1"}


@scenario
async def test_a_late_reply_is_dropped_and_the_link_carries_on(env):
    lnk, remote = await linked(env)
    late = env.spawn(lnk.call("hub.info.get", {}))
    req = await remote.json()
    await env.advance(WRITE_MS - 1)
    assert not late.done()
    await env.advance(1)
    with pytest.raises(LinkError, match="no reply to hub.info.get"):
        await late
    nxt = env.spawn(lnk.call("hub.info.get", {}))
    req2 = await remote.json()
    assert req2["id"] != req["id"]
    remote.reply(req, {"late": True})  # after its caller gave up, while another call waits
    remote.send_json({"id": "stray", "error": None, "result": {}})
    await env.settle()
    assert not nxt.done() and lnk.dead is None
    remote.reply(req2, {"late": False})
    assert (await nxt)["result"] == {"late": False}


@scenario
async def test_a_call_ends_with_the_link(env):
    lnk, remote = await linked(env)
    pending = env.spawn(lnk.call("hub.info.get", {}))
    await remote.json()
    remote.hang_up()
    with pytest.raises(LinkError, match="closed by the other side"):
        await pending


@scenario
async def test_a_ping_from_the_other_side_is_answered_with_a_masked_pong(env):
    lnk, remote = await linked(env)
    remote.send(ws.OP_PING, b"are you there")
    assert await remote.frame() == (ws.OP_PONG, b"are you there")  # the remote's decoder wants it masked


@scenario
async def test_keep_pings_after_half_the_idle_timeout_and_gives_up_after_all_of_it(env):
    lnk, remote = await linked(env)
    session = env.spawn(keeping(lnk, 1000))  # woken every second
    await env.advance(IDLE_MS // 2 - 1)
    assert remote.pending() == []
    await env.advance(TICK_MS)
    assert remote.pending() == [(ws.OP_PING, b"")]
    await env.advance(IDLE_MS // 2 - TICK_MS - 1)
    assert not session.done() and remote.pending() == []  # one ping per silence
    await env.advance(TICK_MS)
    ended_with(session, "silent for 60 s")


@scenario
async def test_anything_heard_restarts_the_keepalive(env):
    lnk, remote = await linked(env)
    session = env.spawn(keeping(lnk))
    await env.advance(IDLE_MS // 2)
    assert remote.pending() == [(ws.OP_PING, b"")]
    remote.send(ws.OP_PONG)  # heard at 30 s
    await env.advance(IDLE_MS - 1)
    assert not session.done()
    assert remote.pending() == [(ws.OP_PING, b"")]  # the next silence's ping, at 60 s
    await env.advance(TICK_MS)
    ended_with(session, "silent for 60 s")


@scenario
async def test_keep_fails_at_once_once_the_link_has_ended(env):
    lnk, remote = await linked(env)
    session = env.spawn(keeping(lnk))
    remote.send(ws.OP_CLOSE, (1000).to_bytes(2, "big"))
    await env.settle()
    ended_with(session, "closed by the other side")


@scenario
async def test_a_cancelled_ask_loses_nothing_for_the_next(env):
    lnk, remote = await linked(env)
    asked = env.spawn(lnk.ask({"method": "a"}))
    req = await remote.json()
    asked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asked
    remote.reply(req, "too late")
    nxt = env.spawn(lnk.ask({"method": "b"}))
    req2 = await remote.json()
    remote.reply(req2, "in time")
    assert (await nxt)["result"] == "in time"
