"""The layering of firmware/ (README, "Layout"), read from the sources:
what each folder may import."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
LAYERS = ("core", "flash", "seam", "shell")
HARDWARE = {"machine", "network", "esp32", "ntptime"}
# What each layer may import from the others.
MAY_IMPORT = {"core": {"core"}, "flash": {"core", "flash", "seam"},
              "seam": {"core", "seam", "flash"}, "shell": set(LAYERS)}


def modules():
    for path in sorted(FIRMWARE.rglob("*.py")):
        parts = path.relative_to(FIRMWARE).parts
        if len(parts) == 2:
            yield parts[0], path


def imports(path):
    """Every module the file imports, at any depth: ('firmware.core.ws', ...)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "firmware" or node.module.count(".") == 1 and node.module.startswith("firmware."):
                found.update("%s.%s" % (node.module, a.name) for a in node.names)
    return found


def layer_of(name):
    parts = name.split(".")
    return parts[1] if parts[0] == "firmware" and len(parts) > 2 else None


def test_every_firmware_module_lives_in_a_layer():
    loose = [p.name for p in FIRMWARE.glob("*.py") if p.name != "__init__.py"]
    assert loose == []
    assert sorted(p.name for p in FIRMWARE.iterdir() if p.is_dir() and p.name != "__pycache__") \
        == sorted(LAYERS)


@pytest.mark.parametrize("layer,path", list(modules()), ids=lambda v: str(v)[-30:])
def test_each_module_imports_only_what_its_layer_may(layer, path):
    names = imports(path)
    used = {layer_of(n) for n in names} - {None}
    assert used <= MAY_IMPORT[layer], (path.name, used - MAY_IMPORT[layer])
    tops = {n.split(".")[0] for n in names}
    if layer != "seam":
        assert not tops & HARDWARE, "only the board seam touches the hardware"
    if layer != "shell":
        assert "asyncio" not in tops, "only the shell runs tasks"
    if layer == "core":
        assert not tops & {"socket", "select", "ssl"}, "the core does no I/O"
    if "ssl" in tops:
        assert path.relative_to(FIRMWARE).as_posix() == "shell/tls.py", "TLS contexts live in tls.py"


@pytest.mark.parametrize("layer,path", [m for m in modules() if m[0] == "core"],
                         ids=lambda v: str(v)[-30:])
def test_the_core_opens_no_file(layer, path):
    calls = [n for n in ast.walk(ast.parse(path.read_text()))
             if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "open"]
    assert calls == []


def test_the_rules_catch_a_breach(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom firmware.shell import hub\n\ndef f():\n    import machine\n")
    names = imports(bad)
    assert {"asyncio", "firmware.shell.hub", "machine"} <= names
    assert layer_of("firmware.shell.hub") == "shell" not in MAY_IMPORT["core"]
