"""Puts the firmware on an ESP32 running MicroPython, from a PC (CPython).

    python -m tools.deploy deploy    --port PORT [--dry-run]
    python -m tools.deploy provision --port PORT --data DIR [--dry-run]
    python -m tools.deploy repl|logs|reset --port PORT [--dry-run]
    python -m tools.deploy flash --port PORT --firmware FILE.bin [--chip esp32|esp32s3|esp32c3] [--dry-run]

`deploy` copies what `make build` put in build/board (firmware/**/*.mpy,
boot.py, main.py) to the board with mpremote; `provision` copies a data
folder's files to :data/. `--dry-run` prints the file list and the exact
commands, one per line, and runs nothing. Otherwise the commands run one
after the other and the first failure stops the rest (exit status 1).
Exit status 2: nothing to do it with (no build, no data folder, bad
arguments).
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "board"
SOURCES = ROOT / "firmware"
ENTRY = ("boot.py", "main.py")  # stay source: the board runs them as files
BOARD_DATA = "data"  # the firmware's default data folder, on the board's flash
DATA_FILES = ("config.json", "access.json", "cloud-ca.pem", "switches.json")
LOG = "crash.log"
# Where the MicroPython image goes: after the second-stage bootloader's
# reserved 4 KB on the original ESP32, at 0 on the S3 and C3.
FLASH_OFFSETS = {"esp32": "0x1000", "esp32s3": "0x0", "esp32c3": "0x0"}


class Refused(Exception):
    """Nothing can be done: the reason is the message (exit status 2)."""


def _shown(path):
    """A path as a person would type it from the current folder."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


def board_files(build=BUILD, sources=SOURCES):
    """The files the board needs, as paths relative to build (POSIX form).

    Only firmware/**/*.mpy, boot.py and main.py: nothing else in the build
    folder is ever listed. Refuses a missing, incomplete or stale build.
    Modules are named by their path under firmware/ without the suffix
    ("core/ws").
    """
    build = Path(build)
    hint = "run `make build` first (ARCH=xtensawin for ESP32/ESP32-S3, ARCH=rv32imc for ESP32-C3)"
    if not (build / "firmware").is_dir():
        raise Refused("no board build in %s: %s" % (_shown(build), hint))
    missing = [name for name in ENTRY if not (build / name).is_file()]
    if missing:
        raise Refused("%s missing from %s: %s" % (", ".join(missing), _shown(build), hint))
    built = _modules(build / "firmware", ".mpy")
    wanted = _modules(Path(sources), ".py")
    if set(built) != set(wanted):
        lost = sorted(set(wanted) - set(built))
        extra = sorted(set(built) - set(wanted))
        why = []
        if lost:
            why.append("not compiled: " + ", ".join(n + ".py" for n in lost))
        if extra:
            why.append("no source any more: " + ", ".join(n + ".mpy" for n in extra))
        raise Refused("the build in %s does not match firmware/ (%s): %s"
                      % (_shown(build), "; ".join(why), hint))
    stale = sorted(n + ".py" for n in wanted
                   if wanted[n].stat().st_mtime > built[n].stat().st_mtime)
    stale += [name for name in ENTRY
              if (Path(sources).parent / name).is_file()
              and (Path(sources).parent / name).stat().st_mtime > (build / name).stat().st_mtime]
    if stale:
        raise Refused("changed since the build: %s: %s" % (", ".join(stale), hint))
    return list(ENTRY) + ["firmware/%s.mpy" % n for n in sorted(built)]


def _modules(folder, suffix):
    return {p.relative_to(folder).as_posix()[: -len(suffix)]: p
            for p in folder.rglob("*" + suffix)}


