# Reading and writing an asyncio stream without losing a byte: the one
# module that knows asyncio's stream internals (out_buf, the socket in s).
#
# A read is never wrapped in a timeout. asyncio.wait_for runs the read in a
# task of its own, and when the deadline and the data arrive in the same
# loop round, the bytes already taken from the socket are thrown away with
# the cancelled task: the WebSocket decoder then sees a stream with a hole.
# Deadlines are kept by a clock instead (the server's, a link's own task),
# which cancels a reading task only to end its connection. Such a cancel
# lands while the task waits for the socket to become readable, before any
# byte is taken from it.
import asyncio

from firmware.core import ws


async def read(stream, buf):
    # A view of the bytes read into buf (at least one), valid until the next
    # read into it: ws.Decoder copies what it keeps, so no read allocates.
    # EOFError when the other side hung up. TLS may wake us with no
    # application data yet (handshake progress, a session ticket): keep
    # waiting then.
    while True:
        n = await stream.readinto(buf)
        if n == 0:
            raise EOFError
        if n is not None:
            return memoryview(buf)[:n]


async def read_head(stream, buf):
    # An HTTP head (the upgrade's request or answer): (head, end), where
    # head[:end] is the head and the rest what followed it. HandshakeError
    # (431) when it grows past ws.HEADER_MAX without ending.
    head = bytearray()  # grows in place: a small heap fragments less
    while True:
        head.extend(await read(stream, buf))
        end = ws.head_complete(head)
        if end >= 0:
            return head, end


def writing(stream):
    # Whether a write is still being drained: nothing else may be written
    # until it is, or the two would interleave.
    return bool(stream.out_buf)


async def write(stream, data, wait_ms):
    # Stream.write sends at once what the socket takes; only a remainder
    # waits for the event loop, whose every round costs a poll (1 ms on the
    # unix port once two TLS sockets are open). A drain cut short by its
    # deadline leaves part of a frame sent: the caller must close the stream.
    stream.write(data)
    if stream.out_buf:
        await asyncio.wait_for_ms(stream.drain(), wait_ms)


def write_now(stream, data):
    # For a task that must not wait (the clock, a cancelled task): a short
    # frame written only when no other write is pending, so it cannot land
    # inside another frame. What the socket does not take is queued and
    # leaves with the stream's next drain. True if it was written.
    if stream.out_buf:
        return False
    try:
        stream.write(data)
    except OSError:
        return False
    return True


def socket(stream):
    return stream.s
