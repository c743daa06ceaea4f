"""Benchmark the links between two peers on this machine.

    make bench    (after tools.bench; or python -m tools.bench_peers)

Two peers, provisioned and linked by the lab cloud, each dialling the
other. Prints, beside a baseline measured in the same run:
- link set-up (connect + TLS + upgrade + login) as the firmware times it
  when a restarted peer comes back, beside the same done by a Python
  websockets client against the same peer;
- round trips per second of hub.info.get through the link (hub.peer.call)
  beside hub.info.get asked of the near peer directly;
- GC heap of one peer with its link pair up (its link out, the other's
  link in) beside the heap of one user connection; and what the peer-link
  code and a link backing off hold, against a controller without peers.
All traffic stays on 127.0.0.1.
"""
import os
import re
import sys
import tempfile
import time

from tools.bench import ok, table
from tools.harness.cloud import Lab, Pair
from tools.harness.peer import Started, call, diagnostics
from tools.harness.wait import wait_until
from tools.labcloud import db as lab

SETUPS = 5
RATE_RUNS = 3
CALLS = 200
HEAP_RUNS = 3


def link_up_ms(proc, since):
    """The set-up time of the first link that came up after line `since`."""
    line = proc.wait_log(r"link up in \d+ ms", 30, since=since)
    return float(re.search(r"link up in (\d+) ms", line).group(1))


def client_setup_ms(pair, near, far):
    """A Python client doing what a link does: connect, TLS, upgrade, login
    as controller `near` into `far` with their peer token."""
    token = lab.access_data(pair.cloud.db, far)["peers"][near]["tokens"][0]
    t0 = time.perf_counter()
    with pair.peers[far].connect() as ws:
        ok(call(ws, "hub.offline.login.hub", {"hub": near, "token": token}))
        return (time.perf_counter() - t0) * 1000


def rate(ws, method, params):
    t0 = time.perf_counter()
    for _ in range(CALLS):
        ok(call(ws, method, params))
    return CALLS / (time.perf_counter() - t0)


def heap(ws):
    return diagnostics(ws)["heapAlloc"]


def settled_heap(pair, uuid, links_wanted):
    """The heap of `uuid` once it holds `links_wanted` peer connections."""
    def settled():
        held = [e for e in ok(call(ws, "hub.peer.links.list"))["links"] if e["state"] == "logged in"]
        return len(held) == links_wanted

    with pair.user_session(uuid) as ws:
        wait_until(settled, 30, "%d links logged in" % links_wanted, poll=0.2)
        return heap(ws)


def lone_heap(cloud, run):
    """The heap of a controller without peers, with a user session open."""
    uuid = lab.add_controller(cloud.db)[0]
    user, token = lab.add_user(cloud.db, uuid)
    p = run(cloud.provision(uuid, "lone"), {user: [token]})
    with p.connect() as ws:
        ok(p.login(ws))
        return heap(ws)


def user_conn_heap(pair, uuid):
    """Heap one more logged-in user connection adds."""
    with pair.user_session(uuid) as ws:
        before = heap(ws)
        with pair.user_session(uuid):
            return heap(ws) - before


def main():
    run = Started()
    with tempfile.TemporaryDirectory() as tmp:
        cloud = Lab(os.path.join(tmp, "lab")).start()
        try:
            # Room for our user sessions beside the link into each peer.
            pair = Pair(cloud, run, max_connections=4)
            a, b = pair.a, pair.b
            link_ms, client_ms = [], []
            for _ in range(SETUPS):
                pair.peers[b].stop()
                since = pair.peers[a].mark()
                pair.peers[b] = pair.start(b, move_ports=False)  # a dials its port
                link_ms.append(link_up_ms(pair.peers[a], since))
                client_ms.append(client_setup_ms(pair, a, b))
            with pair.user_session(a) as ws:
                via = [rate(ws, "hub.peer.call", {"peer": b, "method": "hub.info.get"})
                       for _ in range(RATE_RUNS)]
                direct = [rate(ws, "hub.info.get", {}) for _ in range(RATE_RUNS)]
            per_link, per_user, code, lone = [], [], [], lone_heap(cloud, run)
            for _ in range(HEAP_RUNS):
                up = settled_heap(pair, a, 2)
                pair.peers[b].stop()
                down = settled_heap(pair, a, 0)
                per_link.append(up - down)
                per_user.append(user_conn_heap(pair, a))
                code.append(down - lone)
                pair.peers[b] = pair.start(b, move_ports=False)  # a dials its port
        finally:
            run.stop()
            cloud.stop()
    print("peer links, median (min-max); %d set-ups, %d rate runs of %d calls, %d heap runs"
          % (SETUPS, RATE_RUNS, CALLS, HEAP_RUNS))
    table([
        ("link set-up ms (base: Python client, same steps)", link_ms, client_ms, "%.0f"),
        ("round trips/s through the link (base: direct)", via, direct, "%.0f"),
        ("GC heap of a link pair, out+in (base: 1 user conn)", per_link, per_user, "%.0f"),
        ("GC heap of the peer-link code, links down (base: none)", code, [], "%.0f"),
    ], "baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
