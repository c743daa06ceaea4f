"""Benchmark the cloud sync: the real lab cloud and the peer on this machine.

    make bench    (after tools.bench; or python -m tools.bench_cloud)

Prints the time from a change in the lab cloud to a login with the new
token, beside a login with a token the peer already holds; and the time
and GC heap to put in force access data of 10 and 100 users (two tokens
each) and 10 peers, beside the same for one user. All traffic stays on
127.0.0.1.
"""
import json
import os
import re
import sys
import tempfile
import time

from tools.bench import table
from tools.harness.cloud import Lab
from tools.harness.peer import Peer
from tools.harness.wait import wait_until
from tools.labcloud import db as lab

RUNS = 5
PEERS = 10


def login_ms(peer, user, token):
    """ms to connect and log in, or None when the token is refused."""
    start = time.monotonic()
    ok = peer.login_error(user, token) is None
    return (time.monotonic() - start) * 1000 if ok else None


def change_to_login(cloud, uuid, peer):
    """ms from add-user in the cloud to the first successful login with it."""
    start = time.monotonic()
    user, token = lab.add_user(cloud.db, uuid)
    wait_until(lambda: login_ms(peer, user, token), 10, "a login with the new user", poll=0)
    return (time.monotonic() - start) * 1000


def in_force(peer, version, since):
    """The ms the peer logged for putting `version` in force (a line from
    line `since` on)."""
    line = peer.wait_log("access data version %d in force" % version, timeout=30, since=since)
    return float(re.search(r"in (\d+) ms", line).group(1))


def apply_sample(tmp, users):
    """(ms to put in force, GC heap it added) when `users` users with two
    tokens each arrive at a peer that has 10 peers already."""
    cloud = Lab(tempfile.mkdtemp(dir=tmp)).start()
    try:
        uuid, folder = cloud.controller()
        for _ in range(PEERS):
            lab.link(cloud.db, uuid, lab.add_controller(cloud.db)[0])
        with open(os.path.join(folder, "switches.json"), "w") as f:
            json.dump({"anonymous": True}, f)  # diagnostics without a login
        peer = Peer.existing(folder).start()
        try:
            in_force(peer, lab.versions(cloud.db)[uuid], 0)  # the links, at connect
            before, since = peer.heap_alloc(), peer.mark()
            for _ in range(users):  # the peer may apply versions on the way
                user = lab.add_user(cloud.db, uuid)[0]
                lab.add_user(cloud.db, uuid, user)
            took = in_force(peer, lab.versions(cloud.db)[uuid], since)
            return took, peer.heap_alloc() - before
        finally:
            peer.stop()
    finally:
        cloud.stop()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        cloud = Lab(os.path.join(tmp, "lab")).start()
        try:
            uuid, folder = cloud.controller()
            user, token = lab.add_user(cloud.db, uuid)
            peer = Peer.existing(folder).start()
            try:
                peer.wait_log("in force")
                known = [login_ms(peer, user, token) for _ in range(RUNS)]
                fresh = [change_to_login(cloud, uuid, peer) for _ in range(RUNS)]
            finally:
                peer.stop()
        finally:
            cloud.stop()
        one = [apply_sample(tmp, 1) for _ in range(3)]
        rows = [("lab change -> login with the new token ms (base: known token)", fresh, known, "%.0f")]
        for users in (10, 100):
            many = [apply_sample(tmp, users) for _ in range(3)]
            rows.append(("apply %d users x2 tokens, %d peers ms (base: 1 user)" % (users, PEERS),
                         [m[0] for m in many], [o[0] for o in one], "%.0f"))
            rows.append(("  GC heap it adds, bytes (base: 1 user)",
                         [m[1] for m in many], [o[1] for o in one], "%.0f"))
    print("cloud sync, median (min-max); change->login over %d runs, apply over 3" % RUNS)
    table(rows, "baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
