"""The hub in process (tools/harness/shell.py): who may call what, the error
replies of README's table, logins and their throttle, and the switches taking
effect before their reply."""
import json
import os
import re

import pytest

from tools.harness.shell import (HUB, PEER, PEER_SERIAL, PEER_TOKEN, SERIAL, TICK_MS, TOKEN, TOKEN2, USER, USER2,
                              scenario)


def err(code, message, data):
    return {"code": code, "message": message, "data": data}


# README, "Replies and errors"
PARSE = err(-32700, "Parse error", "rpc.parse.error")
INVALID_REQUEST = err(-32600, "Bad request", "rpc.request.invalid")
NOT_FOUND = err(-32601, "Method not found", "rpc.method.notfound")
PARAM_MISSING = err(-32600, "Bad request", "rpc.params.notfound")
PARAM_INVALID = err(-32602, "Wrong params", "rpc.params.invalid")
BAD_PASSWORD = err(-32500, "Bad password", "user.login.badpassword")
ALREADY = err(-32500, "Already logged in", "user.login.alreadylogged")
REQUIRED = err(-32500, "Login required", "user.login.required")
NOT_SAVED = err(-32500, "Setting not saved", "hub.storage.failed")
NOT_ALLOWED = err(-32500, "Not allowed for a controller", "hub.method.notallowed")
NOT_LINKED = err(-32500, "Peer not linked", "hub.peer.notlinked")

LOGIN_UI, LOGIN_HUB = "hub.offline.login.ui", "hub.offline.login.hub"
ANON_SET, ANON_ALIAS = "hub.offline.anonymous_access.set", "hub.offline.anonymous_access.enabled.set"
INSECURE_SET = "hub.offline.insecure_access.enabled.set"
INVENTORY = ["hub.devices.list", "hub.items.list", "hub.room.list", "hub.scenes.list", "hub.data.list",
             "hub.modes.get"]
PUBLIC_INFO = {"serial", "uuid", "model", "firmware", "offlineAnonymousAccess", "offlineInsecureAccess"}
FULL_INFO = PUBLIC_INFO | {"architecture", "hardware", "kernel", "uptime", "localtime", "freeMemory"}
OK = "ok"
DELAY_MS = 250  # login_delay_ms's default
LOGIN_TIMEOUT_MS = 30000


async def caller(env, who, **cfg):
    """A server and a connection of the kind `who`: nobody (not logged in,
    anonymous access off), anonymous (not logged in, anonymous access on),
    user, or controller (logged in with hub.offline.login.hub)."""
    server = await env.make_server(env.make_parts(cfg=env.cfg(**cfg), anonymous=who == "anonymous"))
    if who == "user":
        return server, await env.session(server, user=USER, token=TOKEN)
    if who == "controller":
        return server, await env.session(server, peer=PEER, token=PEER_TOKEN)
    return server, await env.session(server)


def outcome(reply):
    return OK if reply["error"] is None else reply["error"]


# ---- who may call what ---------------------------------------------------------

TABLE = {
    # method: (nobody, anonymous, user, controller)
    "hub.info.get": (OK, OK, OK, OK),
    "hub.diagnostics.get": (REQUIRED, OK, OK, OK),
    **{m: (REQUIRED, OK, OK, OK) for m in INVENTORY},
    ANON_SET: (REQUIRED, OK, OK, NOT_ALLOWED),
    ANON_ALIAS: (REQUIRED, OK, OK, NOT_ALLOWED),
    INSECURE_SET: (REQUIRED, OK, OK, NOT_ALLOWED),
    "hub.peer.links.list": (REQUIRED, REQUIRED, OK, NOT_ALLOWED),
    "hub.peer.call": (REQUIRED, REQUIRED, NOT_LINKED, NOT_ALLOWED),
    "hub.no.such.method": (NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND),
}
CALLERS = ("nobody", "anonymous", "user", "controller")


@pytest.mark.parametrize("who", CALLERS)
@scenario
async def test_the_permission_table(env, who):
    _, end = await caller(env, who)
    anonymous = who == "anonymous"
    params = {ANON_SET: {"enabled": anonymous}, ANON_ALIAS: {"enabled": anonymous},  # no change: one state
              INSECURE_SET: {"enabled": False}, "hub.peer.call": {"peer": PEER, "method": "hub.info.get"}}
    got = {}
    for i, method in enumerate(TABLE):
        rid = "r%d" % i
        reply = await end.call(method, params.get(method, {}), rid)
        assert (reply["id"], reply["method"]) == (rid, method)
        assert reply["result"] is None or reply["error"] is None, reply
        got[method] = outcome(reply)
    assert got == {m: row[CALLERS.index(who)] for m, row in TABLE.items()}


