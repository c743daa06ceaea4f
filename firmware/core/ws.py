# Sans-I/O WebSocket (RFC 6455): HTTP upgrade handshake and frame codec.
# Runs unchanged on MicroPython and CPython; the caller owns all I/O.
import binascii
import hashlib
import os

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011

HEADER_MAX = 2048
MAX_FRAGMENTS = 64  # each fragment costs work and heap beyond its payload

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OPCODES = (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG)
_PHRASES = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    426: "Upgrade Required",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
# Headers whose repetition makes a handshake ambiguous (RFC 6455 4.1, 4.2.1).
_SINGLE = ("host", "sec-websocket-key", "sec-websocket-accept")


class HandshakeError(Exception):
    def __init__(self, status, reason):
        super().__init__(status, reason)
        self.status = status
        self.reason = reason


class ProtocolError(Exception):
    def __init__(self, code, reason):
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


# ---- handshake ------------------------------------------------------------


def head_complete(buf):
    i = buf.find(b"\r\n\r\n", 0, HEADER_MAX)
    if i >= 0:
        return i + 4
    if len(buf) >= HEADER_MAX:
        raise HandshakeError(431, "Request header too large")
    return -1


def split_head(head, bad):
    # -> (first line, {lowercase name: value}); malformed heads raise `bad`.
    try:
        text = bytes(head).decode()
    except UnicodeError:
        raise HandshakeError(bad, "Malformed header")
    if not text.endswith("\r\n\r\n"):
        raise HandshakeError(bad, "Malformed header")
    lines = text[:-4].split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        # Whitespace in or around a name (incl. obsolete line folding) is invalid.
        if not sep or name.split() != [name]:
            raise HandshakeError(bad, "Malformed header")
        name = name.lower()
        value = value.strip()
        if name in headers:
            if name in _SINGLE:
                raise HandshakeError(bad, "Duplicate %s header" % name)
            value = headers[name] + ", " + value
        headers[name] = value
    return lines[0], headers


def _has_token(value, token):
    for t in value.split(","):
        if t.strip().lower() == token:
            return True
    return False


def is_upgrade(headers):
    return _has_token(headers.get("upgrade", ""), "websocket") and _has_token(
        headers.get("connection", ""), "upgrade"
    )


def accept_key(key):
    digest = hashlib.sha1((key + _GUID).encode()).digest()
    return binascii.b2a_base64(digest)[:-1].decode()


def _valid_key(key):
    # Re-encoding must give the key back: MicroPython's decoder skips junk
    # characters instead of failing.
    try:
        raw = binascii.a2b_base64(key)
    except ValueError:
        return False
    return len(raw) == 16 and binascii.b2a_base64(raw)[:-1] == key.encode()


def parse_request(head):
    line, h = split_head(head, 400)
    parts = line.split(" ")
    if len(parts) != 3 or not parts[1].startswith("/") or parts[2] != "HTTP/1.1":
        raise HandshakeError(400, "Malformed request line")
    if parts[0] != "GET":
        raise HandshakeError(405, "Method not allowed")
    if "host" not in h:
        raise HandshakeError(400, "Missing Host header")
    if not is_upgrade(h):
        raise HandshakeError(400, "Not a WebSocket upgrade")
    if h.get("sec-websocket-version") != "13":
        raise HandshakeError(426, "Unsupported WebSocket version")
    key = h.get("sec-websocket-key", "")
    if not _valid_key(key):
        raise HandshakeError(400, "Invalid Sec-WebSocket-Key")
    return parts[1], key


def accept_response(key):
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: %s\r\n\r\n" % accept_key(key)
    ).encode()


def reject_response(status, reason):
    body = (reason + "\n").encode()
    extra = ""
    if status == 426:
        extra = "Sec-WebSocket-Version: 13\r\n"
    elif status == 405:
        extra = "Allow: GET\r\n"
    head = (
        "HTTP/1.1 %d %s\r\n"
        "Content-Type: text/plain\r\n"
        "Content-Length: %d\r\n"
        "Connection: close\r\n"
        "%s\r\n" % (status, _PHRASES.get(status, "Error"), len(body), extra)
    )
    return head.encode() + body


# ---- payload helpers --------------------------------------------------------


