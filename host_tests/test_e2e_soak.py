"""Soak: two sessions pipelining requests while the peer pings every second
and drops a connection silent for 3 s. Every request must be answered, in
order and in time, and the peer must close nothing; then the largest
request and upgrade head the README documents must still be served."""
import json

from wsproto.events import Message

from tools.harness import soak
from tools.harness.peer import RawClient

DEPTH = 8  # requests in flight per session
DEADLINE_S = 10  # write_timeout: no reply may take longer


def biggest_request(max_message):
    """A valid request of exactly MAX_MESSAGE bytes."""
    frame = {"id": "big", "method": "hub.info.get", "params": {"pad": ""}}
    pad = max_message - len(json.dumps(frame))
    frame["params"]["pad"] = "x" * pad
    text = json.dumps(frame)
    assert len(text) == max_message
    return text


def biggest_head(limit):
    """A valid upgrade request head of exactly LIMIT bytes."""
    base = ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
    filler = "X-Pad: %s\r\n\r\n"
    pad = limit - len(base) - len(filler % "")
    return (base + filler % ("p" * pad)).encode()


def test_pipelined_sessions_lose_nothing_under_fast_pings_then_the_limits_hold(make_peer):
    p = make_peer(ping_interval=1, idle_timeout=3)
    count = soak.scaled(2000)
    tallies = soak.run(*(soak.session(p.url(), p.user, count, DEPTH, DEADLINE_S, name="c%d" % i)
                         for i in range(2)))
    for t in tallies:
        print(t)
        assert t.answered == count
    assert p.count("closed 10") == 0
    # After the soak, with a heap that has served thousands of requests:
    # the documented maxima on two connections at once.
    big = biggest_request(p.cfg.get("max_message", 1024))
    clients = [RawClient(p.cfg["wss_port"]).handshake() for _ in range(2)]
    for c in clients:
        assert c.request("hub.offline.login.ui", {"user": p.user[0], "token": p.user[1]})["error"] is None
    for round_ in range(20):
        for c in clients:
            c.send(Message(data=big))
        for c in clients:
            reply = next(ev for ev in c.events() if isinstance(ev, Message))
            assert json.loads(reply.data)["error"] is None, (round_, reply.data)
            assert json.loads(reply.data)["result"]["serial"] == p.cfg["serial"]
    for c in clients:
        c.close()
    head = biggest_head(2048)
    assert len(head) == 2048
    for _ in range(10):
        raw = RawClient(p.cfg["wss_port"])
        raw.send_bytes(head)
        reply = raw.sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 101 "), reply[:80]
        raw.close()
