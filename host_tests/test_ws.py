"""Host tests for firmware/core/ws.py, cross-checked against wsproto (and MicroPython)."""

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import FrameProtocol

from firmware.core import ws, wsclient

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 section 1.3
MASK = b"\x37\xfa\x21\x3d"
SIZES = [0, 1, 125, 126, 65535, 65536]
ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = Path(sys.executable).parent / "micropython"


# ---- helpers -------------------------------------------------------------------


def request(*headers, line="GET /rpc HTTP/1.1"):
    return ("\r\n".join((line,) + headers) + "\r\n\r\n").encode()


GOOD_HEADERS = (
    "Host: esp32.local",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: " + RFC_KEY,
    "Sec-WebSocket-Version: 13",
)


def without(name, *extra):
    kept = tuple(h for h in GOOD_HEADERS if not h.lower().startswith(name.lower() + ":"))
    return request(*(kept + extra))


def raw(b0, payload=b"", mask=MASK, length=None, form=None):
    """A frame built by hand, so malformed ones can be made too."""
    n = len(payload) if length is None else length
    if form is None:
        form = 7 if n < 126 else 16 if n < 65536 else 64
    mbit = 0x80 if mask else 0
    if form == 7:
        head = bytes([b0, mbit | n])
    elif form == 16:
        head = bytes([b0, mbit | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, mbit | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def naive_unmask(data, mask):
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def open_wsproto_client():
    conn = WSConnection(ConnectionType.CLIENT)
    req = conn.send(Request(host="esp32.local", target="/rpc"))
    _, key = ws.parse_request(req[: ws.head_complete(req)])
    conn.receive_data(ws.accept_response(key))
    assert isinstance(next(conn.events()), AcceptConnection)
    return conn


def open_wsproto_server():
    conn = WSConnection(ConnectionType.SERVER)
    key = wsclient.new_key()
    conn.receive_data(wsclient.client_request("esp32.local", "/rpc", key))
    assert isinstance(next(conn.events()), Request)
    wsclient.check_response(conn.send(AcceptConnection()), key)
    return conn


def wsproto_events(conn, data):
    """Feed data to a wsproto connection; join partial messages."""
    conn.receive_data(data)
    out, pending = [], None
    for ev in conn.events():
        if isinstance(ev, Message):
            pending = ev.data if pending is None else pending + ev.data
            if ev.message_finished:
                out.append((type(ev), pending))
                pending = None
        elif isinstance(ev, (Ping, Pong)):
            out.append((type(ev), ev.payload))
        elif isinstance(ev, CloseConnection):
            out.append((CloseConnection, ev.code, ev.reason))
        else:
            out.append((type(ev),))
    return out


def strict_ok(b):
    try:
        b.decode("utf-8", "strict")
    except UnicodeDecodeError:
        return False
    return True


def structural_ok(b):
    """MicroPython's utf8_check: lead/continuation structure only."""
    need = 0
    for c in b:
        if need:
            if c & 0xC0 != 0x80:
                return False
            need -= 1
        elif c >= 0xF8 or 0x80 <= c < 0xC0:
            return False
        elif c >= 0xC0:
            need = 1 if c < 0xE0 else 2 if c < 0xF0 else 3
    return need == 0


# ---- handshake: server side ---------------------------------------------------------


def test_accept_value_matches_rfc_example():
    resp = ws.accept_response(RFC_KEY)
    assert resp.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert resp.endswith(b"\r\n\r\n")
    assert ws.head_complete(resp) == len(resp)
    lines = resp.decode().split("\r\n")
    assert "Sec-WebSocket-Accept: " + RFC_ACCEPT in lines
    assert "Upgrade: websocket" in lines
    assert "Connection: Upgrade" in lines
    assert b"Extensions" not in resp and b"Protocol:" not in resp


def test_parse_request_ok():
    assert ws.parse_request(request(*GOOD_HEADERS)) == ("/rpc", RFC_KEY)


def test_parse_request_is_case_insensitive():
    head = request(
        "HOST: esp32.local",
        "upgrade: WebSocket",
        "CONNECTION: keep-alive,  UPGRADE",
        "sec-websocket-key:" + RFC_KEY,
        "SEC-WEBSOCKET-VERSION:   13  ",
        line="GET /a/b?c=d HTTP/1.1",
    )
    assert ws.parse_request(head) == ("/a/b?c=d", RFC_KEY)


def test_parse_request_joins_repeated_list_headers():
    head = without("Connection", "Connection: keep-alive", "Connection: upgrade")
    assert ws.parse_request(head) == ("/rpc", RFC_KEY)


B64_15 = base64.b64encode(b"x" * 15).decode()
B64_17 = base64.b64encode(b"x" * 17).decode()
REJECTIONS = [
    ("POST", request(*GOOD_HEADERS, line="POST /rpc HTTP/1.1"), 405),
    ("http/1.0", request(*GOOD_HEADERS, line="GET /rpc HTTP/1.0"), 400),
    ("short line", request(*GOOD_HEADERS, line="GET /rpc"), 400),
    ("extra space", request(*GOOD_HEADERS, line="GET  /rpc HTTP/1.1"), 400),
    ("not origin-form", request(*GOOD_HEADERS, line="GET rpc HTTP/1.1"), 400),
    ("no host", without("Host"), 400),
    ("duplicate host", request(*GOOD_HEADERS + ("Host: other",)), 400),
    ("no upgrade", without("Upgrade"), 400),
    ("upgrade h2c", without("Upgrade", "Upgrade: h2c"), 400),
    ("upgrade substring", without("Upgrade", "Upgrade: websocketx"), 400),
    ("no connection", without("Connection"), 400),
    ("connection keep-alive", without("Connection", "Connection: keep-alive"), 400),
    ("no version", without("Sec-WebSocket-Version"), 426),
    ("version 8", without("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"), 426),
    ("no key", without("Sec-WebSocket-Key"), 400),
    ("empty key", without("Sec-WebSocket-Key", "Sec-WebSocket-Key: "), 400),
    ("key 15 bytes", without("Sec-WebSocket-Key", "Sec-WebSocket-Key: " + B64_15), 400),
    ("key 17 bytes", without("Sec-WebSocket-Key", "Sec-WebSocket-Key: " + B64_17), 400),
    ("key not base64", without("Sec-WebSocket-Key", "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!=="), 400),
    ("key junk char", without("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ!="), 400),
    ("key non-canonical", without("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR=="), 400),
    ("key unpadded", without("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ"), 400),
    ("duplicate key", request(*GOOD_HEADERS + ("Sec-WebSocket-Key: " + RFC_KEY,)), 400),
    ("line without colon", request(*GOOD_HEADERS + ("Garbage",)), 400),
    ("space before colon", request(*GOOD_HEADERS + ("X-Foo : 1",)), 400),
    ("folded line", request(*GOOD_HEADERS + (" folded",)), 400),
    ("not utf-8", request(*GOOD_HEADERS)[:-4] + b"\r\nX: \xff\r\n\r\n", 400),
    ("data after head", request(*GOOD_HEADERS) + b"x", 400),
]


@pytest.mark.parametrize("name,head,status", REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_parse_request_rejects(name, head, status):
    with pytest.raises(ws.HandshakeError) as ei:
        ws.parse_request(head)
    err = ei.value
    assert err.status == status
    assert isinstance(err.reason, str) and 0 < len(err.reason) < 60
    assert "\r" not in err.reason and "\n" not in err.reason


def test_upgrade_rejection_reason():
    with pytest.raises(ws.HandshakeError) as ei:
        ws.parse_request(without("Upgrade"))
    assert ei.value.reason == "Not a WebSocket upgrade"


def test_head_complete():
    assert ws.head_complete(b"") == -1
    assert ws.head_complete(b"GET / HTTP/1.1\r\n") == -1
    assert ws.head_complete(b"GET / HTTP/1.1\r\n\r") == -1
    assert ws.head_complete(b"GET / HTTP/1.1\r\n\r\n") == 18
    assert ws.head_complete(bytearray(b"A\r\n\r\nframe bytes")) == 5
    assert ws.head_complete(b"x" * (ws.HEADER_MAX - 1)) == -1


def test_head_complete_limit():
    at_limit = b"x" * (ws.HEADER_MAX - 4) + b"\r\n\r\n"
    assert ws.head_complete(at_limit + b"more") == ws.HEADER_MAX
    for buf in (b"x" * ws.HEADER_MAX, b"x" * (ws.HEADER_MAX - 3) + b"\r\n\r\n"):
        with pytest.raises(ws.HandshakeError) as ei:
            ws.head_complete(buf)
        assert ei.value.status == 431
        assert ei.value.reason == "Request header too large"


def parse_http_response(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], headers, body


@pytest.mark.parametrize(
    "status,phrase",
    [(400, "Bad Request"), (405, "Method Not Allowed"), (426, "Upgrade Required"),
     (431, "Request Header Fields Too Large"), (404, "Not Found")],
)
def test_reject_response(status, phrase):
    line, headers, body = parse_http_response(ws.reject_response(status, "Nope, sorry"))
    assert line == "HTTP/1.1 %d %s" % (status, phrase)
    assert headers["Content-Type"] == "text/plain"
    assert headers["Connection"] == "close"
    assert body == b"Nope, sorry\n"
    assert int(headers["Content-Length"]) == len(body)
    assert (headers.get("Sec-WebSocket-Version") == "13") == (status == 426)


def test_reject_response_understood_by_wsproto():
    conn = WSConnection(ConnectionType.CLIENT)
    conn.send(Request(host="esp32.local", target="/rpc"))
    conn.receive_data(ws.reject_response(426, "Unsupported WebSocket version"))
    events = list(conn.events())
    assert isinstance(events[0], RejectConnection) and events[0].status_code == 426
    assert (b"sec-websocket-version", b"13") in events[0].headers
    body = b"".join(e.data for e in events if isinstance(e, RejectData))
    assert body == b"Unsupported WebSocket version\n"


def test_wsproto_client_handshake():
    conn = WSConnection(ConnectionType.CLIENT)
    req = conn.send(Request(host="esp32.local:8080", target="/rpc?x=1"))
    n = ws.head_complete(req)
    assert n == len(req)
    path, key = ws.parse_request(req[:n])
    assert path == "/rpc?x=1"
    conn.receive_data(ws.accept_response(key))
    events = list(conn.events())
    assert len(events) == 1 and isinstance(events[0], AcceptConnection)


# ---- handshake: client side ------------------------------------------------------------


def test_new_key():
    keys = {wsclient.new_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert len(base64.b64decode(key, validate=True)) == 16


def test_client_request_accepted_by_wsproto_server():
    key = wsclient.new_key()
    req = wsclient.client_request("esp32.local:80", "/rpc", key)
    assert ws.parse_request(req) == ("/rpc", key)
    conn = WSConnection(ConnectionType.SERVER)
    conn.receive_data(req)
    ev = next(conn.events())
    assert isinstance(ev, Request)
    assert (ev.host, ev.target, ev.extensions, ev.subprotocols) == ("esp32.local:80", "/rpc", [], [])
    resp = conn.send(AcceptConnection())
    assert ws.head_complete(resp) == len(resp)
    wsclient.check_response(resp, key)
    with pytest.raises(ws.HandshakeError) as ei:
        wsclient.check_response(resp, wsclient.new_key())
    assert ei.value.status == 502


def test_check_response_accepts_our_own_accept():
    wsclient.check_response(ws.accept_response(RFC_KEY), RFC_KEY)


def response(*headers, line="HTTP/1.1 101 Switching Protocols"):
    return request(*headers, line=line)


GOOD_RESPONSE = ("Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: " + RFC_ACCEPT)

BAD_RESPONSES = [
    ("404", response(line="HTTP/1.1 404 Not Found"), 404),
    ("200", response(*GOOD_RESPONSE, line="HTTP/1.1 200 OK"), 200),
    ("garbage status", response(*GOOD_RESPONSE, line="HTTP/1.1 abc Weird"), 502),
    ("http/1.0", response(*GOOD_RESPONSE, line="HTTP/1.0 101 Switching Protocols"), 502),
    ("empty line", response(*GOOD_RESPONSE, line="garbage"), 502),
    ("no accept", response(*GOOD_RESPONSE[:2]), 502),
    ("wrong accept", response(*GOOD_RESPONSE[:2], "Sec-WebSocket-Accept: " + ws.accept_key("x" * 24)), 502),
    ("two accepts", response(*GOOD_RESPONSE + (GOOD_RESPONSE[2],)), 502),
    ("no upgrade", response(*GOOD_RESPONSE[1:]), 502),
    ("no connection", response(GOOD_RESPONSE[0], GOOD_RESPONSE[2]), 502),
    ("extension", response(*GOOD_RESPONSE + ("Sec-WebSocket-Extensions: permessage-deflate",)), 502),
    ("subprotocol", response(*GOOD_RESPONSE + ("Sec-WebSocket-Protocol: chat",)), 502),
    ("malformed header", response(*GOOD_RESPONSE + ("nocolon",)), 502),
]


@pytest.mark.parametrize("name,head,status", BAD_RESPONSES, ids=[r[0] for r in BAD_RESPONSES])
def test_check_response_rejects(name, head, status):
    with pytest.raises(ws.HandshakeError) as ei:
        wsclient.check_response(head, RFC_KEY)
    assert ei.value.status == status
    assert isinstance(ei.value.reason, str) and ei.value.reason


def test_check_response_case_insensitive():
    wsclient.check_response(
        response("UPGRADE: WebSocket", "connection: upgrade", "sec-websocket-accept: " + RFC_ACCEPT), RFC_KEY
    )


# ---- frames: interoperability with wsproto ---------------------------------------------


def sample_payload(n):
    return (bytes(range(256)) * (n // 256 + 1))[:n]


@pytest.mark.parametrize("size", SIZES)
def test_decode_wsproto_client_binary(size):
    conn = open_wsproto_client()
    data = sample_payload(size)
    frame = conn.send(Message(data=data))
    assert frame[1] & 0x80  # wsproto masks as a client
    assert ws.Decoder(1 << 20).feed(frame) == [(ws.OP_BINARY, data)]


@pytest.mark.parametrize("size", SIZES)
def test_decode_wsproto_client_text(size):
    conn = open_wsproto_client()
    text = ("aé€𝄞" * size)[:size]
    frame = conn.send(Message(data=text))
    assert ws.Decoder(1 << 20).feed(frame) == [(ws.OP_TEXT, text.encode())]


def test_decode_wsproto_client_control_frames():
    conn = open_wsproto_client()
    stream = conn.send(Ping(payload=b"p" * 125)) + conn.send(Pong(payload=b"q"))
    stream += conn.send(CloseConnection(code=1001, reason="bye €"))
    items = ws.Decoder(100).feed(stream)
    assert items[:2] == [(ws.OP_PING, b"p" * 125), (ws.OP_PONG, b"q")]
    assert items[2][0] == ws.OP_CLOSE
    assert ws.parse_close(items[2][1]) == (1001, "bye €")


@pytest.mark.parametrize("size", SIZES)
def test_encode_accepted_by_wsproto_client(size):
    conn = open_wsproto_client()
    data = sample_payload(size)
    text = ("é€𝄞x" * size)[:size]
    stream = ws.encode(ws.OP_BINARY, data) + ws.encode(ws.OP_TEXT, text)
    assert wsproto_events(conn, stream) == [(BytesMessage, data), (TextMessage, text)]


def test_encode_control_frames_accepted_by_wsproto_client():
    conn = open_wsproto_client()
    stream = ws.encode(ws.OP_PING, b"x" * 125) + ws.encode(ws.OP_PONG)
    stream += ws.encode(ws.OP_CLOSE, ws.close_payload(1000, "done ✓"))
    assert wsproto_events(conn, stream) == [
        (Ping, b"x" * 125),
        (Pong, b""),
        (CloseConnection, 1000, "done ✓"),
    ]


def test_encode_fragments_accepted_by_wsproto_client():
    conn = open_wsproto_client()
    text = "héllo wörld €"
    raw_text = text.encode()
    stream = (
        ws.encode(ws.OP_TEXT, raw_text[:2], fin=False)  # splits "é"
        + ws.encode(ws.OP_PING, b"mid")
        + ws.encode(ws.OP_CONT, raw_text[2:9], fin=False)
        + ws.encode(ws.OP_CONT, raw_text[9:])
    )
    assert wsproto_events(conn, stream) == [(Ping, b"mid"), (TextMessage, text)]


@pytest.mark.parametrize("size", SIZES)
def test_encode_matches_wsproto_bytes(size, monkeypatch):
    data = sample_payload(size)
    assert ws.encode(ws.OP_BINARY, data) == bytes(FrameProtocol(client=False, extensions=[]).send_data(data))
    # With the same mask, masked frames must be byte-identical too.
    monkeypatch.setattr(os, "urandom", lambda n: MASK[:n])
    theirs = FrameProtocol(client=True, extensions=[]).send_data(data)
    assert ws.encode(ws.OP_BINARY, data, mask=True) == bytes(theirs)


def test_encode_close_matches_wsproto(monkeypatch):
    monkeypatch.setattr(os, "urandom", lambda n: MASK[:n])
    ours = ws.encode(ws.OP_CLOSE, ws.close_payload(1008, "policy"), mask=True)
    assert ours == bytes(FrameProtocol(client=True, extensions=[]).close(1008, "policy"))


@pytest.mark.parametrize("size", SIZES)
def test_masked_encode_accepted_by_wsproto_server(size):
    conn = open_wsproto_server()
    data = sample_payload(size)
    text = ("€a" * size)[:size]
    stream = ws.encode(ws.OP_BINARY, data, mask=True) + ws.encode(ws.OP_TEXT, text, mask=True)
    stream += ws.encode(ws.OP_PING, b"hi", mask=True)
    assert wsproto_events(conn, stream) == [(BytesMessage, data), (TextMessage, text), (Ping, b"hi")]


def test_wsproto_server_frames_decode_in_client_role():
    conn = open_wsproto_server()
    stream = conn.send(Message(data="hi €")) + conn.send(Message(data=b"\x00" * 70000))
    stream += conn.send(Ping(payload=b"ping"))
    assert ws.Decoder(1 << 20, client=True).feed(stream) == [
        (ws.OP_TEXT, "hi €".encode()),
        (ws.OP_BINARY, b"\x00" * 70000),
        (ws.OP_PING, b"ping"),
    ]


# ---- encode ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size,second,header_len", [(0, 0, 2), (125, 125, 2), (126, 126, 4), (65535, 126, 4), (65536, 127, 10)]
)
def test_encode_length_forms(size, second, header_len):
    frame = ws.encode(ws.OP_BINARY, bytes(size))
    assert frame[0] == 0x82 and frame[1] == second
    assert len(frame) == header_len + size
    masked = ws.encode(ws.OP_BINARY, bytes(size), mask=True)
    assert masked[1] == 0x80 | second and len(masked) == header_len + 4 + size


def test_encode_arguments():
    assert ws.encode(ws.OP_TEXT, "é") == b"\x81\x02\xc3\xa9"
    assert ws.encode(ws.OP_BINARY, bytearray(b"ab")) == b"\x82\x02ab"
    assert ws.encode(ws.OP_TEXT, "a", fin=False) == b"\x01\x01a"
    assert ws.encode(ws.OP_CONT, b"b") == b"\x80\x01b"
    assert ws.encode(ws.OP_PONG) == b"\x8a\x00"


def test_masked_encode_uses_fresh_keys():
    a = ws.encode(ws.OP_BINARY, b"\x00" * 8, mask=True)
    b = ws.encode(ws.OP_BINARY, b"\x00" * 8, mask=True)
    assert a[2:6] != b[2:6]
    assert a[6:] == a[2:6] * 2  # zero payload shows the key itself
    assert ws.Decoder(100).feed(a) == [(ws.OP_BINARY, b"\x00" * 8)]


# ---- decoder -------------------------------------------------------------------------


def mixed_stream():
    return b"".join(
        [
            raw(0x01, "frag".encode(), mask=b"\x00\x00\x00\x00"),
            raw(0x89, b"ping!"),
            raw(0x00, "ment €".encode()[:-1]),
            raw(0x8A, b""),
            raw(0x80, "ment €".encode()[-1:]),
            raw(0x82, sample_payload(300)),
            raw(0x81, b"short", form=64),  # non-minimal length
            raw(0x82, sample_payload(70000)),
            raw(0x88, ws.close_payload(1000, "bye")),
        ]
    )


MIXED_ITEMS = [
    (ws.OP_PING, b"ping!"),
    (ws.OP_PONG, b""),
    (ws.OP_TEXT, "fragment €".encode()),
    (ws.OP_BINARY, sample_payload(300)),
    (ws.OP_TEXT, b"short"),
    (ws.OP_BINARY, sample_payload(70000)),
    (ws.OP_CLOSE, b"\x03\xe8bye"),
]


def test_decoder_one_shot():
    assert ws.Decoder(100000).feed(mixed_stream()) == MIXED_ITEMS


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 13, 1000, 65537])
def test_decoder_chunked_equals_one_shot(chunk):
    stream = mixed_stream()
    dec = ws.Decoder(100000)
    items = []
    for i in range(0, len(stream), chunk):
        items += dec.feed(stream[i : i + chunk])
    assert items == MIXED_ITEMS


def test_decoder_accepts_bytearray_and_memoryview():
    frame = raw(0x82, b"abc")
    assert ws.Decoder(10).feed(bytearray(frame)) == [(ws.OP_BINARY, b"abc")]
    assert ws.Decoder(10).feed(memoryview(frame)) == [(ws.OP_BINARY, b"abc")]
    items = ws.Decoder(10).feed(frame)
    assert type(items[0][1]) is bytes


def test_decoder_empty_feed_and_partial_returns_nothing():
    dec = ws.Decoder(10)
    frame = raw(0x81, b"hello")
    assert dec.feed(b"") == []
    assert dec.feed(frame[:3]) == []
    assert dec.feed(frame[3:-1]) == []
    assert dec.feed(b"") == []
    assert dec.feed(frame[-1:]) == [(ws.OP_TEXT, b"hello")]


def test_fragmented_message_with_interleaved_control_frames():
    dec = ws.Decoder(100)
    assert dec.feed(raw(0x02, b"ab")) == []
    assert dec.feed(raw(0x89, b"1") + raw(0x00, b"cd")) == [(ws.OP_PING, b"1")]
    assert dec.feed(raw(0x8A, b"2") + raw(0x00, b"") + raw(0x80, b"ef")) == [
        (ws.OP_PONG, b"2"),
        (ws.OP_BINARY, b"abcdef"),
    ]
    # The decoder is ready for a new message afterwards.
    assert dec.feed(raw(0x81, b"x")) == [(ws.OP_TEXT, b"x")]


def test_text_split_inside_character_is_valid():
    euro = "€".encode()
    dec = ws.Decoder(100)
    assert dec.feed(raw(0x01, euro[:1]) + raw(0x00, euro[1:2])) == []
    assert dec.feed(raw(0x80, euro[2:])) == [(ws.OP_TEXT, euro)]


def test_control_frame_max_payload_ok():
    assert ws.Decoder(10).feed(raw(0x89, b"z" * 125)) == [(ws.OP_PING, b"z" * 125)]


PROTOCOL_ERRORS = [
    ("rsv1", raw(0xC1, b"x"), 1002),
    ("rsv2", raw(0xA1, b"x"), 1002),
    ("rsv3", raw(0x91, b"x"), 1002),
    ("rsv on control", raw(0xC9, b""), 1002),
] + [("opcode %d" % op, raw(0x80 | op, b"x"), 1002) for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15)] + [
    ("ping not fin", raw(0x09, b"x"), 1002),
    ("close not fin", raw(0x08, b""), 1002),
    ("pong not fin", raw(0x0A, b""), 1002),
    ("ping 126 bytes", raw(0x89, b"x" * 126), 1002),
    ("close 126 via 16-bit form", raw(0x88, b"x" * 126, form=16), 1002),
    ("continuation first", raw(0x80, b"x"), 1002),
    ("unfinished continuation first", raw(0x00, b"x"), 1002),
    ("text during text", raw(0x01, b"a") + raw(0x81, b"b"), 1002),
    ("binary during text", raw(0x01, b"a") + raw(0x82, b"b"), 1002),
    ("text during binary", raw(0x02, b"a") + raw(0x01, b"b"), 1002),
    ("continuation after end", raw(0x81, b"a") + raw(0x80, b"b"), 1002),
    ("64-bit top bit", raw(0x82, length=1 << 63), 1002),
    ("unmasked to server", raw(0x81, b"x", mask=None), 1002),
    ("bad utf-8", raw(0x81, b"\xff"), 1007),
    ("surrogate", raw(0x81, b"\xed\xa0\x80"), 1007),
    ("overlong", raw(0x81, b"\xc0\xaf"), 1007),
    ("truncated char", raw(0x81, b"ab\xe2\x82"), 1007),
    ("bad utf-8 in fragments", raw(0x01, b"a\xe2") + raw(0x80, b"\x82"), 1007),
]


@pytest.mark.parametrize("name,stream,code", PROTOCOL_ERRORS, ids=[p[0] for p in PROTOCOL_ERRORS])
def test_protocol_errors(name, stream, code):
    dec = ws.Decoder(1000)
    try:  # frames before the error come out first, the error stays
        dec.feed(stream)
        err = dec.error
    except ws.ProtocolError as e:
        err = e
    assert err is not None and err is dec.error
    assert err.code == code
    assert isinstance(err.reason, str) and 0 < len(err.reason) <= 123
    # Dead from now on, whatever comes next.
    with pytest.raises(ws.ProtocolError) as again:
        dec.feed(raw(0x81, b"ok"))
    assert again.value.code == code


def test_frames_before_a_protocol_error_in_the_same_feed_come_out_first():
    dec = ws.Decoder(1000)
    events = dec.feed(raw(0x81, b"first") + raw(0x89, b"p") + raw(0x83, b"x") + raw(0x81, b"never"))
    assert events == [(ws.OP_TEXT, b"first"), (ws.OP_PING, b"p")]
    assert dec.error.code == 1002 and dec.error.reason == "Unknown opcode"
    with pytest.raises(ws.ProtocolError):
        dec.feed(raw(0x81, b"ok"))


def test_a_protocol_error_with_nothing_before_it_raises_at_once():
    dec = ws.Decoder(1000)
    with pytest.raises(ws.ProtocolError) as ei:
        dec.feed(raw(0x83, b"x") + raw(0x81, b"later"))
    assert ei.value is dec.error


@pytest.mark.parametrize("name,stream,code", PROTOCOL_ERRORS, ids=[p[0] for p in PROTOCOL_ERRORS])
def test_protocol_errors_byte_by_byte(name, stream, code):
    dec = ws.Decoder(1000)
    with pytest.raises(ws.ProtocolError) as ei:
        for i in range(len(stream)):
            dec.feed(stream[i : i + 1])
    assert ei.value.code == code


@pytest.mark.parametrize("b0", [0xC1, 0x83, 0x09, 0x80])
def test_errors_detected_from_first_two_bytes(b0):
    with pytest.raises(ws.ProtocolError) as ei:
        ws.Decoder(1000).feed(raw(b0, b"x")[:2])
    assert ei.value.code == 1002


def test_unmasked_to_server_detected_from_first_two_bytes():
    with pytest.raises(ws.ProtocolError) as ei:
        ws.Decoder(1000).feed(b"\x81\x05")
    assert ei.value.code == 1002


def test_masked_to_client():
    frame = ws.encode(ws.OP_TEXT, "x", mask=True)
    with pytest.raises(ws.ProtocolError) as ei:
        ws.Decoder(1000, client=True).feed(frame)
    assert ei.value.code == 1002
    assert ws.Decoder(1000, client=True).feed(ws.encode(ws.OP_TEXT, "x")) == [(ws.OP_TEXT, b"x")]


def test_server_decoder_rejects_wsproto_server_frames():
    conn = open_wsproto_server()
    with pytest.raises(ws.ProtocolError) as ei:
        ws.Decoder(1000).feed(conn.send(Message(data="unmasked")))
    assert ei.value.code == 1002


@pytest.mark.parametrize("limit", [0, 1, 125, 126, 65535, 65536])
def test_max_message_boundary_single_frame(limit):
    data = sample_payload(limit)
    assert ws.Decoder(limit).feed(raw(0x82, data)) == [(ws.OP_BINARY, data)]
    with pytest.raises(ws.ProtocolError) as ei:
        ws.Decoder(limit).feed(raw(0x82, data + b"!"))
    assert ei.value.code == 1009


def test_max_message_boundary_fragments():
    dec = ws.Decoder(10)
    stream = raw(0x01, b"abcd") + raw(0x89, b"not counted") + raw(0x00, b"efg") + raw(0x80, b"hij")
    assert dec.feed(stream) == [(ws.OP_PING, b"not counted"), (ws.OP_TEXT, b"abcdefghij")]
    # The limit is per message: the next one starts from zero.
    assert dec.feed(raw(0x02, b"x" * 10) + raw(0x80, b"")) == [(ws.OP_BINARY, b"x" * 10)]
    dec.feed(raw(0x02, b"x" * 10))
    with pytest.raises(ws.ProtocolError) as ei:
        dec.feed(raw(0x80, b"y"))
    assert ei.value.code == 1009


def test_oversized_fragment_rejected_from_its_header():
    dec = ws.Decoder(10)
    dec.feed(raw(0x01, b"abcdef"))
    header = raw(0x80, b"12345")[:6]  # header only, no payload yet
    with pytest.raises(ws.ProtocolError) as ei:
        dec.feed(header)
    assert ei.value.code == 1009


@pytest.mark.parametrize("length,form", [(1 << 40, 64), (65536, 64), (1001, 16)])
def test_oversized_frame_rejected_from_header_alone(length, form):
    header = raw(0x82, length=length, form=form)  # 2-10 length bytes + mask, no payload
    dec = ws.Decoder(1000)
    with pytest.raises(ws.ProtocolError) as ei:
        dec.feed(header)
    assert ei.value.code == 1009
    assert dec._buf is None


def test_oversized_frame_rejected_before_mask_arrives():
    header = raw(0x82, length=1 << 40, form=64)
    dec = ws.Decoder(1000)
    assert dec.feed(header[:9]) == []
    with pytest.raises(ws.ProtocolError) as ei:
        dec.feed(header[9:])
    assert ei.value.code == 1009


def test_partial_payload_buffer_is_exactly_frame_size():
    dec = ws.Decoder(1 << 20)
    frame = raw(0x82, b"q" * 5000)
    assert dec.feed(frame[:100]) == []
    assert len(dec._buf) == 5000
    assert dec.feed(frame[100:]) == [(ws.OP_BINARY, b"q" * 5000)]
    assert dec._buf is None


# ---- utf-8 -------------------------------------------------------------------------

UTF8_CASES = [
    b"",
    b"plain ascii \x00\x7f",
    "é€𝄞中文".encode(),
    b"\xc2\x80",  # U+0080, smallest 2-byte
    b"\xdf\xbf",  # U+07FF
    b"\xe0\xa0\x80",  # U+0800, smallest 3-byte
    b"\xed\x9f\xbf",  # U+D7FF, just below surrogates
    b"\xee\x80\x80",  # U+E000, just above surrogates
    b"\xef\xbf\xbf",  # U+FFFF
    b"\xf0\x90\x80\x80",  # U+10000, smallest 4-byte
    b"\xf4\x8f\xbf\xbf",  # U+10FFFF, largest
    b"\xc0\x80",  # overlong NUL
    b"\xc0\xaf",  # overlong '/'
    b"\xc1\xbf",
    b"\xe0\x80\xaf",
    b"\xe0\x9f\xbf",
    b"\xf0\x80\x80\xaf",
    b"\xf0\x8f\xbf\xbf",
    b"\xed\xa0\x80",  # U+D800
    b"\xed\xbf\xbf",  # U+DFFF
    b"\xed\xa0\xbd\xed\xb2\xa9",  # CESU-8 pair
    b"\xf4\x90\x80\x80",  # U+110000
    b"\xf5\x80\x80\x80",
    b"\xf7\xbf\xbf\xbf",
    b"\xf8\x88\x80\x80\x80",
    b"\xfc\x84\x80\x80\x80\x80",
    b"\xfe",
    b"\xff",
    b"\x80",
    b"\xbf",
    b"a\x80b",
    b"\xc2",
    b"\xe2\x82",
    b"\xf0\x9d\x84",
    b"\xe2\x82\xac\xe2\x82",
    b"\xc2\x41",
    b"\xe2\x28\xa1",
    b"\xf0\x28\x8c\xbc",
    b"\xe0",  # suspect lead as the very last byte
    b"ok\xed",
    b"\xe0\xa0\x80\xe0\x80\x80",  # valid U+0800, then an overlong with the same lead
    b"\xed\x9f\xbf\xed\xa0\x80",  # valid U+D7FF, then a surrogate
    b"\xf0\x9f\x98\x80\xf0\x8f\xbf\xbf",  # emoji, then an overlong
    b"\xf4\x8f\xbf\xbf\xf4\x90\x80\x80",  # U+10FFFF, then U+110000
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",  # Autobahn 6.2
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",  # Autobahn 6.3-ish
]


@pytest.mark.parametrize("b", UTF8_CASES)
def test_valid_utf8_matches_cpython(b):
    assert ws.valid_utf8(b) == strict_ok(b)
    assert ws.valid_utf8(bytearray(b)) == strict_ok(b)


def boundary_sequences():
    # All 1- and 2-byte strings, and longer ones built from boundary bytes.
    edges = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
             0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF7, 0xF8, 0xFF]
    conts = [0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0]
    for a in range(256):
        yield bytes([a])
        for b in range(256):
            yield bytes([a, b])
    for a in edges:
        for b in conts:
            for c in conts:
                yield bytes([a, b, c])
                for d in conts:
                    yield bytes([a, b, c, d])


def test_valid_utf8_exhaustive_boundaries():
    bad = [b for b in boundary_sequences() if ws.valid_utf8(b) != strict_ok(b)]
    assert bad == []


def test_rfc3629_check_for_micropython_decoder():
    # MicroPython's decode() accepts every structurally well-formed sequence,
    # so the extra check alone must separate RFC 3629 from the rest. CPython's
    # strict decode never lets it run, hence this direct test.
    checked = 0
    for b in boundary_sequences():
        if structural_ok(b):
            checked += 1
            assert ws._rfc3629_ok(b) == strict_ok(b), b
    assert checked > 1000
    for b in UTF8_CASES:
        if structural_ok(b):
            assert ws._rfc3629_ok(b) == strict_ok(b), b


def test_valid_utf8_large_text():
    text = ("Ünïcödé ✓ 𝄞 " * 5000).encode()
    assert ws.valid_utf8(text)
    assert not ws.valid_utf8(text + b"\xed\xbf\xbf")
    assert not ws.valid_utf8(b"\xe0\x80\x80" + text)
    assert not ws.valid_utf8(text + b"\xf0\x8f\xbf\xbf")  # text already holds valid F0 leads


@pytest.mark.skipif(not MICROPYTHON.exists(), reason="MicroPython unix port not installed")
def test_valid_utf8_same_under_micropython(tmp_path):
    cases = UTF8_CASES + list(boundary_sequences())[::7]
    (tmp_path / "cases.bin").write_bytes(b"".join(bytes([len(c)]) + c for c in cases))
    script = (
        "import sys\nsys.path.insert(0, %r)\nfrom firmware.core import ws\n"
        "d = open('cases.bin', 'rb').read()\ni = 0\nout = []\n"
        "while i < len(d):\n    n = d[i]\n    out.append('1' if ws.valid_utf8(d[i + 1:i + 1 + n]) else '0')\n"
        "    i += 1 + n\nprint(''.join(out))\n" % str(ROOT)
    )
    (tmp_path / "run.py").write_text(script)
    res = subprocess.run(
        [str(MICROPYTHON), "run.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "".join("1" if strict_ok(c) else "0" for c in cases)


# ---- close payloads ------------------------------------------------------------------


@pytest.mark.parametrize(
    "code,reason",
    [(1000, ""), (1001, "going away"), (1003, "x"), (1007, "bad ✓"), (1011, "oops"),
     (3000, ""), (4999, "app")],
)
def test_close_round_trip(code, reason):
    payload = ws.close_payload(code, reason)
    assert payload[:2] == code.to_bytes(2, "big")
    assert ws.parse_close(payload) == (code, reason)
    assert ws.parse_close(bytearray(payload)) == (code, reason)


def test_close_payload_default_reason():
    assert ws.close_payload(1000) == b"\x03\xe8"
    assert ws.parse_close(b"") == (None, "")


@pytest.mark.parametrize(
    "reason", ["a" * 200, "€" * 60, "a" + "€" * 60, "aa" + "€" * 60, "𝄞" * 40, "a" * 123]
)
def test_close_payload_truncation(reason):
    payload = ws.close_payload(1000, reason)
    assert len(payload) <= 125
    code, got = ws.parse_close(payload)
    assert code == 1000 and reason.startswith(got)
    # Only cut when needed, and by less than one character.
    assert 123 - 3 <= len(got.encode()) <= 123 or got == reason


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2000, 2999, 5000, 65535])
def test_parse_close_invalid_code(code):
    with pytest.raises(ws.ProtocolError) as ei:
        ws.parse_close(code.to_bytes(2, "big") + b"why")
    assert ei.value.code == 1002


def test_parse_close_errors():
    with pytest.raises(ws.ProtocolError) as ei:
        ws.parse_close(b"\x03")
    assert ei.value.code == 1002
    for bad in (b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"ok\xe2\x82"):
        with pytest.raises(ws.ProtocolError) as ei:
            ws.parse_close(b"\x03\xe8" + bad)
        assert ei.value.code == 1007


def test_close_payload_matches_wsproto():
    frame = FrameProtocol(client=False, extensions=[]).close(1001, "shutting down")
    assert ws.encode(ws.OP_CLOSE, ws.close_payload(1001, "shutting down")) == bytes(frame)


# ---- unmask ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", list(range(10)) + [255, 256, 257, 511, 1000, 65537])
def test_unmask_matches_naive(n):
    data = os.urandom(n)
    mask = os.urandom(4)
    expected = naive_unmask(data, mask)
    assert ws.unmask(data, mask) == expected
    assert ws.unmask(bytearray(data), mask) == expected
    assert ws.unmask(memoryview(data), mask) == expected
    assert ws.unmask(expected, mask) == data


def test_unmask_keeps_zero_bytes():
    # High zero bytes must survive the trip through int.
    assert ws.unmask(b"\x00" * 7, b"\x00" * 4) == b"\x00" * 7
    assert ws.unmask(b"\x12\x34\x00\x00\x00", b"\x00\x00\x00\x00") == b"\x12\x34\x00\x00\x00"


def test_accept_helper_is_sha1_base64():
    assert ws.accept_key(RFC_KEY) == RFC_ACCEPT
    key = wsclient.new_key()
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    assert ws.accept_key(key) == base64.b64encode(digest).decode()


# ---- fragment bounds ---------------------------------------------------------------------


def fragments(count, piece=b"x"):
    frames = [raw(0x01, piece)] + [raw(0x00, piece) for _ in range(count - 2)]
    return b"".join(frames) + raw(0x80, piece)


def test_fragment_count_up_to_the_cap_is_reassembled():
    out = ws.Decoder(10000).feed(fragments(ws.MAX_FRAGMENTS))
    assert out == [(ws.OP_TEXT, b"x" * ws.MAX_FRAGMENTS)]


@pytest.mark.parametrize("piece", [b"x", b""])
def test_too_many_fragments_close_with_1009(piece):
    # Empty fragments add nothing to the size limit but still cost work.
    with pytest.raises(ws.ProtocolError) as ei:
        ws.Decoder(10000).feed(fragments(ws.MAX_FRAGMENTS + 1, piece))
    assert ei.value.code == 1009


def test_fragment_size_limit_counts_what_is_held():
    d = ws.Decoder(10)
    assert d.feed(raw(0x01, b"12345")) == []
    assert d.feed(raw(0x80, b"67890")) == [(ws.OP_TEXT, b"1234567890")]
    d.feed(raw(0x01, b"12345"))
    with pytest.raises(ws.ProtocolError) as ei:
        d.feed(raw(0x80, b"678901"))
    assert ei.value.code == 1009


def test_the_decoder_keeps_no_view_of_its_input():
    # The shell reads every chunk into one buffer and feeds a view of it
    # (wire.read): whatever the decoder keeps across feeds, or hands out,
    # must be its own copy.
    stream = (raw(0x81, b"first message") + raw(0x01, b"frag") + raw(0x89, b"ping")
              + raw(0x80, b"mented") + raw(0x82, bytes(range(200))))
    buf = bytearray(7)
    dec = ws.Decoder(1000)
    events = []
    for i in range(0, len(stream), len(buf)):
        chunk = stream[i : i + len(buf)]
        buf[: len(chunk)] = chunk
        events += dec.feed(memoryview(buf)[: len(chunk)])
        buf[:] = b"\xff" * len(buf)  # the next read overwrites it
    assert events == [(ws.OP_TEXT, b"first message"), (ws.OP_PING, b"ping"),
                      (ws.OP_TEXT, b"fragmented"), (ws.OP_BINARY, bytes(range(200)))]


def test_a_whole_frame_in_one_read_is_copied_out_of_the_buffer():
    buf = bytearray(raw(0x81, b"in place") + raw(0x89, b"p"))
    events = ws.Decoder(1000).feed(memoryview(buf))
    buf[:] = b"\x00" * len(buf)
    assert events == [(ws.OP_TEXT, b"in place"), (ws.OP_PING, b"p")]


def test_a_client_decoder_keeps_no_view_of_its_input_either():
    buf = bytearray(raw(0x81, b"from the server", mask=None))
    dec = ws.Decoder(1000, client=True)
    events = dec.feed(memoryview(buf)[:5]) + dec.feed(memoryview(buf)[5:])
    buf[:] = b"\x00" * len(buf)
    assert events == [(ws.OP_TEXT, b"from the server")]
