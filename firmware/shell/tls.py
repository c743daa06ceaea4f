# Every TLS context the peer makes: the server's, from the access data, and
# the clients' of the cloud link and the peer links. The contexts keep
# their own parsed copies of what they are given, so the DER leaves the heap.
# Transient (memory.py): each function releases the module when it is done,
# so no caller has to.
from firmware.seam import memory

try:
    import ssl
except ImportError:  # a build without TLS: plain WS only, no links
    ssl = None


def server_context(data, log):
    try:
        return _server(data, log)
    finally:
        memory.release("shell.tls")


def _server(data, log):
    # From the first certificate set of the access data that loads, or None;
    # that set's public_parent chain stays in data.parents, for the peer
    # links. Made while the heap is young at start-up: it needs a few KB in
    # one piece.
    certs, data.certs = data.certs, []
    data.parents = ()
    if ssl is None:
        log("this MicroPython has no ssl module: no WSS listener")
        return None
    for i, (cert, key, parents) in enumerate(certs):
        try:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            data.parents = tuple(parents)
            return ctx
        except (ValueError, OSError) as e:
            log("access data current[%d]: certificate or key does not load (%s)" % (i, e))
    log("no loadable certificate in the access data current[]")
    return None


def client_context(cas):
    try:
        return _client(cas)
    finally:
        memory.release("shell.tls")


def _client(cas):
    # Trusting only the CAs in the list of DER certificates CAS, or checking
    # nothing when CAS is None. ValueError or OSError when a CA does not load:
    # the caller says which and goes without its link.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cas is None:
        ctx.verify_mode = ssl.CERT_NONE  # type: ignore[attr-defined]  # (a stub gap)
        return ctx
    ctx.verify_mode = ssl.CERT_REQUIRED  # type: ignore[attr-defined]
    for der in cas:
        ctx.load_verify_locations(cadata=der)
    return ctx
