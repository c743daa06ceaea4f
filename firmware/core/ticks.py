# Millisecond ticks on both targets: MicroPython's wrap-safe ticks, or a
# monotonic clock where those do not exist (CPython running the unit tests).
try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:
    import time

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b
