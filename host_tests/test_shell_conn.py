"""A client connection in process (tools/harness/shell.py): the upgrade, frames
in and replies out, protocol violations, and the deadlines and pings the
server's clock keeps, driven by the fake clock."""
import pytest

from firmware.core import ws
from tools.harness.shell import SERIAL, TICK_MS, TOKEN, TOKEN2, USER, USER2, scenario

HANDSHAKE_MS, LOGIN_MS, IDLE_MS, PING_MS, WRITE_MS = 10000, 30000, 60000, 20000, 10000  # README, "Limits"
LINGER_MS = 500  # README, "Security": a server-initiated close waits this long for the client to hang up


def info_request(rid="1"):
    return ws.encode(ws.OP_TEXT, '{"id": "%s", "method": "hub.info.get"}' % rid, mask=True)


def status_of(head):
    return int(head.split(" ", 2)[1])


# ---- the upgrade ------------------------------------------------------------------


@scenario
async def test_an_upgrade_is_accepted_and_a_request_answered(env):
    server = await env.make_server()
    end = await env.connect(server)
    head = await end.upgrade()
    assert "Upgrade: websocket\r\n" in head and "Connection: Upgrade\r\n" in head
    assert (await end.call("hub.info.get"))["result"]["serial"] == SERIAL


@scenario
async def test_frames_in_the_same_write_as_the_upgrade_are_served(env):
    server = await env.make_server()
    end = await env.connect(server)
    await end.upgrade(then=info_request("a") + info_request("b"))
    assert [(await end.json())["id"], (await end.json())["id"]] == ["a", "b"]


@scenario
async def test_an_upgrade_in_small_pieces_is_accepted(env):
    server = await env.make_server()
    end = await env.connect(server)
    key, req = end.upgrade_request()
    for i in range(0, len(req), 7):
        end.feed(req[i:i + 7])
        await env.settle()
    assert (await end.head()).startswith("HTTP/1.1 101 ")


def refused(end, kind):
    key, good = end.upgrade_request()
    text = good.decode()
    if kind == "post":
        return text.replace("GET ", "POST ", 1).encode(), 405
    if kind == "no key":
        return text.replace("Sec-WebSocket-Key: %s\r\n" % key, "").encode(), 400
    if kind == "bad key":
        return text.replace(key, "not-a-key").encode(), 400
    if kind == "version 8":
        return text.replace("Version: 13", "Version: 8").encode(), 426
    if kind == "no upgrade":
        return text.replace("Upgrade: websocket\r\n", "").encode(), 400
    if kind == "no host":
        return text.replace("Host: peer.test\r\n", "").encode(), 400
    if kind == "too big":
        return end.upgrade_request(extra="X-Pad: %s\r\n" % ("p" * 2100))[1], 431
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["post", "no key", "bad key", "version 8", "no upgrade", "no host", "too big"])
@scenario
async def test_a_bad_upgrade_gets_its_http_error_and_lingers_until_the_client_hangs_up(env, kind):
    server = await env.make_server()
    end = await env.connect(server)
    req, status = refused(end, kind)
    end.feed(req)
    head = await end.head()
    assert status_of(head) == status, head
    body = bytes(end.sock.outbox).decode()
    assert body.endswith("\n") and body.count("\n") == 1 and len(body) > 1  # a one-line reason
    assert "Content-Length: %d\r\n" % len(body) in head
    await env.settle()
    assert not end.closed  # the error is not cut by a reset: the client hangs up first
    await end.leave()


@scenario
async def test_a_bad_upgrade_is_closed_after_the_linger_when_the_client_stays(env):
    server = await env.make_server()
    end = await env.connect(server)
    end.feed(refused(end, "post")[0])
    assert status_of(await end.head()) == 405
    await env.advance(LINGER_MS - 1)
    assert not end.closed
    await env.advance(TICK_MS)
    assert end.closed


# ---- frames -----------------------------------------------------------------------


@scenario
async def test_frames_before_a_bad_frame_are_answered_then_1002(env):
    server = await env.make_server()
    end = await env.session(server)
    bad = bytearray(ws.encode(ws.OP_TEXT, "{}", mask=True))
    bad[0] |= 0x40  # a reserved bit
    end.feed(info_request("a") + info_request("b") + bytes(bad) + info_request("after"))
    assert (await end.json())["id"] == "a"
    assert (await end.json())["id"] == "b"
    assert (await end.close_frame())[0] == 1002
    await env.settle()
    assert end.pending() == []  # nothing after the close: the last request is not served


@scenario
async def test_a_ping_is_answered_with_its_payload_and_a_pong_with_nothing(env):
    server = await env.make_server()
    end = await env.session(server)
    end.send(ws.OP_PING, b"hello")
    assert await end.frame() == (ws.OP_PONG, b"hello")
    end.send(ws.OP_PONG, b"unasked")
    await env.settle()
    assert end.pending() == [] and not end.closed


@pytest.mark.parametrize("payload, echoed", [
    (b"", 1000),
    ((1000).to_bytes(2, "big") + b"bye", 1000),
    ((1001).to_bytes(2, "big"), 1001),
    ((4000).to_bytes(2, "big"), 4000),
])
@scenario
async def test_a_close_is_echoed_and_the_socket_closed_at_once(env, payload, echoed):
    server = await env.make_server()
    end = await env.session(server)
    end.send(ws.OP_CLOSE, payload)
    assert (await end.close_frame())[0] == echoed
    await end.gone()  # without the clock moving: no linger after the client's own close


