# The client side of the WebSocket handshake (RFC 6455 4.1), for the links
# this peer opens: the cloud link and the peer links. Apart from ws.py so
# that a peer without links never loads it.
import binascii
import os

from firmware.core.ws import HandshakeError, accept_key, is_upgrade, split_head


def new_key():
    return binascii.b2a_base64(os.urandom(16))[:-1].decode()


def client_request(host, path, key):
    return (
        "GET %s HTTP/1.1\r\n"
        "Host: %s\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n" % (path, host, key)
    ).encode()


def check_response(head, key):
    line, h = split_head(head, 502)
    parts = line.split(" ", 2)
    if len(parts) < 2 or parts[0] != "HTTP/1.1":
        raise HandshakeError(502, "Malformed status line")
    if parts[1] != "101":
        status = parts[1]
        status = int(status) if len(status) == 3 and status.isdigit() else 502
        raise HandshakeError(status, "Upgrade refused")
    if not is_upgrade(h):
        raise HandshakeError(502, "Not a WebSocket upgrade")
    if h.get("sec-websocket-accept") != accept_key(key):
        raise HandshakeError(502, "Invalid Sec-WebSocket-Accept")
    # We never offer any, so the server must not select one (RFC 6455 4.1).
    if "sec-websocket-extensions" in h or "sec-websocket-protocol" in h:
        raise HandshakeError(502, "Unrequested extension or subprotocol")
