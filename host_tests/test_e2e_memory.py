"""The memory policy (firmware/seam/memory.py) on the running firmware: which
modules stay in the heap after start-up (after a sync: test_e2e_cloud.py)."""
from firmware.seam import memory

# The server's code: what a peer without links keeps while it serves.
SERVING = {"core.auth", "core.bounds", "core.rpc", "core.ws", "flash.store", "flash.switches",
           "seam.board", "seam.memory", "core.ticks", "shell.app", "shell.conn", "shell.hub",
           "shell.server", "shell.wire"}


def test_no_transient_module_is_counted_as_serving():
    assert not SERVING & set(memory.TRANSIENT)


def test_after_start_up_only_the_servers_code_is_resident(peer):
    assert peer.resident_modules() == SERVING
