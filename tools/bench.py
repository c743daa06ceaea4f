"""Benchmark the peer beside a bare TLS echo server on the same MicroPython.

    make bench    (the compiled build: PEER_ROOT=build/host python -m tools.bench)

Both servers present the same RSA-2048 certificate to the same client TLS
settings. Every figure is the median of several runs, with their range.
All traffic stays on 127.0.0.1.
"""
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tools.devdata import write_private
from tools.harness.peer import MICROPYTHON, PEER_ROOT, ROOT, Peer, call, client_tls, diagnostics, free_port, shared_cert
from tools.harness.proc import LoggedProcess
from tools.harness.wait import wait_until

RUNS = 7  # connect and login samples
RATE_RUNS = 5
HEAP_RUNS = 5
CALLS = 300  # sequential round trips per rate sample
MAX_CONNS = 3  # the firmware's default max_connections
MSG = b"x" * 64  # about the size of a hub.info.get request
TIMEOUT = 10


def ms(seconds):
    return seconds * 1000


class Echo:
    """One TLS connection to bench_echo.py."""

    def __init__(self, port):
        raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock = client_tls().wrap_socket(raw, server_hostname="127.0.0.1")

    def _read(self, done):
        got = b""
        while not done(got):
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the echo server hung up")
            got += chunk
        return got

    def echo(self):
        self.sock.sendall(MSG)
        self._read(lambda got: len(got) >= len(MSG))

    def mem(self):
        """(heap in use, open connections) as the echo server sees them."""
        self.sock.sendall(b"MEM?")
        alloc, conns = self._read(lambda got: got.endswith(b"\n")).split()
        return int(alloc), int(conns)

    def close(self):
        self.sock.close()


