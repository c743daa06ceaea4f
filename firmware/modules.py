# Code needed only now and then (parsing at start-up and at a sync) is
# dropped from the heap between uses; the next import loads it again.
import gc
import sys


def drop(*names):
    import firmware

    for name in names:
        sys.modules.pop("firmware." + name, None)
        if hasattr(firmware, name):
            delattr(firmware, name)
    gc.collect()
