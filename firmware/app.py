# Start-up: read the data folder, build the hub and the server, run forever.
# The data is read before the server's modules are imported: parsing it is
# the start-up's peak, and the heap is then emptiest.
import asyncio
import gc
import sys

from firmware import board, store
from firmware.board import log

ACCESS_MAX = 65536
HOUSEKEEPING_S = 60


def load_access(access, path, cfg):
    # Serve what parses: a bad entry is logged and skipped, never fatal.
    obj, source = store.read_json(path, ACCESS_MAX)
    if source == "previous":
        log("warning: %s unreadable, using its previous copy" % path)
    if obj is None:
        log("no valid %s: no logins possible until access data arrives" % path)
        return access.Access()
    try:
        data, problems = access.parse(obj, cfg)
    except access.AccessError as e:
        log("access.json refused: %s" % e)
        return access.Access()
    for p in problems:
        log("access.json: %s" % p)
    return data


def load_cloud_ca(access, path):
    # DER of the CA that verifies the cloud, or None (logged).
    try:
        with open(path) as f:
            return access.der_cert(f.read(8192))
    except (OSError, access.AccessError) as e:
        log("cloud CA %s unusable (%s): no cloud link" % (path, e))
        return None


def load(folder):
    # (config, access data, cloud CA DER or None), or None when the
    # configuration is unusable.
    from firmware import access, config

    try:
        cfg = config.load(folder + "/config.json")
        ca = None
        if cfg["cloud_url"] and cfg["cloud_verify"]:
            ca = load_cloud_ca(access, folder + "/" + cfg["cloud_ca"])
        return cfg, load_access(access, folder + "/access.json", cfg), ca
    except config.ConfigError as e:
        log(str(e))
        return None
    finally:
        # Needed at start-up (and at a sync) only: their code leaves the heap.
        board.unload("config", "access")


def tls_context(data):
    # A server context from the first certificate set of the access data
    # that loads, or None. The context keeps its own parsed copy, so the DER
    # leaves the heap. Made before the server's code loads at start-up: it
    # needs a few KB in one piece, which a young heap still has.
    certs, data.certs = data.certs, []
    try:
        import ssl
    except ImportError:  # a build without TLS serves plain WS only
        log("this MicroPython has no ssl module: no WSS listener")
        return None
    for i, (cert, key, _parents) in enumerate(certs):
        try:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            return ctx
        except (ValueError, OSError) as e:
            log("access data current[%d]: certificate or key does not load (%s)" % (i, e))
    log("no loadable certificate in the access data current[]")
    return None


def data_dir(argv):
    if "--data" in argv:
        i = argv.index("--data")
        if i + 1 < len(argv):
            return argv[i + 1].rstrip("/")
    return "data"


async def housekeeping():
    while True:
        await asyncio.sleep(HOUSEKEEPING_S)
        board.uptime_s()  # keeps the uptime counter ahead of tick wrap-around
        gc.collect()


def start_cloud(cfg, server, ca, folder):
    # The local server runs on without the link when the heap is too small.
    try:
        from firmware.cloud import CloudLink

        link = CloudLink(cfg, server, ca, folder + "/access.json", log)
    except MemoryError:
        board.unload("cloud")
        log("no cloud link: not enough memory for it (see README, Memory)")
        return
    asyncio.create_task(link.run())


async def serve(cfg, data, ca, folder):
    tls = tls_context(data)
    from firmware.hub import VERSION, Hub
    from firmware.server import Server
    from firmware.switches import Switches

    switches = Switches(folder + "/switches.json", log)
    hub = Hub(cfg, data, switches, log)
    server = Server(cfg, hub, log)
    server.tls = tls
    await server.start()
    if cfg["cloud_url"] and (ca or not cfg["cloud_verify"]):
        start_cloud(cfg, server, ca, folder)
    gc.collect()  # start serving with the set-up's garbage gone
    log("peer %s (serial %s) version %s ready" % (cfg["hub"], cfg["serial"], VERSION))
    await housekeeping()


def main(argv):
    folder = data_dir(argv)
    loaded = load(folder)
    if loaded is None:
        sys.exit(2)
    try:
        asyncio.run(serve(loaded[0], loaded[1], loaded[2], folder))
    except KeyboardInterrupt:
        log("stopped")