_BLOCK = 256  # a multiple of 4, so every block starts on the mask's phase


def _xor_into(dst, src, mask):
    # A big-int XOR per block runs in C (a per-byte Python loop is ~10x
    # slower); blocks keep the temporaries small on a board's heap.
    n = len(src)
    m = mask * (_BLOCK >> 2)
    key = int.from_bytes(m, "little")
    for i in range(0, n, _BLOCK):
        k = min(_BLOCK, n - i)
        if k < _BLOCK:
            key = int.from_bytes(m[:k], "little")
        dst[i : i + k] = (int.from_bytes(src[i : i + k], "little") ^ key).to_bytes(k, "little")


def unmask(data, mask):
    out = bytearray(len(data))
    _xor_into(out, memoryview(data), mask)
    return bytes(out)


# MicroPython's decoder checks only lead/continuation structure. Given that
# structure, these (lead byte, bad second-byte range) pairs are exactly what
# RFC 3629 also forbids: overlongs, surrogates and code points > U+10FFFF.
_UTF8_BAD = (
    (b"\xc0", 0x80, 0xBF),
    (b"\xc1", 0x80, 0xBF),
    (b"\xe0", 0x80, 0x9F),
    (b"\xed", 0xA0, 0xBF),
    (b"\xf0", 0x80, 0x8F),
    (b"\xf4", 0x90, 0xBF),
    (b"\xf5", 0x80, 0xBF),
    (b"\xf6", 0x80, 0xBF),
    (b"\xf7", 0x80, 0xBF),
)


def _rfc3629_ok(b):
    # Precondition: b is structurally well-formed UTF-8. bytes.find scans in C,
    # so Python code runs only per occurrence of the few suspect lead bytes.
    for lead, lo, hi in _UTF8_BAD:
        i = b.find(lead)
        while i >= 0:
            if lo <= b[i + 1] <= hi:
                return False
            i = b.find(lead, i + 2)
    return True


def valid_utf8(b):
    # Pure ASCII needs no decoding: max() scans without allocating, where a
    # decode would copy the whole message on a small heap.
    if not b or max(b) < 0x80:
        return True
    try:
        b.decode()
    except UnicodeError:
        return False
    return _rfc3629_ok(b)


def close_payload(code, reason=""):
    b = reason.encode()
    if len(b) > 123:
        i = 123
        while b[i] & 0xC0 == 0x80:  # don't cut inside a character
            i -= 1
        b = b[:i]
    return code.to_bytes(2, "big") + b


def parse_close(payload):
    if not payload:
        return None, ""
    if len(payload) == 1:
        raise ProtocolError(CLOSE_PROTOCOL, "Invalid close payload")
    code = (payload[0] << 8) | payload[1]
    if not (1000 <= code <= 1003 or 1007 <= code <= 1011 or 3000 <= code <= 4999):
        raise ProtocolError(CLOSE_PROTOCOL, "Invalid close code")
    reason = bytes(payload[2:])
    if not valid_utf8(reason):
        raise ProtocolError(CLOSE_INVALID_DATA, "Invalid close reason")
    return code, reason.decode()


# ---- frames -------------------------------------------------------------------


def encode(opcode, payload=b"", mask=False, fin=True):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    b0 = opcode | (0x80 if fin else 0)
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes((b0, m | n))
    elif n < 65536:
        head = bytes((b0, m | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, m | 127)) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + unmask(payload, key)


def _header_len(h):
    # Total header size, known once the first two bytes are in.
    if len(h) < 2:
        return 2
    n = h[1] & 0x7F
    return 2 + (2 if n == 126 else 8 if n == 127 else 0) + (4 if h[1] & 0x80 else 0)


