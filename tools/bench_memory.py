"""The memory budget: the peer's GC heap under the host MicroPython.

    make bench    (the compiled build: PEER_ROOT=build/host python -m tools.bench_memory)

Reports the GC heap after start-up and per logged-in WSS connection
(hub.diagnostics.get, after a collection: a line through the heap at 1..3
connections), and the lowest `-X heapsize=`, in 8 KB steps, at which the
local end-to-end suite still passes. The baseline, from the same run: a
bare TLS echo server on the same MicroPython, its heap the same way and the
lowest heap in which it serves two connections. README "On the board"
turns these 64-bit figures into the ESP32's budget.
"""
import os
import subprocess
import sys
import tempfile

from tools.harness.peer import MICROPYTHON, PEER_ROOT, ROOT, free_port
from tools.bench import (HEAP_RUNS, MAX_CONNS, Echo, peer_and_echo, echo_heap, micropython_version, paired,
                         peer_heap, start_echo, table)

# The local end-to-end suite, as `make test` runs it in TEST_HEAP: every
# test_e2e_* file but the cloud and peer-link ones.
SUITE = sorted("host_tests/" + f for f in os.listdir(os.path.join(ROOT, "host_tests"))
               if f.startswith("test_e2e_") and f.endswith(".py")
               and f not in ("test_e2e_cloud.py", "test_e2e_peers.py"))
STEP = 8  # KB
PEER_RANGE = range(48, 128 + STEP, STEP)
ECHO_RANGE = range(8, 128 + STEP, STEP)
CONNS = 2  # the default max_connections


def suite_passes(kb):
    env = dict(os.environ, PEER_ROOT=PEER_ROOT, PEER_HEAPSIZE="%dK" % kb, MICROPYTHON=MICROPYTHON)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"] + SUITE,
                          cwd=ROOT, env=env, capture_output=True, text=True)
    print("  %3dK: suite %s" % (kb, "passes" if done.returncode == 0 else "fails"), flush=True)
    return done.returncode == 0


def echo_serves(kb, folder):
    """Whether the echo server, in kb of heap, serves CONNS connections at once."""
    port = free_port()
    saved = os.environ.get("PEER_HEAPSIZE")
    os.environ["PEER_HEAPSIZE"] = "%dK" % kb  # start_echo gives the echo server this heap
    try:
        proc = start_echo(folder, port)
    except RuntimeError:
        return False
    finally:
        os.environ.pop("PEER_HEAPSIZE")
        if saved is not None:
            os.environ["PEER_HEAPSIZE"] = saved
    conns = []
    try:
        for _ in range(CONNS):
            conns.append(Echo(port))
            conns[-1].echo()
        ok = all(c.mem()[1] == CONNS for c in conns)
    except (OSError, ValueError):
        ok = False
    finally:
        for c in conns:
            c.close()
        proc.kill()
    print("  %3dK: echo server %s" % (kb, "serves" if ok else "fails"), flush=True)
    return ok


def lowest(sizes, passes):
    """The smallest size that passes, by bisection (passing is taken to hold
    from some size up), confirmed by a second run. None if the largest fails."""
    sizes = list(sizes)
    lo, hi = -1, len(sizes) - 1
    if not passes(sizes[hi]):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(sizes[mid]):
            hi = mid
        else:
            lo = mid
    while hi < len(sizes) - 1 and not passes(sizes[hi]):  # a pass at the edge by luck
        hi += 1
    return sizes[hi]


def main():
    build = os.path.relpath(PEER_ROOT, ROOT) if PEER_ROOT != ROOT else "sources"
    print("build: %s   MicroPython: %s" % (build, micropython_version()))
    with tempfile.TemporaryDirectory() as tmp:
        with peer_and_echo(tmp) as (peer, port):
            heaps = paired(HEAP_RUNS, lambda: peer_heap(peer), lambda: echo_heap(port))
        print("lowest heap, %d KB steps:" % STEP)
        peer_kb = lowest(PEER_RANGE, suite_passes)
        echo_kb = lowest(ECHO_RANGE, lambda kb: echo_serves(kb, tmp))
    print()
    print("median (min-max) of %d runs for the heap" % HEAP_RUNS)
    table([
        ("GC heap after start-up, bytes", [h[0] for h in heaps[0]], [h[0] for h in heaps[1]], "%.0f"),
        ("GC heap per logged-in connection, bytes (slope 1..%d)" % MAX_CONNS,
         [h[1] for h in heaps[0]], [h[1] for h in heaps[1]], "%.0f"),
        ("lowest -X heapsize, KB (peer: e2e suite; echo: %d connections)" % CONNS,
         [peer_kb] if peer_kb else [], [echo_kb] if echo_kb else [], "%d"),
    ])
    if peer_kb is None:
        print("the e2e suite fails even in %dK" % PEER_RANGE[-1])
    print("64-bit host figures; the ESP32's 32-bit objects are smaller, and its TLS stack")
    print("takes 20-36 KB per connection outside the GC heap (README, \"On the board\")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