@pytest.mark.parametrize("op, payload, code", [
    (ws.OP_BINARY, b"\x00\x01", 1003),
    (ws.OP_CLOSE, (999).to_bytes(2, "big"), 1002),
    (ws.OP_CLOSE, b"\x03", 1002),
    (ws.OP_TEXT, b"\xff\xfe", 1007),
    (ws.OP_TEXT, b"x" * 1025, 1009),
    (ws.OP_CONT, b"x", 1002),
])
@scenario
async def test_protocol_violations_close_with_their_code(env, op, payload, code):
    server = await env.make_server()
    end = await env.session(server)
    end.send(op, payload)
    assert (await end.close_frame())[0] == code
    await end.leave()


@scenario
async def test_a_message_of_max_message_bytes_is_served(env):
    server = await env.make_server()
    end = await env.session(server)
    text = '{"id": "big", "method": "hub.info.get", "pad": "%s"}'
    end.send_text(text % ("p" * (1024 - len(text % ""))))
    assert (await end.json())["id"] == "big"


@scenario
async def test_connections_over_the_limit_are_closed_at_once_and_the_others_served(env):
    server = await env.make_server()
    first = await env.session(server, user=USER, token=TOKEN)
    await env.session(server, user=USER2, token=TOKEN2)
    third = await env.connect(server)
    assert third.closed and bytes(third.sock.outbox) == b""
    assert (await first.call("hub.info.get"))["error"] is None
    first.send(ws.OP_CLOSE)
    await first.gone()
    await env.session(server)  # a slot is free again


# ---- deadlines and pings ------------------------------------------------------------


@pytest.mark.parametrize("sent", [b"", b"GET / HTTP/1.1\r\nHost: x\r\n"])
@scenario
async def test_an_upgrade_not_done_within_the_handshake_timeout_is_dropped_silently(env, sent):
    server = await env.make_server()
    end = await env.connect(server)
    end.feed(sent)
    await env.advance(HANDSHAKE_MS - 1)
    assert not end.closed
    await env.advance(TICK_MS)
    assert end.closed and bytes(end.sock.outbox) == b""


@scenario
async def test_a_connection_not_logged_in_within_the_login_timeout_is_closed_1008(env):
    server = await env.make_server()
    end = await env.session(server)
    await env.advance(LOGIN_MS - 1)
    assert not end.closed
    await env.advance(TICK_MS)
    assert await end.close_frame() == (1008, "login timeout")


@scenario
async def test_a_logged_in_connection_outlives_the_login_timeout(env):
    server, end = await env.user_session()
    await env.advance(LOGIN_MS + TICK_MS)
    end.send(ws.OP_PONG)
    await env.settle()
    assert [f for f in end.pending() if f[0] != ws.OP_PING] == []
    assert (await end.call("hub.info.get"))["error"] is None


@scenario
async def test_a_silent_connection_is_pinged_then_closed_1001_at_the_idle_timeout(env):
    server, end = await env.user_session()
    await env.advance(PING_MS - 1)
    assert end.pending() == []
    await env.advance(TICK_MS)
    assert end.pending() == [(ws.OP_PING, b"")]
    await env.advance(IDLE_MS - PING_MS - TICK_MS - 1)
    assert end.pending() == [(ws.OP_PING, b"")] and not end.closed  # the second, at 40 s
    await env.advance(TICK_MS)
    assert await end.close_frame() == (1001, "idle timeout")


@scenario
async def test_a_pong_counts_as_traffic_for_the_idle_timeout(env):
    server, end = await env.user_session()
    await env.advance(PING_MS)
    assert end.pending() == [(ws.OP_PING, b"")]
    end.send(ws.OP_PONG)  # at 20 s: idle until 80 s
    await env.advance(IDLE_MS - PING_MS + TICK_MS)
    assert [f for f in end.pending() if f[0] != ws.OP_PING] == [] and not end.closed
    await env.advance(PING_MS)
    assert await end.close_frame() == (1001, "idle timeout")


@scenario
async def test_no_ping_while_a_reply_is_still_being_written_and_one_once_it_is_out(env):
    server = await env.make_server(ping_interval=2)
    end = await env.session(server, user=USER, token=TOKEN)
    end.stop_reading()
    end.request("hub.info.get", rid="slow")
    await env.advance(2000 + 2 * TICK_MS)  # pings are due, the reply still waits for the socket
    end.resume_reading()
    await env.settle()
    frames = end.pending()
    assert [op for op, _ in frames] == [ws.OP_TEXT], frames  # the reply whole, and no ping inside or lost
    await env.advance(TICK_MS)
    assert end.pending() == [(ws.OP_PING, b"")]  # the ping that was due, at the next tick


@scenario
async def test_a_client_that_stops_reading_is_dropped_after_the_write_timeout(env):
    server, end = await env.user_session()
    other = await env.session(server, user=USER2, token=TOKEN2)
    end.stop_reading()
    end.request("hub.info.get")
    await env.advance(WRITE_MS - 1)
    assert not end.closed
    await env.advance(TICK_MS)
    assert end.closed
    assert (await other.call("hub.info.get"))["error"] is None
