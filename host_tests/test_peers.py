"""The peer links' decisions under CPython: which links follow a change of
the access data (plan), what a peer's answer becomes (_answer), and the
client link's helpers. The links themselves run in test_e2e_peers.py."""
import pytest

from firmware.core import rpc
from firmware.shell import link, peers
from firmware.core.auth import Peer

A, B, C = "uuid-a", "uuid-b", "uuid-c"


def data(**tokens):
    return {uuid: Peer("1000%d" % i, tuple(t)) for i, (uuid, t) in enumerate(tokens.items())}


def test_plan_starts_a_link_per_new_peer_up_to_the_limit_in_the_datas_order():
    got = peers.plan({}, data(**{A: ["x"], B: ["y"], C: ["z"]}), False, 2)
    assert got == ([], [A, B])


def test_plan_keeps_links_whose_peer_and_tokens_are_unchanged():
    assert peers.plan({A: ("x",)}, data(**{A: ["x"]}), False, 1) == ([], [])


def test_plan_stops_the_link_of_a_removed_peer_and_gives_its_place_to_another():
    assert peers.plan({A: ("x",)}, data(**{B: ["y"]}), False, 1) == ([A], [B])


def test_plan_restarts_a_link_whose_tokens_changed():
    assert peers.plan({A: ("x",)}, data(**{A: ["x", "new"]}), False, 1) == ([A], [A])


def test_plan_restarts_every_link_when_the_trust_chain_changed():
    held = {A: ("x",), B: ("y",)}
    assert peers.plan(held, data(**{A: ["x"], B: ["y"]}), True, 2) == ([A, B], [A, B])


def test_plan_with_limit_zero_only_stops():
    assert peers.plan({A: ("x",)}, data(**{A: ["x"], B: ["y"]}), True, 0) == ([A], [])
    assert peers.plan({}, data(**{A: ["x"]}), False, 0) == ([], [])


def test_plan_never_holds_more_than_the_limit():
    held = {A: ("x",)}
    stop, start = peers.plan(held, data(**{A: ["x"], B: ["y"], C: ["z"]}), False, 2)
    assert stop == [] and start == [B]


def test_a_peer_result_is_returned_as_it_is():
    assert peers._answer({"id": "f1", "error": None, "result": {"serial": "1"}}) == {"serial": "1"}
    assert peers._answer({"id": "f1", "result": []}) == []


def test_a_peer_error_becomes_ours_cut_to_size():
    with pytest.raises(rpc.RpcError) as e:
        peers._answer({"error": {"code": -32601, "message": "M" * 500, "data": "d" * 500}})
    assert (e.value.code, len(e.value.message), len(e.value.data)) == (-32601, 128, 128)
    with pytest.raises(rpc.RpcError) as e:
        peers._answer({"error": {"code": -32500, "message": "Bad", "data": None}})
    assert e.value.data is None


@pytest.mark.parametrize("err", [
    "text", 5, [], {"code": "1", "message": "m", "data": "d"}, {"code": 1, "message": 2},
    {"code": 1, "message": "m", "data": {"x": 1}},
])
def test_a_malformed_peer_error_is_reported_as_such(err):
    with pytest.raises(rpc.RpcError) as e:
        peers._answer({"error": err})
    assert e.value.data == "hub.peer.badanswer"


@pytest.mark.parametrize("url, parts", [
    ("wss://127.0.0.1:17000/", ("127.0.0.1", 17000, "/")),
    ("wss://HUB7001.local:17000", ("HUB7001.local", 17000, "/")),
    ("wss://cloud.example/ws/v1", ("cloud.example", 443, "/ws/v1")),
    ("wss://host:notaport/", ("host:notaport", 443, "/")),
])
def test_parse_url(url, parts):
    assert link.parse_url(url) == parts


def test_jitter_stays_within_its_spread():
    got = [link.jitter(1000, 0.5) for _ in range(200)]
    assert all(500 <= g <= 1000 for g in got)
    assert len(set(got)) > 10


def test_requests_and_replies_are_told_apart():
    assert link.is_request({"id": 1, "method": "m", "params": {}})
    assert not link.is_request({"id": 1, "method": "m", "error": None, "result": {}})
    assert not link.is_request({"id": 1, "result": {}})
    assert not link.is_request(None)