def data_files(folder):
    """The data folder's files that belong on the board, in a fixed order.

    config.json is required; access.json, the cloud CA (cloud-ca.pem or the
    file config.json names in cloud_ca) and switches.json go when present.
    Nothing else (tokens printed for people, databases, .prev/.tmp copies).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise Refused("no data folder %s" % _shown(folder))
    if not (folder / "config.json").is_file():
        raise Refused("no config.json in %s: the firmware cannot start without it "
                      "(python -m tools.devdata DIR or labcloud provision write one)" % _shown(folder))
    names = list(DATA_FILES)
    try:
        with open(folder / "config.json") as f:
            ca = json.load(f).get("cloud_ca")
    except (OSError, ValueError, AttributeError) as e:
        raise Refused("%s: not a JSON object (%s)" % (_shown(folder / "config.json"), e))
    if isinstance(ca, str) and ca and ca not in names:
        if "/" in ca or "\\" in ca or ca.startswith("."):
            raise Refused("cloud_ca in config.json must name a file in the data folder, not %r" % ca)
        names.insert(3, ca)
    return [n for n in names if (folder / n).is_file()]


def _mpremote(port, *args):
    return ["mpremote", "connect", port] + list(args)


def _ensure_dirs_and_prune(keep):
    """One mpremote exec: make the folders of the files in keep where missing,
    and remove every other file in them.

    Pruning matters: MicroPython imports NAME.py before NAME.mpy, so a source
    left from an earlier copy (or from an older layout) would shadow the new
    compiled module.
    """
    dirs = sorted({f.rsplit("/", 1)[0] for f in keep})  # parents first
    return ("import os;K={keep!r};D={dirs!r};"
            "[d.split('/')[-1] in os.listdir(*d.split('/')[:-1]) or os.mkdir(d) for d in D];"
            "[os.remove(d+'/'+n) for d in D for n in os.listdir(d) if d+'/'+n not in K+D]"
            .format(keep=list(keep), dirs=dirs))


def deploy_plan(port, build=BUILD, sources=SOURCES):
    files = board_files(build, sources)
    keep = [f for f in files if f.startswith("firmware/")]
    cmds = [_mpremote(port, "exec", _ensure_dirs_and_prune(keep))]
    for f in files:
        cmds.append(_mpremote(port, "fs", "cp", _shown(Path(build) / f), ":" + f))
    return files, cmds


def provision_plan(port, folder):
    names = data_files(folder)
    code = 'import os; "{d}" in os.listdir() or os.mkdir("{d}")'.format(d=BOARD_DATA)
    cmds = [_mpremote(port, "exec", code)]
    for n in names:
        cmds.append(_mpremote(port, "fs", "cp", _shown(Path(folder) / n), ":%s/%s" % (BOARD_DATA, n)))
    return [_shown(Path(folder) / n) for n in names], cmds


def flash_plan(port, image, chip="esp32", baud=460800):
    if chip not in FLASH_OFFSETS:
        raise Refused("CHIP must be one of %s, not %r" % (", ".join(FLASH_OFFSETS), chip))
    base = ["esptool", "--chip", chip, "--port", port]
    return [image], [
        base + ["erase-flash"],
        base + ["--baud", str(baud), "write-flash", "-z", FLASH_OFFSETS[chip], image],
    ]


def _tool(name):
    """The program to run: the one beside this Python (the venv's) first."""
    here = Path(sys.executable).parent / (name + (".exe" if os.name == "nt" else ""))
    if here.is_file():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise Refused("%s not found: install requirements-dev.txt (make creates .venv with it)" % name)
    return found


def run(cmds):
    """Runs the commands in order; the first failure stops the rest."""
    for i, cmd in enumerate(cmds, 1):
        print("[%d/%d] %s" % (i, len(cmds), shlex.join(cmd)), flush=True)
        try:
            code = subprocess.call([_tool(cmd[0])] + cmd[1:])
        except OSError as e:
            code, why = None, str(e)
        else:
            why = "exit status %d" % code
        if code != 0:
            print("deploy: failed: %s (%s); %d of %d commands not run"
                  % (shlex.join(cmd), why, len(cmds) - i, len(cmds)), file=sys.stderr)
            return 1
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.deploy", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="action", required=True)
    for name, helptext in (("deploy", "copy build/board to the board"),
                           ("provision", "copy a data folder to :data/"),
                           ("repl", "open the board's REPL"),
                           ("logs", "print the board's crash log"),
                           ("reset", "hard-reset the board"),
                           ("flash", "erase the flash and write a MicroPython image")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0 or COM3")
        p.add_argument("--dry-run", action="store_true",
                       help="print the files and the exact commands; run nothing")
        if name == "deploy":
            p.add_argument("--build", default=str(BUILD), help="the board build (default build/board)")
        if name == "provision":
            p.add_argument("--data", required=True, help="the data folder")
        if name == "flash":
            p.add_argument("--firmware", required=True, help="the MicroPython .bin image")
            p.add_argument("--chip", default="esp32", help="esp32 (default), esp32s3 or esp32c3")
            p.add_argument("--baud", type=int, default=460800)
    args = ap.parse_args(argv)
    try:
        files = []
        if args.action == "deploy":
            files, cmds = deploy_plan(args.port, args.build)
        elif args.action == "provision":
            files, cmds = provision_plan(args.port, args.data)
        elif args.action == "repl":
            cmds = [_mpremote(args.port, "repl")]
        elif args.action == "logs":
            cmds = [_mpremote(args.port, "fs", "cat", ":" + LOG)]
        elif args.action == "reset":
            cmds = [_mpremote(args.port, "reset")]
        else:
            files, cmds = flash_plan(args.port, args.firmware, args.chip, args.baud)
            if not args.dry_run and not Path(args.firmware).is_file():
                raise Refused("no firmware image %s: download it from micropython.org/download"
                              % args.firmware)
        if args.dry_run:
            if files:
                print("# files (%d):" % len(files))
                for f in files:
                    print(f)
            print("# commands (%d):" % len(cmds))
            for cmd in cmds:
                print(shlex.join(cmd))
            return 0
        return run(cmds)
    except Refused as e:
        print("deploy: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
