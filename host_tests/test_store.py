"""firmware.flash.store: JSON files that survive a power cut at any step of a write."""
import builtins
import errno
import json
import os

import pytest

from firmware.flash import store

STEPS = ["tmp_written", "prev_removed", "current_moved", "done"]
OLD = {"version": 1, "clients": {"u": ["a" * 64]}}
NEW = {"version": 2, "clients": {"u": ["b" * 64], "v": []}}
OLDER = {"version": 0}


class PowerCut(Exception):
    pass


def cut_at(step):
    def fault(name):
        if name == step:
            raise PowerCut(name)
    return fault


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "access.json")


def put(name, text):
    with open(name, "w", encoding="utf-8") as f:
        f.write(text)


def patch_os(monkeypatch, **overrides):
    """Replace functions in store's view of os only, not in os itself."""
    class Os:
        def __getattr__(self, name):
            return overrides.get(name) or getattr(os, name)
    monkeypatch.setattr(store, "os", Os())


def files(path):
    folder, base = os.path.split(path)
    return sorted(n[len(base):] or "." for n in os.listdir(folder) if n.startswith(base))


# ------------------------------------------------------------------- reads

@pytest.mark.parametrize("obj", [OLD, [1, "two", None], "t\u00f6k\u20ac", 0, True, {}])
def test_round_trip(path, obj):
    store.write_json(path, obj)
    assert store.read_json(path) == (obj, "current")


def test_first_write_leaves_no_prev_or_tmp(path):
    store.write_json(path, OLD)
    assert files(path) == ["."]


def test_second_write_keeps_previous(path):
    store.write_json(path, OLDER)
    store.write_json(path, OLD)
    assert files(path) == [".", ".prev"]
    store.write_json(path, NEW)
    assert store.read_json(path) == (NEW, "current")
    assert store.read_json(path + ".prev") == (OLD, "current")


def test_nothing_there(path):
    assert store.read_json(path) == (None, None)


def test_null_file_is_read_as_none_from_current(path):
    store.write_json(path, None)
    assert store.read_json(path) == (None, "current")


@pytest.mark.parametrize("current", [
    "not json",
    json.dumps(NEW)[:-3],  # truncated
    "",
    b"\xff\xfe{}",  # not UTF-8
    "[" * 5000 + "]" * 5000,  # nesting too deep for CPython's parser
    None,  # missing
])
def test_falls_back_to_prev(path, current):
    put(path + ".prev", json.dumps(OLD))
    if isinstance(current, bytes):
        with open(path, "wb") as f:
            f.write(current)
    elif current is not None:
        put(path, current)
    assert store.read_json(path) == (OLD, "previous")


def test_falls_back_when_current_is_a_directory(path):
    os.mkdir(path)
    put(path + ".prev", json.dumps(OLD))
    assert store.read_json(path) == (OLD, "previous")


def test_oversized_current_not_even_opened(path, monkeypatch):
    put(path, json.dumps({"pad": "x" * 200}))
    put(path + ".prev", json.dumps(OLD))
    opened = []
    real_open = builtins.open

    def spy(name, *args, **kwargs):
        opened.append(name)
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    assert store.read_json(path, max_bytes=len(json.dumps(OLD))) == (OLD, "previous")
    assert opened == [path + ".prev"]


def test_size_limit_is_inclusive(path):
    text = json.dumps(OLD)
    put(path, text)
    assert store.read_json(path, max_bytes=len(text)) == (OLD, "current")
    assert store.read_json(path, max_bytes=len(text) - 1) == (None, None)


def test_both_bad_gives_none(path):
    put(path, "{")
    put(path + ".prev", "}")
    assert store.read_json(path) == (None, None)


def test_tmp_leftover_ignored_and_replaced(path):
    put(path + ".tmp", json.dumps(NEW))
    assert store.read_json(path) == (None, None)
    put(path, json.dumps(OLD))
    assert store.read_json(path) == (OLD, "current")
    put(path + ".tmp", "{half a wri")
    store.write_json(path, NEW)
    assert store.read_json(path) == (NEW, "current")
    assert files(path) == [".", ".prev"]


# ------------------------------------------------------------ power cuts

def prepare(path, state):
    """Files before the write: what a reader of `path` sees is OLD, or nothing."""
    if state in ("current", "current+prev", "corrupt tmp"):
        put(path, json.dumps(OLD))
    if state == "current+prev":
        put(path + ".prev", json.dumps(OLDER))
    if state == "prev only":  # a former write cut right after moving current away
        put(path + ".prev", json.dumps(OLD))
        put(path + ".tmp", json.dumps(OLDER))
    if state == "corrupt tmp":
        put(path + ".tmp", "{")


STATES = ["none", "current", "current+prev", "prev only", "corrupt tmp"]


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("step", STEPS)
def test_power_cut_at_every_step(path, state, step):
    prepare(path, state)
    had_old = store.read_json(path)[0] == OLD
    reached = []

    def fault(name):
        reached.append(name)
        if name == step:
            raise PowerCut(name)

    try:
        store.write_json(path, NEW, fault)
    except PowerCut:
        pass
    obj, source = store.read_json(path)
    assert reached[-1] == step or (step not in reached and reached[-1] == "done")
    if reached[-1] == "done":
        assert (obj, source) == (NEW, "current")
    elif had_old:
        assert (obj, source) in [(OLD, "current"), (OLD, "previous")]
    else:
        assert (obj, source) == (None, None)
    # The next boot's write completes and keeps the old object as backup.
    store.write_json(path, NEW)
    assert store.read_json(path) == (NEW, "current")
    if had_old:
        assert store.read_json(path + ".prev")[0] in (OLD, NEW)


