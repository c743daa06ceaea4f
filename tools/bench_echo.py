# The benchmark's baseline (tools/bench.py): a bare TLS echo server on the
# same MicroPython as the peer, accepting and wrapping sockets the way the
# firmware's server does, so the peer's figures sit beside the floor.
#   micropython tools/bench_echo.py PORT CERT.der KEY.der
# Echoes every read back; "MEM?" is answered with "<heap in use> <open>\n".
import asyncio
import gc
import ssl
import sys

open_conns = [0]


def read(path):
    with open(path, "rb") as f:
        return f.read()


async def echo(sock):
    stream = asyncio.StreamReader(sock)
    buf = bytearray(512)  # the firmware's read chunk
    while True:
        n = await stream.readinto(buf)
        if n is None:  # TLS handshake progress, no data yet
            continue
        if n == 0:
            return
        data = bytes(buf[:n])
        if data == b"MEM?":
            gc.collect()  # count only what is live, as hub.diagnostics.get does
            data = b"%d %d\n" % (gc.mem_alloc(), open_conns[0])
        stream.write(data)
        await stream.drain()


async def serve(port, ctx):
    async def accept(reader, _writer):
        raw = reader.s
        raw.setsockopt(6, 1, 1)  # TCP_NODELAY on Linux, as the firmware sets it
        sock = ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        sock.setblocking(False)
        open_conns[0] += 1
        try:
            await echo(sock)
        except OSError:
            pass
        finally:
            open_conns[0] -= 1
            sock.close()
            raw.close()  # mbedTLS leaves the TCP socket open after a failed handshake

    srv = await asyncio.start_server(accept, "127.0.0.1", port)
    print("listening", port)
    await srv.wait_closed()


def main(argv):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(read(argv[2]), read(argv[3]))
    asyncio.run(serve(int(argv[1]), ctx))


main(sys.argv)
