"""The cloud link in process (tools/harness/shell.py), against a fake cloud the
test plays: the login, the syncs, and what a sync result does to the data in
force, the stored file and the open sessions."""
import json
import os
import ssl

import pytest

from firmware.core import ws
from tools.harness.shell import (CLOUD_HOST, CLOUD_PORT, CLOUD_TOKEN, HUB, PEER, PEER_SERIAL, PEER_TOKEN, TOKEN, TOKEN2,
                              USER, USER2, access_result, parse_access, scenario)

SYNC = "cloud.access_keys_controller_sync"
UPDATED = "hub.offline.credentials.updated"
BACKOFF_S = 10  # cloud_backoff_max in these tests: the retry after a refused result


async def peer_with(env, version=1, users=None, peers=None, **cfg):
    """A server whose stored access data is of `version`."""
    data = parse_access(access_result(users=users, peers=peers, version=version, cert=True))
    parts = env.make_parts(cfg=env.cfg(max_connections=6, cloud_backoff_max=BACKOFF_S, **cfg), access=data)
    return await env.make_server(parts)


async def cloud_up(env, server, path=None):
    """Starts the cloud link and plays the cloud up to the first sync
    request: (the cloud's end, that request)."""
    env.start_cloud(server, path)
    remote = await env.net.accept()
    await remote.accept_upgrade()
    login = await remote.json()
    assert (login["method"], login["params"]) == ("cloud.controller.login", {"hub": HUB, "token": CLOUD_TOKEN})
    remote.reply(login, {})
    return remote, await next_sync(remote)


async def next_sync(remote):
    req = await remote.json()
    assert (req["method"], req.get("api")) == (SYNC, "3"), req
    return req


async def can_log_in(env, server, user, token):
    end = await env.session(server)
    end.request("hub.offline.login.ui", {"user": user, "token": token})
    await env.advance(4000)  # past any failed login's delay
    ok = (await end.json())["error"] is None
    end.send(ws.OP_CLOSE)
    await end.gone()
    return ok