@pytest.mark.parametrize("state", ["current", "current+prev"])
def test_steps_run_in_order(path, state):
    prepare(path, state)
    seen = []
    store.write_json(path, NEW, seen.append)
    assert seen == STEPS


def test_without_current_the_prev_is_kept(path):
    # Only .prev holds data: removing it first would leave nothing to read
    # if the power failed before the new file is in place.
    prepare(path, "prev only")
    seen = []
    store.write_json(path, NEW, seen.append)
    assert seen == ["tmp_written", "done"]
    assert store.read_json(path) == (NEW, "current")
    assert store.read_json(path + ".prev") == (OLD, "current")


def test_cut_after_each_step_twice_in_a_row(tmp_path):
    # Power fails during one write, then again during the write after reboot.
    for first in STEPS:
        for second in STEPS:
            folder = tmp_path / (first + "-" + second)
            folder.mkdir()
            path = str(folder / "access.json")
            store.write_json(path, OLDER)
            for obj, step in ((OLD, first), (NEW, second)):
                before = store.read_json(path)[0]
                try:
                    store.write_json(path, obj, cut_at(step))
                except PowerCut:
                    pass
                assert store.read_json(path)[0] in (before, obj)


def test_cut_while_writing_tmp_keeps_old(path, monkeypatch):
    store.write_json(path, OLD)

    def half_dump(obj, f):
        f.write(json.dumps(obj)[:5])
        raise PowerCut("mid-write")

    monkeypatch.setattr(store.json, "dump", half_dump)
    with pytest.raises(PowerCut):
        store.write_json(path, NEW)
    assert store.read_json(path) == (OLD, "current")


def test_works_when_rename_does_not_overwrite(path, monkeypatch):
    # FAT: rename onto an existing name fails.
    def fat_rename(src, dst):
        if os.path.exists(dst):
            raise OSError(errno.EEXIST, "exists")
        os.rename(src, dst)

    patch_os(monkeypatch, rename=fat_rename)
    for obj in (OLDER, OLD, NEW):
        store.write_json(path, obj)
    assert store.read_json(path) == (NEW, "current")
    assert store.read_json(path + ".prev") == (OLD, "current")


def test_filesystem_errors_propagate(tmp_path):
    with pytest.raises(OSError):
        store.write_json(str(tmp_path / "no-such-dir" / "x.json"), OLD)


def test_unserialisable_object_leaves_old(path):
    store.write_json(path, OLD)
    with pytest.raises(TypeError):
        store.write_json(path, {"x": object()})
    assert store.read_json(path) == (OLD, "current")


# ---------------------------------- only a file that validates becomes .prev

def test_a_corrupt_current_is_deleted_not_kept_as_prev(path):
    put(path + ".prev", json.dumps(OLD))
    put(path, "{corrupt")
    assert store.read_json(path) == (OLD, "previous")
    seen = []
    store.write_json(path, NEW, seen.append)
    assert seen == ["tmp_written", "current_removed", "done"]
    assert store.read_json(path) == (NEW, "current")
    assert store.read_json(path + ".prev") == (OLD, "current")
    store.write_json(path, OLDER)  # a file the store wrote is good again
    assert store.read_json(path + ".prev") == (NEW, "current")


def test_a_corrupt_current_the_store_never_read_is_not_kept_either(path):
    put(path + ".prev", json.dumps(OLD))
    put(path, "{corrupt")
    store.write_json(path, NEW)
    assert store.read_json(path + ".prev") == (OLD, "current")


def refuse_version(bad):
    def check(name, obj):
        if not isinstance(obj, dict) or obj.get("version") == bad:
            raise ValueError("refused")
        return ("checked", obj["version"])
    return check


def test_the_check_decides_what_is_served(path):
    put(path, json.dumps(OLD))
    assert store.read_json(path, check=refuse_version(None)) == (("checked", 1), "current")


def test_a_current_the_check_refuses_falls_back_and_is_not_kept_as_prev(path):
    put(path + ".prev", json.dumps(OLD))
    put(path, json.dumps(NEW))  # valid JSON, refused by the reader's check
    assert store.read_json(path, check=refuse_version(2)) == (("checked", 1), "previous")
    store.write_json(path, OLDER)
    assert store.read_json(path + ".prev") == (OLD, "current")


def test_nothing_the_check_takes_gives_none(path):
    put(path + ".prev", json.dumps(NEW))
    put(path, json.dumps(NEW))
    assert store.read_json(path, check=refuse_version(2)) == (None, None)


@pytest.mark.parametrize("step", ["tmp_written", "current_removed", "done"])
def test_power_cut_while_replacing_a_corrupt_current(path, step):
    put(path + ".prev", json.dumps(OLD))
    put(path, "{corrupt")
    store.read_json(path)
    try:
        store.write_json(path, NEW, cut_at(step))
    except PowerCut:
        pass
    got = store.read_json(path)
    assert got == ((NEW, "current") if step == "done" else (OLD, "previous"))


# ------------------------------------------------------------ file modes

@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(name):
    return os.stat(name).st_mode & 0o777


def test_a_private_file_is_owner_only_before_it_holds_anything(path, umask_022):
    modes = {}

    def fault(step):
        if step == "tmp_written":
            modes["tmp"] = mode(path + ".tmp")

    store.write_json(path, OLD, private=True)
    store.write_json(path, NEW, fault, private=True)
    assert modes["tmp"] == 0o600
    assert mode(path) == mode(path + ".prev") == 0o600


def test_a_private_write_over_a_leftover_tmp_is_owner_only(path, umask_022):
    put(path + ".tmp", "{half")
    os.chmod(path + ".tmp", 0o644)
    store.write_json(path, NEW, private=True)
    assert mode(path) == 0o600


def test_other_files_keep_the_usual_mode(path, umask_022):
    store.write_json(path, NEW)
    assert mode(path) == 0o644