def der_files(folder):
    """The shared certificate and key as DER files for bench_echo.py."""
    cert_pem, key_pem = shared_cert()
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    paths = os.path.join(folder, "cert.der"), os.path.join(folder, "key.der")
    with open(paths[0], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.DER))
    write_private(paths[1], key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    return paths


def start_echo(folder, port):
    args = [MICROPYTHON]
    if os.environ.get("PEER_HEAPSIZE"):  # the same heap as the peer's
        args += ["-X", "heapsize=" + os.environ["PEER_HEAPSIZE"]]
    args += [os.path.join(ROOT, "tools", "bench_echo.py"), str(port), *der_files(folder)]
    echo = LoggedProcess()
    echo.spawn(args)
    try:
        echo.wait_log("^listening", TIMEOUT)
    except AssertionError as e:
        echo.kill()
        raise RuntimeError("bench_echo.py did not start: %s" % e)
    return echo


def ok(reply):
    if reply.get("error") is not None:
        raise RuntimeError("%s failed: %s" % (reply.get("method"), reply["error"]))
    return reply["result"]


def peer_session(peer):
    """(connect ms, login ms) on a fresh connection."""
    t0 = time.perf_counter()
    ws = peer.connect()
    t1 = time.perf_counter()
    try:
        ok(peer.login(ws))
        return ms(t1 - t0), ms(time.perf_counter() - t1)
    finally:
        ws.close()


def echo_connect(port):
    t0 = time.perf_counter()
    c = Echo(port)
    try:
        c.echo()
        return ms(time.perf_counter() - t0)
    finally:
        c.close()


def peer_rate(peer):
    with peer.connect() as ws:
        ok(peer.login(ws))
        t0 = time.perf_counter()
        for _ in range(CALLS):
            ok(call(ws, "hub.info.get"))
        return CALLS / (time.perf_counter() - t0)


def echo_rate(port):
    c = Echo(port)
    try:
        t0 = time.perf_counter()
        for _ in range(CALLS):
            c.echo()
        return CALLS / (time.perf_counter() - t0)
    finally:
        c.close()


def settled(probe, conns):
    """The heap once the server counts `conns` connections: a closed one
    leaves its list a moment after the client has seen it close."""
    def heap():
        alloc, seen = probe()
        return alloc if seen == conns else None
    return wait_until(heap, TIMEOUT, "the server counting %d connections" % conns)


def idle_and_slope(allocs):
    """(heap with no connection, bytes per connection): a least-squares line
    through the heap at 1..n connections."""
    xs = range(1, len(allocs) + 1)
    slope = statistics.linear_regression(xs, allocs).slope
    return allocs[0] - slope, slope


def heap_and_conns(ws):
    d = diagnostics(ws)
    return d["heapAlloc"], d["connections"]


def peer_heap(peer):
    conns = []
    try:
        allocs = []
        for k in range(1, MAX_CONNS + 1):
            conns.append(peer.connect())
            ok(peer.login(conns[-1]))
            allocs.append(settled(lambda: heap_and_conns(conns[0]), k))
        return idle_and_slope(allocs)
    finally:
        for ws in conns:
            ws.close()


def echo_heap(port):
    conns = []
    try:
        allocs = []
        for k in range(1, MAX_CONNS + 1):
            conns.append(Echo(port))
            conns[-1].echo()  # the server holds it as a peer connection would be held
            allocs.append(settled(conns[0].mem, k))
        return idle_and_slope(allocs)
    finally:
        for c in conns:
            c.close()


def paired(runs, peer_fn, echo_fn):
    """Interleaved samples, so drift on the machine hits both sides alike."""
    samples = [(peer_fn(), echo_fn()) for _ in range(runs)]
    return [s[0] for s in samples], [s[1] for s in samples]


def cell(values, fmt):
    if not values:
        return "-"
    return "%s (%s-%s)" % (fmt % statistics.median(values), fmt % min(values), fmt % max(values))


def ratio(peer, base):
    if not base:
        return "-"
    return "%.2fx" % (statistics.median(peer) / statistics.median(base))


def measure(peer, port):
    """Table rows: (metric, peer samples, baseline samples, number format)."""
    sessions, echo_conn = paired(RUNS, lambda: peer_session(peer), lambda: echo_connect(port))
    rates = paired(RATE_RUNS, lambda: peer_rate(peer), lambda: echo_rate(port))
    heaps = paired(HEAP_RUNS, lambda: peer_heap(peer), lambda: echo_heap(port))
    return [
        ("connect+TLS+upgrade ms (echo: +1 round trip)",
         [s[0] for s in sessions], echo_conn, "%.1f"),
        ("login round trip ms", [s[1] for s in sessions], [], "%.1f"),
        ("round trips/s (%d sequential; echo: %d B)" % (CALLS, len(MSG)), *rates, "%.0f"),
        ("heap idle bytes", [h[0] for h in heaps[0]], [h[0] for h in heaps[1]], "%.0f"),
        ("heap per connection bytes (slope 1..%d)" % MAX_CONNS,
         [h[1] for h in heaps[0]], [h[1] for h in heaps[1]], "%.0f"),
    ]


def table(rows, baseline="baseline (TLS echo)"):
    lines = [("metric", "peer", baseline, "ratio")]
    lines += [(name, cell(p, fmt), cell(b, fmt), ratio(p, b)) for name, p, b, fmt in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    for n, line in enumerate(lines):
        cells = enumerate(zip(line, widths, strict=True))
        print(" | ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in cells))
        if n == 0:
            print("-+-".join("-" * w for w in widths))


def micropython_version():
    code = ("import sys; v = sys.implementation.version;"
            "print('%d.%d.%d (%s)' % (v[0], v[1], v[2], sys.version.split('MicroPython ')[-1]))")
    return subprocess.run([MICROPYTHON, "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT).stdout.strip()


@contextlib.contextmanager
def peer_and_echo(tmp):
    """A running peer and a running echo server: (peer, echo port)."""
    # One slot over the default so a connection still closing never
    # refuses the next run's.
    peer = Peer(os.path.join(tmp, "peer"), max_connections=MAX_CONNS + 1)
    echo = None
    try:
        peer.start()
        port = free_port()
        echo = start_echo(tmp, port)
        yield peer, port
    finally:
        peer.stop()
        if echo is not None:
            echo.kill()


def main():
    build = os.path.relpath(PEER_ROOT, ROOT) if PEER_ROOT != ROOT else "sources"
    print("build: %s   MicroPython: %s   heap: %s" % (
        build, micropython_version(), os.environ.get("PEER_HEAPSIZE") or "default"))
    print("median (min-max) of %d runs for connect/login, %d for rates and heap"
          % (RUNS, RATE_RUNS))
    with tempfile.TemporaryDirectory() as tmp, peer_and_echo(tmp) as (peer, port):
        rows = measure(peer, port)
    table(rows)
    print("heap: the GC heap after gc.collect(); mbedTLS's record buffers live outside it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
