# Start-up: read the data folder (datafolder.py), build the hub and the
# server, run forever. The data is read before the server's modules are
# imported: parsing it is the start-up's peak, and the heap is then emptiest.
import asyncio
import sys

from firmware.seam import board, memory
from firmware.seam.board import log


def start_cloud(cfg, server, ca, folder):
    # The local server runs on without the link when the heap is too small.
    from firmware.shell import tls

    if tls.ssl is None:
        log("no cloud link: this MicroPython has no ssl module")
        return
    try:
        from firmware.shell.cloud import CloudLink

        link = CloudLink(cfg, server, ca, folder + "/access.json", log)
    except MemoryError:  # before its context was made, perhaps
        memory.release("shell.cloud", "shell.tls")
        log("no cloud link: not enough memory for it (see README, Memory)")
        return
    if link.tls is None:  # the CA does not load (logged): like no CA file
        memory.release("shell.cloud")
        return
    asyncio.create_task(link.run())


# The watchdog's timeout: whatever blocks the event loop must end within
# it. The longest are a TLS handshake (about 1 s of RSA on an ESP32), a sync
# applied and written to flash (a few seconds for 100 users), a name lookup
# that fails (lwIP gives up after about 7 s per DNS server) and an NTP query
# (1 s). A hung loop resets the board within 30 s.
WATCHDOG_MS = 30000


async def upkeep(cfg):
    # The loop feeds the watchdog every 5 s, so a hung loop resets the
    # board, and keeps the uptime counter ahead of tick wrap-around. Wi-Fi
    # and the clock that boot could not bring up are retried after 15 s,
    # then at doubling intervals up to 10 minutes.
    board.watchdog(WATCHDOG_MS)
    backoff = 15
    while True:
        for _ in range(backoff // 5):
            await asyncio.sleep(5)
            board.watchdog()
            board.uptime_s()
        memory.collect()
        missing = not board.settled()
        if missing:
            try:
                from firmware.seam import netup

                netup.up(cfg, 0)
            except Exception as e:  # MemoryError too: the feeding goes on
                log("network set-up failed (%s: %s)" % (type(e).__name__, e))
            memory.release("seam.netup")
        backoff = min(backoff * 2, 600) if missing else 15


async def serve(cfg, loaded, folder):
    # loaded is datafolder.load's list, which _start empties: no frame that
    # lives on holds the start-up's access data or its TLS context (a stale
    # slot of a long-lived frame would pin them: MicroPython's GC is
    # conservative), so the first sync that replaces them frees them.
    await _start(loaded, folder)
    from firmware.shell.hub import VERSION

    memory.collect()  # start serving with the set-up's garbage gone
    log("peer %s (serial %s) version %s ready" % (cfg["hub"], cfg["serial"], VERSION))
    board.pause_point("serving")  # the host's tests of main.py: PEER_CRASH_AT
    await upkeep(cfg)


async def _start(loaded, folder):
    cfg, data, ca = loaded
    loaded.clear()
    from firmware.shell import tls

    context = tls.server_context(data, log)
    from firmware.flash.switches import Switches
    from firmware.shell.server import Server

    server = Server(cfg, data, Switches(folder + "/switches.json", log), context, log)
    # Exits with status 3 when the WSS port cannot be bound: "ready" is
    # logged only with the WSS listener in place (or no certificate yet),
    # and a peer that cannot serve never opens the cloud link.
    await server.start()
    server.follow_peers(data)
    if cfg["cloud_url"] and (ca or not cfg["cloud_verify"]):
        start_cloud(cfg, server, ca, folder)


def main(argv):
    from firmware.flash import datafolder

    folder = datafolder.data_dir(argv)
    loaded = datafolder.load(folder)
    memory.release("flash.datafolder")
    if loaded is None:
        sys.exit(2)
    try:
        asyncio.run(serve(loaded[0], loaded, folder))
    except KeyboardInterrupt:
        log("stopped")
