"""The read path on the wire: frames are served in the order they came,
whatever else shares their TCP segment, and the log says how the peer
closed a connection even when the client hangs up at once."""
import json

from wsproto.events import CloseConnection, Message

from firmware.core import ws
from tools.harness.peer import RawClient



def test_a_request_and_a_bad_frame_in_one_write_get_the_reply_then_the_close(peer):
    raw = RawClient(peer.cfg["wss_port"]).handshake()
    request = json.dumps({"id": "before", "method": "hub.info.get"}).encode()
    raw.send_bytes(ws.encode(0x1, request, mask=True) + ws.encode(0x3, b"x", mask=True))
    events = list(raw.events())
    replies = [json.loads(ev.data) for ev in events if isinstance(ev, Message)]
    closes = [ev.code for ev in events if isinstance(ev, CloseConnection)]
    assert [r["id"] for r in replies] == ["before"]
    assert replies[0]["result"]["serial"] == peer.cfg["serial"]
    peer.wait_log(r"/wss (closed|connection lost)")
    assert closes[0] == 1002, peer.lines  # (wsproto adds a 1006 at the hang-up)


def test_the_log_names_the_close_we_sent_when_the_client_hangs_up_at_once(peer):
    raw = RawClient(peer.cfg["wss_port"]).handshake()
    raw.send_bytes(ws.encode(0x2, b"binary", mask=True))
    assert raw.close_code() == 1003
    raw.close()  # no close frame back: gone during our linger
    line = peer.wait_log(r"/wss (closed|connection lost)")
    assert line.rstrip().endswith("closed 1003 binary messages not supported"), line
