"""Peer links in process (tools/harness/shell.py), against a peer controller the
test plays: dialling and verifying it, the login with each token, requests
both ways over the link, and hub.peer.call's answers and errors."""
import pytest

from firmware.core import access, ws
from tools.harness.shell import (HUB, PEER, PEER_SERIAL, PEER_TOKEN, TOKEN, USER, access_result, cert_pem,
                              parse_access, scenario)

LOGIN_HUB = "hub.offline.login.hub"
WRITE_MS = 10000
BAD_PASSWORD = {"code": -32500, "message": "Bad password", "data": "user.login.badpassword"}
REQUIRED = {"code": -32500, "message": "Login required", "data": "user.login.required"}
NOT_ALLOWED = {"code": -32500, "message": "Not allowed for a controller", "data": "hub.method.notallowed"}
NOT_LINKED = {"code": -32500, "message": "Peer not linked", "data": "hub.peer.notlinked"}
BUSY = {"code": -32500, "message": "Peer busy", "data": "hub.peer.busy"}
NO_ANSWER = {"code": -32500, "message": "Peer did not answer", "data": "hub.peer.timeout"}
BAD_ANSWER = {"code": -32500, "message": "Malformed answer from the peer", "data": "hub.peer.badanswer"}


async def peer_server(env, tokens=("old-token", PEER_TOKEN), **cfg):
    """A server whose access data names one peer (with `tokens`) and the
    chain that verifies it."""
    data = parse_access(access_result(peers={PEER: (PEER_SERIAL, list(tokens))}, parent=True))
    return await env.make_server(env.make_parts(cfg=env.cfg(max_connections=4, **cfg), access=data))


async def logged_in_link(env, server):
    """Plays the peer: takes the link, refuses the first token, takes the
    second. Returns the peer's end."""
    remote = await env.net.accept()
    await remote.accept_upgrade()
    first = await remote.json()
    assert (first["method"], first["params"]) == (LOGIN_HUB, {"hub": HUB, "token": "old-token"})
    remote.reply(first, error=BAD_PASSWORD)
    second = await remote.json()
    assert (second["method"], second["params"]) == (LOGIN_HUB, {"hub": HUB, "token": PEER_TOKEN})
    remote.reply(second, {})
    await env.settle()
    return remote


def link_state(reply):
    return [(e["peer"], e["direction"], e["state"], e["error"]) for e in reply["result"]["links"]]


@scenario
async def test_the_link_dials_the_peers_local_name_verified_by_public_parent(env):
    await peer_server(env)
    remote = await env.net.accept()
    assert remote.sock.server_hostname == "HUB%s.local" % PEER_SERIAL
    assert remote.sock.remote == ("192.0.2.1", 17000)
    assert remote.sock.tls.cadata == [access.der_cert(cert_pem()[0])]


@scenario
async def test_the_link_tries_each_token_and_is_listed_logged_in(env):
    server = await peer_server(env)
    user = await env.session(server, user=USER, token=TOKEN)
    assert link_state(await user.call("hub.peer.links.list")) == [(PEER, "out", "connecting", None)]
    await logged_in_link(env, server)
    assert link_state(await user.call("hub.peer.links.list")) == [(PEER, "out", "logged in", None)]


@scenario
async def test_a_peer_that_takes_no_token_is_backed_off_with_the_reason_listed(env):
    server = await peer_server(env, tokens=[PEER_TOKEN])
    user = await env.session(server, user=USER, token=TOKEN)
    remote = await env.net.accept()
    await remote.accept_upgrade()
    remote.reply(await remote.json(), error=BAD_PASSWORD)
    await remote.gone()
    state = link_state(await user.call("hub.peer.links.list"))
    assert state == [(PEER, "out", "backing off", "login refused: none of 1 token(s) accepted")]


@scenario
async def test_requests_from_the_peer_are_refused_before_our_login_and_answered_as_a_controllers_after(env):
    server = await peer_server(env, tokens=[PEER_TOKEN])
    remote = await env.net.accept()
    await remote.accept_upgrade()
    login = await remote.json()
    remote.request("hub.info.get", rid="early")
    assert await remote.json() == {"id": "early", "method": "hub.info.get", "error": REQUIRED, "result": None}
    remote.reply(login, {})
    remote.request("hub.info.get", rid="info")
    info = await remote.json()
    assert info["error"] is None and "uptime" in info["result"]  # the full info: logged in
    remote.request("hub.offline.anonymous_access.set", {"enabled": True}, rid="switch")
    assert (await remote.json())["error"] == NOT_ALLOWED
    remote.request("hub.peer.call", {"peer": PEER, "method": "hub.info.get"}, rid="via")
    assert (await remote.json())["error"] == NOT_ALLOWED
    user = await env.session(server, user=USER, token=TOKEN)
    assert (await user.call("hub.info.get"))["result"]["offlineAnonymousAccess"] is False


@scenario
async def test_a_peer_call_relays_the_peers_result(env):
    server = await peer_server(env)
    remote = await logged_in_link(env, server)
    user = await env.session(server, user=USER, token=TOKEN)
    user.request("hub.peer.call", {"peer": PEER, "method": "hub.devices.list", "params": {"x": 1}}, rid="c")
    asked = await remote.json()
    assert (asked["method"], asked["params"]) == ("hub.devices.list", {"x": 1})
    remote.reply(asked, {"devices": ["d"]})
    assert await user.json() == {"id": "c", "method": "hub.peer.call", "error": None, "result": {"devices": ["d"]}}