def stored(env):
    path = os.path.join(env.tmp, "access.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


@scenario
async def test_the_link_verifies_the_clouds_name_logs_in_and_syncs_from_the_stored_version(env):
    server = await peer_with(env, version=7)
    env.start_cloud(server)
    remote = await env.net.accept()
    assert remote.sock.server_hostname == CLOUD_HOST and remote.sock.remote == ("192.0.2.1", CLOUD_PORT)
    assert remote.sock.tls.cadata and remote.sock.tls.verify_mode == ssl.CERT_REQUIRED
    head = await remote.accept_upgrade()
    assert head.startswith("GET / HTTP/1.1\r\n")
    login = await remote.json()
    assert login["params"] == {"hub": HUB, "token": CLOUD_TOKEN}
    remote.reply(login, {})
    assert (await next_sync(remote))["params"] == {"version": 7}


@scenario
async def test_a_newer_version_is_stored_owner_only_and_in_force(env):
    server = await peer_with(env, version=1, users={USER: [TOKEN]})
    assert not await can_log_in(env, server, USER2, TOKEN2)
    remote, sync = await cloud_up(env, server)
    result = access_result(users={USER: [TOKEN], USER2: [TOKEN2]}, version=2, cert=True)
    remote.reply(sync, result)
    await env.settle()
    assert stored(env) == result
    assert os.stat(os.path.join(env.tmp, "access.json")).st_mode & 0o777 == 0o600
    assert await can_log_in(env, server, USER2, TOKEN2)
    assert await can_log_in(env, server, USER, TOKEN)
    assert env.logged("access data version 2 in force")


@pytest.mark.parametrize("version,said", [(4, "rollback"), (5, "version 5 is current")])
@scenario
async def test_an_older_or_the_same_version_changes_nothing(env, version, said):
    server = await peer_with(env, version=5, users={USER: [TOKEN]})
    remote, sync = await cloud_up(env, server)
    remote.reply(sync, access_result(users={USER2: [TOKEN2]}, version=version, cert=True))
    await env.settle()
    assert stored(env) is None
    assert await can_log_in(env, server, USER, TOKEN)
    assert not await can_log_in(env, server, USER2, TOKEN2)
    assert env.logged(said)


@scenario
async def test_data_that_cannot_be_stored_leaves_the_old_data_in_force_and_is_retried(env):
    server = await peer_with(env, version=1, users={USER: [TOKEN]})
    unwritable = os.path.join(env.tmp, "no-such-folder", "access.json")
    remote, sync = await cloud_up(env, server, unwritable)
    remote.reply(sync, access_result(users={USER2: [TOKEN2]}, version=2, cert=True))
    await env.settle()
    assert env.logged("cannot persist")
    assert await can_log_in(env, server, USER, TOKEN)
    assert not await can_log_in(env, server, USER2, TOKEN2)
    # The next sync, after the backoff, still asks from the old version.
    await env.advance(BACKOFF_S * 1000)
    assert (await next_sync(remote))["params"] == {"version": 1}


@pytest.mark.parametrize("result, why", [
    ({"clients": {}, "peers": {}, "current": []}, "no version"),
    ("not an object", "cloud sync refused"),
    ({"peers": {}, "current": [], "version": 2}, "clients: missing"),
    ({"clients": [], "peers": {}, "current": [], "version": 2}, "clients: wrong type"),
    ("no certificate", "no certificate set loads"),
])
@scenario
async def test_a_result_refused_whole_changes_nothing(env, result, why):
    server = await peer_with(env, version=1, users={USER: [TOKEN]})
    remote, sync = await cloud_up(env, server)
    if result == "no certificate":
        result = access_result(users={USER2: [TOKEN2]}, version=2)  # current: []
    remote.reply(sync, result)
    await env.settle()
    assert stored(env) is None
    assert env.logged(why)
    assert await can_log_in(env, server, USER, TOKEN)
    assert not await can_log_in(env, server, USER2, TOKEN2)


@scenario
async def test_a_bad_entry_is_dropped_and_the_rest_applied(env):
    server = await peer_with(env, version=1, users={USER: [TOKEN]})
    remote, sync = await cloud_up(env, server)
    result = access_result(users={USER2: [TOKEN2]}, version=2, cert=True)
    result["clients"]["bad-user"] = ["not a digest"]
    remote.reply(sync, result)
    await env.settle()
    assert stored(env) == result
    assert await can_log_in(env, server, USER2, TOKEN2)
    assert not await can_log_in(env, server, USER, TOKEN)  # revoked by the new data


@scenario
async def test_sessions_the_new_data_no_longer_holds_are_closed_1008_and_the_rest_kept(env):
    server = await peer_with(env, version=1, users={USER: [TOKEN, "old-token"], USER2: [TOKEN2]},
                             peers={PEER: (PEER_SERIAL, [PEER_TOKEN])})
    kept = await env.session(server, user=USER, token=TOKEN)
    stranger = await env.session(server)
    revoked = {
        "rotated token": await env.session(server, user=USER, token="old-token"),
        "removed user": await env.session(server, user=USER2, token=TOKEN2),
        "removed peer": await env.session(server, peer=PEER, token=PEER_TOKEN),
    }
    remote, sync = await cloud_up(env, server)
    remote.reply(sync, access_result(users={USER: [TOKEN]}, peers={}, version=2, cert=True))
    await env.settle()
    for what, end in revoked.items():
        assert await end.close_frame() == (1008, "access revoked"), what
    assert (await kept.call("hub.diagnostics.get"))["error"] is None
    assert (await stranger.call("hub.info.get"))["error"] is None


@scenario
async def test_an_announced_newer_version_is_answered_and_synced_at_once(env):
    server = await peer_with(env, version=1)
    remote, sync = await cloud_up(env, server)
    remote.reply(sync, access_result(version=2, cert=True))
    await env.settle()
    remote.send_json({"id": "n1", "method": UPDATED, "params": {"newVersion": 3}})
    assert await remote.json() == {"id": "n1", "method": UPDATED, "error": None, "result": {}}
    assert (await next_sync(remote))["params"] == {"version": 2}


@pytest.mark.parametrize("announced", [1, 2])
@scenario
async def test_an_announced_version_not_newer_is_answered_and_ignored(env, announced):
    server = await peer_with(env, version=1)
    remote, sync = await cloud_up(env, server)
    remote.reply(sync, access_result(version=2, cert=True))
    await env.settle()
    remote.send_json({"id": "n1", "method": UPDATED, "params": {"newVersion": announced}})
    assert await remote.json() == {"id": "n1", "method": UPDATED, "error": None, "result": {}}
    await env.advance(1000)  # a sync would be asked at once
    assert remote.pending() == []


@scenario
async def test_a_refused_cloud_login_ends_the_link_and_it_is_dialled_again_later(env):
    server = await peer_with(env, version=1)
    env.start_cloud(server)
    remote = await env.net.accept()
    await remote.accept_upgrade()
    login = await remote.json()
    remote.reply(login, error={"code": -32500, "message": "Bad password", "data": "user.login.badpassword"})
    await remote.gone()
    assert env.logged("cloud link down: login refused")
    await env.advance(1000)  # the first backoff: 1 s at most
    again = await env.net.accept()
    await again.accept_upgrade()
    assert (await again.json())["method"] == "cloud.controller.login"


@scenario
async def test_an_announcement_during_a_sync_is_followed_by_a_sync(env):
    server = await peer_with(env, version=1)
    remote, sync = await cloud_up(env, server)
    remote.send_json({"id": "n1", "method": UPDATED, "params": {"newVersion": 3}})
    assert (await remote.json())["id"] == "n1"
    remote.reply(sync, access_result(version=2, cert=True))  # the answer to the sync asked before
    await env.settle()
    assert await can_log_in(env, server, USER2, TOKEN2)  # version 2 is in force
    await env.advance(1000)
    asked = [json.loads(p) for op, p in remote.pending() if op == ws.OP_TEXT]
    assert [(m["method"], m["params"]) for m in asked] == [(SYNC, {"version": 2})]


@scenario
async def test_malformed_json_from_the_cloud_ends_the_link_and_changes_nothing(env):
    server = await peer_with(env, version=1, users={USER: [TOKEN]})
    remote, sync = await cloud_up(env, server)
    remote.send_text('{"id": "%s", "result": {' % sync["id"])
    await remote.gone()
    assert env.logged("cloud link down: malformed JSON")
    assert stored(env) is None
    assert await can_log_in(env, server, USER, TOKEN)


@scenario
async def test_a_message_over_cloud_max_message_ends_the_link_and_changes_nothing(env):
    server = await peer_with(env, version=1, users={USER: [TOKEN]}, cloud_max_message=4096)
    remote, sync = await cloud_up(env, server)
    result = access_result(users={USER2: [TOKEN2]}, version=2, cert=True)
    result["pad"] = "p" * 4096
    remote.reply(sync, result)
    await remote.gone()
    assert stored(env) is None
    assert not await can_log_in(env, server, USER2, TOKEN2)


@pytest.mark.parametrize("request_, error", [
    ({"id": "q", "method": "cloud.other"}, {"code": -32601, "message": "Method not found",
                                            "data": "rpc.method.notfound"}),
    ({"id": "q", "method": UPDATED, "params": {}}, {"code": -32600, "message": "Bad request",
                                                    "data": "rpc.params.notfound"}),
    ({"id": "q", "method": UPDATED, "params": {"newVersion": "9"}}, {"code": -32602, "message": "Wrong params",
                                                                     "data": "rpc.params.invalid"}),
])
@scenario
async def test_other_requests_from_the_cloud_get_an_error_and_the_link_stays(env, request_, error):
    server = await peer_with(env, version=1)
    remote, sync = await cloud_up(env, server)
    remote.send_json(request_)
    assert await remote.json() == {"id": "q", "method": request_["method"], "error": error, "result": None}
    remote.reply(sync, access_result(version=2, cert=True))
    await env.advance(1000)
    assert not remote.closed and remote.pending() == []
    assert env.logged("access data version 2 in force")
