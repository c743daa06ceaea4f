"""Small JSON files on flash, replaced so that a power cut never loses them.

A write leaves the former content at path + ".prev" and reads fall back to it,
so at any instant either the old or the new object is readable.
"""
import json
import os


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _load(path, max_bytes):
    # (True, obj) for a readable file, (False, None) otherwise. json.load
    # parses from the stream: the text is never held whole in RAM.
    try:
        if os.stat(path)[6] > max_bytes:  # [6] is st_size on both ports
            return False, None
        with open(path) as f:
            return True, json.load(f)
    except OSError:
        return False, None
    except (ValueError, RuntimeError):  # bad UTF-8/JSON; nesting too deep
        return False, None


def read_json(path, max_bytes=65536):
    """Return (obj, source): source is "current", "previous" (fell back to
    path + ".prev") or None when neither file is readable, with obj None."""
    for name, source in ((path, "current"), (path + ".prev", "previous")):
        ok, obj = _load(name, max_bytes)
        if ok:
            return obj, source
    return None, None


def write_json(path, obj, fault=None):
    """Replace path with obj. fault, if given, is called with each step name
    after the step, so tests can cut the power there by raising."""
    tmp = path + ".tmp"
    prev = path + ".prev"
    with open(tmp, "w") as f:
        json.dump(obj, f)  # streamed: no second copy of the text in RAM
    _step(fault, "tmp_written")
    # With no current file (a former write was cut after moving it away),
    # .prev is the only readable copy: keep it.
    if _exists(path):
        if _exists(prev):
            os.remove(prev)  # FAT's rename does not overwrite
        _step(fault, "prev_removed")
        os.rename(path, prev)
        _step(fault, "current_moved")
    os.rename(tmp, path)
    _step(fault, "done")


def _step(fault, name):
    if fault:
        fault(name)
