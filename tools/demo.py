"""`make run`: the lab cloud and one peer provisioned from it, together.

    python -m tools.demo [--dir var] [--port 17000] [--cloud-port 17443]

On the first run it creates DIR/lab.db (the lab cloud), a controller with a
demo user (the token is printed once) and the peer's data folder DIR/peer;
later runs reuse them. Both programs log to this terminal; Ctrl-C stops both
(exit status 0). If either stops on its own, the other is stopped too and its
exit status is this one's: 3 when a port is taken (by another `make run`,
most likely), with the reason in the line before.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

from tools.labcloud import db as lab

MICROPYTHON = os.environ.get("MICROPYTHON") or os.path.join(
    os.path.dirname(sys.executable), "micropython")


def setup(folder, port, cloud_port):
    """Creates the lab and the peer's folder if missing; returns (lab path,
    controller uuid, demo user, token or None when made before)."""
    path = os.path.join(folder, "lab.db")
    peer = os.path.join(folder, "peer")
    if os.path.exists(path) and os.path.exists(peer):
        db = lab.open_db(path)
        uuid = lab.summary(db)[0][0]
        with open(os.path.join(folder, "demo-user.txt")) as f:
            return path, uuid, f.read().strip(), None
    os.makedirs(folder, mode=0o700, exist_ok=True)
    if os.path.exists(path):
        os.remove(path)
    db = lab.init(path, "127.0.0.1", cloud_port)
    uuid, _serial = lab.add_controller(db)
    user, token = lab.add_user(db, uuid)
    lab.provision(db, uuid, peer, "127.0.0.1", port, port + 1, force=True)
    with open(os.path.join(folder, "demo-user.txt"), "w") as f:
        f.write(user + "\n")
    return path, uuid, user, token


def tell(path, uuid, user, token, port):
    if token:
        print("Demo user %s; its token is shown only now: %s" % (user, token))
    else:
        token = "TOKEN"
        print("Demo user %s (TOKEN: the token printed when %s was made)."
              % (user, os.path.dirname(path)))
    print("Try it from another terminal once the peer says 'cloud link up':")
    print("  make client ARGS='wss://127.0.0.1:%d --no-verify --user %s --token=%s hub.info.get'"
          % (port, user, token))
    print("Add a user while both run, then log in with the token it prints:")
    print("  .venv/bin/python -m tools.labcloud %s add-user %s" % (path, uuid))
    sys.stdout.flush()


def _wait_all(procs, seconds):
    deadline = time.monotonic() + seconds
    for proc in procs:
        try:
            proc.wait(max(0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass


def stop_all(procs, grace=2):
    # A Ctrl-C in the terminal reaches the children too: give them a moment
    # (GRACE seconds) to stop on their own before asking, so none is
    # interrupted twice; then ask, then force. Seven seconds at most in all.
    _wait_all(procs, grace)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    _wait_all(procs, 5)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _forward(stream):
    for line in stream:
        sys.stdout.write(line)
        sys.stdout.flush()


def _said(text, status):
    print("make run: %s (exit status %d)" % (text, status), flush=True)
    return status if status > 0 else 1  # a signal's negative status too


def run(path, folder):
    """Starts the lab cloud, then the peer once the cloud listens; both until
    Ctrl-C (exit status 0) or until one of them stops on its own, which stops
    the other, and its exit status is returned (never 0)."""
    cloud = subprocess.Popen([sys.executable, "-m", "tools.labcloud", path, "serve"],
                             stdout=subprocess.PIPE, text=True)
    procs = [cloud]
    forward = threading.Thread(target=_forward, args=(cloud.stdout,), daemon=True)
    grace = 0  # nobody else asked them to stop, unless Ctrl-C did
    try:
        # The cloud first, listening: the peer's first link attempt then
        # succeeds; a cloud that cannot start (its port taken, by another
        # `make run` most likely) says why on stderr and stops this one.
        for line in cloud.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if " listening on " in line:
                break
        else:
            status = cloud.wait()
            hint = "; is another `make run` running?" if status == 3 else ""
            return _said("the lab cloud did not start, so neither did the peer" + hint, status)
        forward.start()
        peer = subprocess.Popen([MICROPYTHON, "main.py", "--data", folder])
        procs.insert(0, peer)
        while True:
            for proc, what in ((peer, "the peer stopped; stopping the lab cloud"),
                               (cloud, "the lab cloud stopped; stopping the peer")):
                status = proc.poll()
                if status in (0, -signal.SIGINT):
                    # Stopped cleanly: by the Ctrl-C that stops us too, which
                    # it may have seen first.
                    return 0
                if status is not None:
                    return _said(what, status)
            time.sleep(0.2)
    except KeyboardInterrupt:
        grace = 2
        return 0
    finally:
        stop_all(procs, grace)
        if forward.is_alive():
            forward.join()  # the cloud's last lines: it has exited, its pipe ends


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="var")
    ap.add_argument("--port", type=int, default=17000)
    ap.add_argument("--cloud-port", type=int, default=17443)
    args = ap.parse_args(argv)
    path, uuid, user, token = setup(args.dir, args.port, args.cloud_port)
    with open(os.path.join(args.dir, "peer", "config.json")) as f:
        port = json.load(f)["wss_port"]
    tell(path, uuid, user, token, port)
    return run(path, os.path.join(args.dir, "peer"))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # during set-up, before anything runs
        sys.exit(130)