class Decoder:
    def __init__(self, max_message, client=False):
        self.max_message = max_message
        self._client = client
        self.error = None  # the ProtocolError that ended the stream
        self._hdr = b""  # header bytes of the current frame
        self._size = -1  # payload length once the header is complete
        self._mask = None
        self._buf = None  # bytearray collecting a payload split across feeds
        self._got = 0
        self._parts = None  # bytearray collecting a fragmented message
        self._nparts = 0
        self._msg_op = 0

    def feed(self, data):
        # The messages and control frames complete in data, in order. A
        # protocol error raises, unless frames before it came in the same
        # data: those are returned first, and the error stays in self.error
        # (every later feed raises it).
        if self.error:
            raise self.error
        out = []
        mv = memoryview(data)
        i = 0
        try:
            while True:
                if self._size < 0:
                    i = self._header(mv, i)
                    if self._size < 0:
                        break
                i = self._payload(mv, i, out)
                if self._size >= 0:
                    break
        except ProtocolError as e:
            self.error = e
            if not out:
                raise
        return out

    def _header(self, mv, i):
        h = self._hdr
        while i < len(mv):
            k = min(_header_len(h) - len(h), len(mv) - i)
            h += bytes(mv[i : i + k])
            i += k
            if len(h) == 2:
                self._check(h[0], h[1])
            if len(h) == _header_len(h):
                self._start(h)
                break
        self._hdr = h
        return i

    def _check(self, b0, b1):
        # Everything decidable from the first two bytes, before reading on.
        op = b0 & 0x0F
        if b0 & 0x70:
            raise ProtocolError(CLOSE_PROTOCOL, "Reserved bits set")
        if op not in _OPCODES:
            raise ProtocolError(CLOSE_PROTOCOL, "Unknown opcode")
        if op >= 8 and (not b0 & 0x80 or (b1 & 0x7F) > 125):
            raise ProtocolError(CLOSE_PROTOCOL, "Invalid control frame")
        if op == OP_CONT and self._parts is None:
            raise ProtocolError(CLOSE_PROTOCOL, "Unexpected continuation frame")
        if op in (OP_TEXT, OP_BINARY) and self._parts is not None:
            raise ProtocolError(CLOSE_PROTOCOL, "Expected continuation frame")
        if bool(b1 & 0x80) == self._client:
            raise ProtocolError(CLOSE_PROTOCOL, "Wrong frame masking")

    def _start(self, h):
        n = h[1] & 0x7F
        p = 2
        if n == 126:
            n = int.from_bytes(h[2:4], "big")
            p = 4
        elif n == 127:
            n = int.from_bytes(h[2:10], "big")
            p = 10
            if n >> 63:
                raise ProtocolError(CLOSE_PROTOCOL, "Invalid frame length")
        # Refuse before a single payload byte is buffered.
        if (h[0] & 0x0F) < 8:
            held = len(self._parts) if self._parts is not None else 0
            if held + n > self.max_message:
                raise ProtocolError(CLOSE_TOO_BIG, "Message too big")
        self._mask = h[p : p + 4] if h[1] & 0x80 else None
        self._size = n

    def _payload(self, mv, i, out):
        n = self._size
        avail = len(mv) - i
        if self._buf is None:
            if avail >= n:  # whole payload at hand: use it in place
                self._frame(mv[i : i + n], out)
                return i + n
            self._buf = bytearray(n)
            self._got = 0
        k = min(n - self._got, avail)
        memoryview(self._buf)[self._got : self._got + k] = mv[i : i + k]
        self._got += k
        if self._got == n:
            buf = self._buf
            self._buf = None
            self._frame(buf, out)
        return i + k

    def _frame(self, payload, out):
        b0 = self._hdr[0]
        self._hdr = b""
        self._size = -1
        if isinstance(payload, bytearray):  # our own copy: unmask it in place
            data = payload
            if self._mask:
                _xor_into(data, memoryview(data), self._mask)
        else:
            data = unmask(payload, self._mask) if self._mask else bytes(payload)
        op = b0 & 0x0F
        fin = b0 & 0x80
        if op >= 8:
            out.append((op, data))
            return
        if op:
            self._msg_op = op
            if fin:  # the common case: a whole message in one frame
                self._message(data, out)
                return
            self._parts = bytearray()
            self._nparts = 0
        self._nparts += 1
        if self._nparts > MAX_FRAGMENTS:
            raise ProtocolError(CLOSE_TOO_BIG, "Too many fragments")
        self._parts.extend(data)
        if fin:
            data = self._parts
            self._parts = None
            self._message(data, out)

    def _message(self, data, out):
        if self._msg_op == OP_TEXT and not valid_utf8(data):
            raise ProtocolError(CLOSE_INVALID_DATA, "Invalid UTF-8 in text message")
        out.append((self._msg_op, data))
