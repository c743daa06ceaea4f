"""Small JSON files on flash, replaced so that a power cut never loses them.

A write leaves the former content at path + ".prev" and reads fall back to it,
so at any instant either the old or the new object is readable. Only a file
that validates becomes the previous copy: one that does not (corrupt, or
refused by the reader's check) is deleted by the next write instead, so the
good previous copy stays.
"""
import json
import os

# Whether the file at a path validated when this process last read or wrote
# it ({path: bool}); a write checks a file it has not seen itself.
_valid = {}


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


def read_json(path, max_bytes=65536, check=None):
    """Return (obj, source): source is "current", "previous" (fell back to
    path + ".prev") or None when neither file is usable, with obj None.
    check(name, obj), if given, returns what to give for obj, or raises
    ValueError for data that does not validate: that file is passed over
    like an unreadable one."""
    for name, source in ((path, "current"), (path + ".prev", "previous")):
        ok, obj = _load(name, max_bytes)
        if ok and check:
            try:
                obj = check(name, obj)
            except ValueError:
                ok = False
        if name == path:
            _valid[path] = ok
        if ok:
            return obj, source
    return None, None


def _restrict(path):
    # Owner-only, where the platform has file modes: CPython's os.chmod, or
    # the unix port's shell (its os has no chmod). The board has no modes.
    chmod = getattr(os, "chmod", None)
    if chmod:
        chmod(path, 0o600)
        return
    system = getattr(os, "system", None)
    if system:
        system("chmod 600 -- '%s'" % path.replace("'", "'\\''"))


def write_json(path, obj, fault=None, private=False):
    """Replace path with obj. fault, if given, is called with each step name
    after the step, so tests can cut the power there by raising. private
    makes the file owner-only (mode 0600) before anything is written to it."""
    tmp = path + ".tmp"
    prev = path + ".prev"
    if private:
        open(tmp, "w").close()
        _restrict(tmp)
    with open(tmp, "w") as f:  # an existing file keeps its mode
        json.dump(obj, f)  # streamed: no second copy of the text in RAM
    _step(fault, "tmp_written")
    # With no current file (a former write was cut after moving it away),
    # .prev is the only readable copy: keep it.
    if _exists(path):
        valid = _valid.get(path)
        if valid is None:
            valid = _load(path, 65536)[0]
        if valid:
            if _exists(prev):
                os.remove(prev)  # FAT's rename does not overwrite
            _step(fault, "prev_removed")
            os.rename(path, prev)
            _step(fault, "current_moved")
        else:  # never the previous copy: the one there may be good
            os.remove(path)
            _step(fault, "current_removed")
    os.rename(tmp, path)
    _valid[path] = True
    _step(fault, "done")


def _step(fault, name):
    if fault:
        fault(name)