@pytest.mark.parametrize("who", ["anonymous", "user", "controller"])
@scenario
async def test_info_before_login_is_the_public_subset_and_after_it_everything(env, who):
    _, stranger_end = await caller(env, "nobody")
    public = (await stranger_end.call("hub.info.get"))["result"]
    assert set(public) == PUBLIC_INFO
    assert public == {"serial": SERIAL, "uuid": HUB, "model": "ezlo-peer", "firmware": public["firmware"],
                      "offlineAnonymousAccess": False, "offlineInsecureAccess": False}

    _, end = await caller(env, who)
    full = (await end.call("hub.info.get"))["result"]
    assert set(full) == FULL_INFO
    assert full["offlineAnonymousAccess"] is (who == "anonymous")
    assert re.fullmatch(r"\d+d \d+h \d+m \d+s", full["uptime"]), full["uptime"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", full["localtime"]), full["localtime"]
    assert isinstance(full["freeMemory"], int)


@scenario
async def test_diagnostics_count_the_open_connections(env):
    server = await env.make_server()
    first = await env.session(server, user=USER, token=TOKEN)
    result = (await first.call("hub.diagnostics.get"))["result"]
    assert set(result) == {"heapAlloc", "heapFree", "connections", "modules"} and result["connections"] == 1
    await env.session(server, user=USER2, token=TOKEN2)
    assert (await first.call("hub.diagnostics.get"))["result"]["connections"] == 2


@scenario
async def test_a_user_lists_the_peer_links_both_ways(env):
    server = await env.make_server(max_connections=3)
    user = await env.session(server, user=USER, token=TOKEN)
    assert (await user.call("hub.peer.links.list"))["result"] == {"links": [
        {"peer": PEER, "serial": PEER_SERIAL, "direction": "out", "state": "not linked (no public_parent)",
         "since": None, "error": None}]}
    await env.session(server, peer=PEER, token=PEER_TOKEN)
    links = (await user.call("hub.peer.links.list"))["result"]["links"]
    assert [(e["peer"], e["direction"], e["state"]) for e in links] == [
        (PEER, "out", "not linked (no public_parent)"), (PEER, "in", "logged in")]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", links[1]["since"])


# ---- error replies --------------------------------------------------------------

ENVELOPES = [
    # (text sent, id echoed, method echoed, error)
    ("{not json", None, None, PARSE),
    ("[1, 2]", None, None, INVALID_REQUEST),
    ('"hub.info.get"', None, None, INVALID_REQUEST),
    ('{"id": {"a": 1}, "method": "hub.info.get"}', None, None, INVALID_REQUEST),
    ('{"id": [1], "method": "hub.info.get"}', None, None, INVALID_REQUEST),
    ('{"id": 9007199254740993, "method": "hub.info.get"}', None, None, INVALID_REQUEST),
    ('{"id": "caf\\u00e9", "method": "hub.info.get"}', None, None, INVALID_REQUEST),
    ('{"id": "%s", "method": "hub.info.get"}' % ("x" * 129), None, None, INVALID_REQUEST),
    ('{"id": "a"}', "a", None, INVALID_REQUEST),
    ('{"id": "a", "method": 5}', "a", None, INVALID_REQUEST),
    ('{"id": "a", "method": "hub.caf\\u00e9"}', "a", None, INVALID_REQUEST),
    ('{"id": "a", "method": "hub.nothing"}', "a", "hub.nothing", NOT_FOUND),
    ('{"id": "a", "method": "hub.info.get", "params": [1]}', "a", "hub.info.get", PARAM_INVALID),
    ('{"id": "a", "method": "hub.offline.login.ui", "params": {"user": "u"}}', "a", LOGIN_UI, PARAM_MISSING),
    ('{"id": "a", "method": "hub.offline.login.ui", "params": {"token": "t"}}', "a", LOGIN_UI, PARAM_MISSING),
    ('{"id": "a", "method": "hub.offline.login.ui", "params": {"user": 5, "token": "t"}}', "a", LOGIN_UI,
     PARAM_INVALID),
    ('{"id": "a", "method": "hub.offline.login.ui", "params": {"user": "u", "token": true}}', "a", LOGIN_UI,
     PARAM_INVALID),
    ('{"id": "a", "method": "hub.offline.login.hub", "params": {"hub": "%s", "token": "t"}}' % ("h" * 65), "a",
     LOGIN_HUB, PARAM_INVALID),
    ('{"id": 7, "method": "hub.diagnostics.get"}', 7, "hub.diagnostics.get", REQUIRED),
]


@pytest.mark.parametrize("text, rid, method, error", ENVELOPES)
@scenario
async def test_error_replies_are_the_readmes_and_keep_the_connection(env, text, rid, method, error):
    server = await env.make_server()
    end = await env.session(server)
    end.send_text(text)
    assert await end.json() == {"id": rid, "method": method, "error": error, "result": None}
    # The connection stays: the next request is answered.
    assert (await end.call("hub.info.get", rid="next"))["result"]["serial"] == SERIAL


@pytest.mark.parametrize("rid", [None, True, False, 0, -5, 1.5, 2 ** 53, "", "x" * 128])
@scenario
async def test_ids_within_bounds_are_echoed_as_sent(env, rid):
    server = await env.make_server()
    end = await env.session(server)
    end.send_json({"id": rid, "method": "hub.info.get"})
    reply = await end.json()
    assert reply["id"] == rid and type(reply["id"]) is type(rid)
    assert reply["error"] is None


@scenario
async def test_switch_params_are_checked(env):
    server, end = await env.user_session()
    assert outcome(await end.call(ANON_SET, {})) == PARAM_MISSING
    assert outcome(await end.call(ANON_SET, {"enabled": 1})) == PARAM_INVALID
    assert outcome(await end.call(ANON_SET, {"enabled": "true"})) == PARAM_INVALID
    assert (await end.call("hub.info.get"))["result"]["offlineAnonymousAccess"] is False
    assert outcome(await end.call(ANON_SET, {"Enabled": True})) == OK
    assert (await end.call("hub.info.get"))["result"]["offlineAnonymousAccess"] is True


# ---- logins ----------------------------------------------------------------------


@pytest.mark.parametrize("method, params", [
    (LOGIN_UI, {"user": USER, "token": TOKEN}),
    (LOGIN_UI, {"User": USER, "Token": TOKEN}),
    (LOGIN_HUB, {"hub": PEER, "token": PEER_TOKEN}),
])
@scenario
async def test_a_login_replies_an_empty_result_and_opens_the_methods(env, method, params):
    server = await env.make_server()
    end = await env.session(server)
    assert outcome(await end.call("hub.diagnostics.get")) == REQUIRED
    assert await end.call(method, params, "L") == {"id": "L", "method": method, "error": None, "result": {}}
    assert outcome(await end.call("hub.diagnostics.get")) == OK


async def refused_login(env, end, params, method=LOGIN_UI, delay=DELAY_MS):
    """Sends a login that must fail, and checks it is answered after `delay`
    ms of the clock and not before."""
    end.request(method, params, "bad")
    await env.advance(delay - 1)
    assert end.pending() == [], "a failed login answered before its delay of %d ms" % delay
    await env.advance(1)
    assert await end.json() == {"id": "bad", "method": method, "error": BAD_PASSWORD, "result": None}


@pytest.mark.parametrize("method, params", [
    (LOGIN_UI, {"user": USER, "token": "wrong"}),
    (LOGIN_UI, {"user": "nobody-uuid", "token": TOKEN}),
    (LOGIN_UI, {"user": USER, "token": TOKEN2}),  # another user's token
    (LOGIN_UI, {"user": PEER, "token": PEER_TOKEN}),  # a controller is no user
    (LOGIN_HUB, {"hub": USER, "token": TOKEN}),  # nor a user a controller
    (LOGIN_HUB, {"hub": PEER, "token": "wrong"}),
])
@scenario
async def test_a_wrong_login_is_a_bad_password_and_opens_nothing(env, method, params):
    server = await env.make_server()
    end = await env.session(server)
    await refused_login(env, end, params, method)
    assert outcome(await end.call("hub.diagnostics.get")) == REQUIRED


@pytest.mark.parametrize("first, second", [
    ((LOGIN_UI, {"user": USER, "token": TOKEN}), (LOGIN_UI, {"user": USER, "token": TOKEN})),
    ((LOGIN_UI, {"user": USER, "token": TOKEN}), (LOGIN_UI, {"user": USER2, "token": "wrong"})),
    ((LOGIN_UI, {"user": USER, "token": TOKEN}), (LOGIN_HUB, {"hub": PEER, "token": PEER_TOKEN})),
    ((LOGIN_HUB, {"hub": PEER, "token": PEER_TOKEN}), (LOGIN_UI, {"user": USER, "token": TOKEN})),
])
@scenario
async def test_a_second_login_is_already_logged_at_once_and_the_session_stays(env, first, second):
    server = await env.make_server()
    end = await env.session(server)
    assert outcome(await end.call(*first)) == OK
    assert outcome(await end.call(*second)) == ALREADY  # at once: no clock moved
    assert outcome(await end.call("hub.diagnostics.get")) == OK
    links = await end.call("hub.peer.links.list")
    assert outcome(links) == (NOT_ALLOWED if first[0] == LOGIN_HUB else OK)  # still the first role


@scenario
async def test_failed_logins_are_delayed_per_address_doubling_to_the_cap(env):
    server = await env.make_server(max_connections=4)
    here, there = ("192.0.2.50", 1000), ("192.0.2.60", 1000)
    wrong = {"user": USER, "token": "wrong"}
    first = await env.session(server, addr=here)
    for delay in (250, 500, 1000, 2000):
        await refused_login(env, first, wrong, delay=delay)
    # A new connection from the same address carries on where the first was.
    second = await env.session(server, addr=(here[0], 1001))
    await refused_login(env, second, wrong, delay=4000)
    await refused_login(env, second, wrong, delay=4000)  # login_delay_max_ms
    # Another address is not slowed by these.
    elsewhere = await env.session(server, addr=there)
    await refused_login(env, elsewhere, wrong, delay=250)
    # A success clears the address's count.
    assert outcome(await second.call(LOGIN_UI, {"user": USER, "token": TOKEN})) == OK
    third = await env.session(server, addr=(here[0], 1002))
    await refused_login(env, third, wrong, delay=250)


@scenario
async def test_the_fifth_failed_login_is_answered_then_the_connection_closed(env):
    server = await env.make_server(login_delay_ms=1, login_delay_max_ms=1)
    end = await env.session(server)
    for _ in range(4):
        await refused_login(env, end, {"user": USER, "token": "wrong"}, delay=1)
    assert not end.closed
    await refused_login(env, end, {"user": USER, "token": "wrong"}, delay=1)
    assert await end.close_frame() == (1008, "too many failed logins")


# ---- the switches ----------------------------------------------------------------


def stored_switches(env):
    with open(os.path.join(env.tmp, "switches.json")) as f:
        return json.load(f)


@scenario
async def test_insecure_on_replies_only_once_the_plain_listener_is_up(env):
    server, end = await env.user_session()
    with pytest.raises(ConnectionRefusedError):
        await env.connect(server, "ws")
    env.net.hold_listening()
    end.request(INSECURE_SET, {"enabled": True})
    await env.settle()
    assert end.pending() == [], "replied before the plain listener was up"
    env.net.release_listening()
    assert outcome(await end.json()) == OK
    plain = await env.session(server, kind="ws")
    assert (await plain.call("hub.info.get"))["result"]["offlineInsecureAccess"] is True
    assert stored_switches(env) == {"anonymous": False, "insecure": True}


@scenario
async def test_insecure_off_closes_the_plain_listener_and_connections_the_switcher_after_its_reply(env):
    server = await env.make_server(env.make_parts(cfg=env.cfg(max_connections=4), insecure=True))
    switcher = await env.session(server, user=USER, token=TOKEN, kind="ws")
    other = await env.session(server, user=USER2, token=TOKEN2, kind="ws")
    stranger = await env.session(server, kind="ws")
    secure = await env.session(server, user=USER, token=TOKEN)
    switcher.request(INSECURE_SET, {"enabled": False}, "off")
    assert await switcher.json() == {"id": "off", "method": INSECURE_SET, "error": None, "result": {}}
    assert await switcher.close_frame() == (1008, "insecure access disabled")
    assert await other.close_frame() == (1001, "insecure access disabled")
    assert await stranger.close_frame() == (1001, "insecure access disabled")
    with pytest.raises(ConnectionRefusedError):
        await env.connect(server, "ws")
    assert (await secure.call("hub.info.get"))["result"]["offlineInsecureAccess"] is False
    assert stored_switches(env) == {"anonymous": False, "insecure": False}


@scenario
async def test_insecure_on_with_the_plain_port_taken_stays_on_and_a_later_switch_retries(env):
    server, end = await env.user_session()
    env.net.taken.add(server.cfg["ws_port"])
    assert outcome(await end.call(INSECURE_SET, {"enabled": True})) == OK
    assert (await end.call("hub.info.get"))["result"]["offlineInsecureAccess"] is True
    assert env.logged("cannot listen for ws on 127.0.0.1:%d" % server.cfg["ws_port"])
    with pytest.raises(ConnectionRefusedError):
        await env.connect(server, "ws")
    env.net.taken.clear()
    assert outcome(await end.call(INSECURE_SET, {"enabled": False})) == OK
    assert outcome(await end.call(INSECURE_SET, {"enabled": True})) == OK
    await env.session(server, kind="ws")


@pytest.mark.parametrize("method", [ANON_SET, INSECURE_SET])
@scenario
async def test_a_switch_that_cannot_be_saved_changes_nothing(env, method):
    missing = os.path.join(env.tmp, "no-such-folder", "switches.json")
    server = await env.make_server(env.make_parts(switches_path=missing))
    end = await env.session(server, user=USER, token=TOKEN)
    assert await end.call(method, {"enabled": True}, "s") == {
        "id": "s", "method": method, "error": NOT_SAVED, "result": None}
    info = (await end.call("hub.info.get"))["result"]
    assert (info["offlineAnonymousAccess"], info["offlineInsecureAccess"]) == (False, False)
    stranger = await env.session(server)
    assert outcome(await stranger.call("hub.diagnostics.get")) == REQUIRED
    with pytest.raises(ConnectionRefusedError):
        await env.connect(server, "ws")


@pytest.mark.parametrize("method", [ANON_SET, ANON_ALIAS])
@scenario
async def test_anonymous_access_takes_effect_for_every_connection_at_once(env, method):
    server = await env.make_server()
    stranger = await env.session(server)
    user = await env.session(server, user=USER, token=TOKEN)
    assert outcome(await stranger.call("hub.diagnostics.get")) == REQUIRED
    assert await user.call(method, {"enabled": True}, "on") == {
        "id": "on", "method": method, "error": None, "result": {}}
    assert stored_switches(env) == {"anonymous": True, "insecure": False}
    assert outcome(await stranger.call("hub.diagnostics.get")) == OK
    assert outcome(await stranger.call("hub.peer.links.list")) == REQUIRED  # users only, never anonymous
    # Nor does the login timeout apply while it is on.
    await env.advance(LOGIN_TIMEOUT_MS + TICK_MS)
    assert not stranger.closed
    assert outcome(await user.call(method, {"enabled": False})) == OK
    assert outcome(await stranger.call("hub.diagnostics.get")) == REQUIRED


@scenario
async def test_concurrent_insecure_switches_leave_the_listener_as_the_stored_switch_says(env):
    server = await env.make_server()
    first = await env.session(server, user=USER, token=TOKEN)
    second = await env.session(server, user=USER2, token=TOKEN2)
    env.net.hold_listening()
    first.request(INSECURE_SET, {"enabled": True}, "on")
    await env.settle()
    second.request(INSECURE_SET, {"enabled": False}, "off")  # while the first still waits for its listener
    await env.settle()
    env.net.release_listening()
    assert outcome(await first.json()) == OK
    assert outcome(await second.json()) == OK
    assert stored_switches(env)["insecure"] is False
    assert (await first.call("hub.info.get"))["result"]["offlineInsecureAccess"] is False
    with pytest.raises(ConnectionRefusedError):
        await env.connect(server, "ws")


@scenario
async def test_failed_logins_of_an_address_are_forgotten_after_five_minutes(env):
    server = await env.make_server()
    here = ("192.0.2.50", 1000)
    end = await env.session(server, addr=here)
    await refused_login(env, end, {"user": USER, "token": "wrong"}, delay=250)
    await refused_login(env, end, {"user": USER, "token": "wrong"}, delay=500)
    end.hang_up()
    await env.advance(5 * 60 * 1000 - 750)  # just under five minutes after the last failure
    later = await env.session(server, addr=(here[0], 1001))
    await refused_login(env, later, {"user": USER, "token": "wrong"}, delay=1000)  # not yet forgotten
    later.hang_up()
    await env.advance(5 * 60 * 1000 + 1)
    last = await env.session(server, addr=(here[0], 1002))
    await refused_login(env, last, {"user": USER, "token": "wrong"}, delay=250)
