"""The memory policy (firmware/seam/memory.py) on the running firmware: which
modules stay in the heap after start-up, and after a sync."""
from firmware.seam import memory
from host_tests.peer import call

# The server's code: what a peer without links keeps while it serves.
SERVING = {"core.auth", "core.bounds", "core.rpc", "core.ws", "flash.store", "flash.switches",
           "seam.board", "seam.memory", "core.ticks", "shell.app", "shell.conn", "shell.hub",
           "shell.server", "shell.tls", "shell.wire"}


def resident(peer):
    with peer.connect() as ws:
        assert peer.login(ws)["error"] is None
        return set(call(ws, "hub.diagnostics.get")["result"]["modules"])


def test_after_start_up_only_the_servers_code_is_resident(peer):
    assert resident(peer) == SERVING
    assert not resident(peer) & set(memory.TRANSIENT)


def test_after_a_sync_the_parsers_are_gone_again(cloud, run_folder):
    from tools.labcloud import db as lab

    uuid, folder = cloud.controller(sync_interval=3600)
    peer = run_folder(folder)
    peer.wait_log("cloud link up")
    mark = peer.mark()
    user, token = lab.add_user(cloud.db, uuid)  # the cloud announces it, the peer syncs
    peer.wait_log(r"access data version \d+ in force", since=mark)
    peer.users = {user: [token]}
    held = resident(peer)
    assert held == SERVING | {"shell.cloud", "shell.link", "core.wsclient"}, held
    assert not held & set(memory.TRANSIENT)