@pytest.mark.parametrize("error, relayed", [
    ({"code": -32601, "message": "Method not found", "data": "rpc.method.notfound"},
     {"code": -32601, "message": "Method not found", "data": "rpc.method.notfound"}),
    ({"code": -32500, "message": "M" * 300, "data": None}, {"code": -32500, "message": "M" * 128, "data": None}),
    ("just text", BAD_ANSWER),
    ({"code": "x", "message": "m", "data": "d"}, BAD_ANSWER),
    ({"code": 1, "message": "m", "data": 5}, BAD_ANSWER),
])
@scenario
async def test_a_peers_error_is_relayed_checked_and_cut(env, error, relayed):
    server = await peer_server(env)
    remote = await logged_in_link(env, server)
    user = await env.session(server, user=USER, token=TOKEN)
    user.request("hub.peer.call", {"peer": PEER, "method": "hub.info.get"})
    remote.reply(await remote.json(), error=error)
    assert (await user.json())["error"] == relayed


@scenario
async def test_two_calls_in_flight_make_a_third_busy_and_unanswered_ones_time_out(env):
    server = await peer_server(env)
    remote = await logged_in_link(env, server)
    users = [await env.session(server, user=USER, token=TOKEN) for _ in range(3)]
    users[0].request("hub.peer.call", {"peer": PEER, "method": "a"})
    users[1].request("hub.peer.call", {"peer": PEER, "method": "b"})
    await remote.json(), await remote.json()
    assert (await users[2].call("hub.peer.call", {"peer": PEER, "method": "c"}))["error"] == BUSY
    await env.advance(WRITE_MS - 1)
    assert users[0].pending() == [] and users[1].pending() == []
    await env.advance(1)
    assert (await users[0].json())["error"] == NO_ANSWER
    assert (await users[1].json())["error"] == NO_ANSWER
    # The link is free again.
    users[2].request("hub.peer.call", {"peer": PEER, "method": "d"})
    remote.reply(await remote.json(), "fine")
    assert (await users[2].json())["result"] == "fine"


@scenario
async def test_a_peer_call_to_an_unknown_or_unlinked_peer_is_not_linked(env):
    server = await peer_server(env)
    user = await env.session(server, user=USER, token=TOKEN)
    assert (await user.call("hub.peer.call", {"peer": "someone-else", "method": "m"}))["error"] == NOT_LINKED
    # Our link to PEER is not logged in yet.
    assert (await user.call("hub.peer.call", {"peer": PEER, "method": "m"}))["error"] == NOT_LINKED


@scenario
async def test_a_call_in_flight_when_the_link_drops_is_not_linked(env):
    server = await peer_server(env)
    remote = await logged_in_link(env, server)
    user = await env.session(server, user=USER, token=TOKEN)
    user.request("hub.peer.call", {"peer": PEER, "method": "m"})
    await remote.json()
    remote.hang_up()
    assert (await user.json())["error"] == NOT_LINKED


@scenario
async def test_a_call_whose_send_fails_is_not_linked(env):
    server = await peer_server(env)
    remote = await logged_in_link(env, server)
    user = await env.session(server, user=USER, token=TOKEN)
    remote.break_writes()
    assert (await user.call("hub.peer.call", {"peer": PEER, "method": "m"}))["error"] == NOT_LINKED
    assert (await user.call("hub.info.get"))["error"] is None  # the user's session is unharmed


@scenario
async def test_a_peer_that_drops_us_after_the_login_is_redialled_later_each_time_until_a_link_lasts(env):
    await peer_server(env, tokens=[PEER_TOKEN])

    async def taken_in(then_drop=True):
        remote = await env.net.accept()
        await remote.accept_upgrade()
        remote.reply(await remote.json(), {})
        await env.settle()
        if then_drop:
            await remote.leave()
        return remote

    await taken_in()
    await env.advance(1000)  # the first backoff: 0.5-1 s
    await taken_in()
    await env.advance(999)  # the second: 1-2 s, though each link logged in
    assert env.net.dialled == []
    await env.advance(1001)
    remote = await taken_in(then_drop=False)
    for _ in range(2):  # a link that lasts idle_timeout, its pings answered
        await env.advance(30000)
        assert (await remote.frame())[0] == ws.OP_PING
        remote.send(ws.OP_PONG)
    await remote.leave()
    await env.advance(1000)  # from 1 s again
    await env.net.accept()


@scenario
async def test_the_links_follow_the_data_a_sync_brings(env):
    server = await peer_server(env, tokens=[PEER_TOKEN])
    old = await env.net.accept()
    await old.accept_upgrade()
    old.reply(await old.json(), {})
    env.start_cloud(server)
    cloud = await env.net.accept()
    await cloud.accept_upgrade()
    cloud.reply(await cloud.json(), {})
    sync = await cloud.json()
    cloud.reply(sync, access_result(peers={PEER: (PEER_SERIAL, ["new-token"])}, version=2, parent=True))
    await old.gone()  # the link with the old tokens ends
    assert env.logged("peer %s link closed: access data changed" % PEER_SERIAL)
    new = await env.net.accept()
    await new.accept_upgrade()
    assert (await new.json())["params"] == {"hub": HUB, "token": "new-token"}
