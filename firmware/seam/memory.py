# The memory policy, in one place. The GC heap is the board's scarcest
# resource (README, "Memory"), and three rules keep it whole:
#
# - Transient code: the modules in TRANSIENT are needed only now and then
#   (start-up, a sync, boot and its network retries, a crash): release()
#   drops them after each use, and the next import loads them again. The
#   link modules stay out until a link is wanted, and the cloud link's code
#   is released when its link cannot be had.
# - Quiet points: the heap is collected when a connection or a link ends,
#   when start-up is done, and by the upkeep every 15 s; never inside a
#   request.
# - Start-up order (app.py): the data folder is read and parsed before the
#   server's code loads, since parsing is the peak and the heap is then
#   emptiest; the server's TLS context and the cloud link's are made next,
#   while a few KB in one piece are still to be had.
import gc
import sys

TRANSIENT = ("flash.datafolder", "flash.config", "core.access", "shell.tls", "seam.netup",
             "seam.crashlog")


def release(*names):
    # Modules by their name under firmware ("core.access").
    for name in names:
        sys.modules.pop("firmware." + name, None)
        layer, _, module = name.partition(".")
        package = sys.modules.get("firmware." + layer)
        if package is not None and hasattr(package, module):
            delattr(package, module)
    gc.collect()


def collect():
    # At a quiet point, or before something that needs a block in one piece
    # (a TLS context).
    gc.collect()


def heap(collect=False):
    # (allocated, free) bytes of the GC heap; after a collection when asked,
    # so the figure is what the peer really holds.
    if collect:
        gc.collect()
    return gc.mem_alloc(), gc.mem_free()


def resident():
    # The firmware's modules in the heap now, by their name under firmware.
    return sorted(name[9:] for name in sys.modules
                  if name.startswith("firmware.") and name.count(".") == 2)
