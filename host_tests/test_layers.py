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


def breaches(layer, where, names):
    """What in the imports NAMES of module WHERE (its path under firmware/)
    its layer may not have."""
    found = []
    used = {layer_of(n) for n in names} - {None}
    if not used <= MAY_IMPORT[layer]:
        found.append("imports the layer(s) %s" % sorted(used - MAY_IMPORT[layer]))
    tops = {n.split(".")[0] for n in names}
    if layer != "seam" and tops & HARDWARE:
        found.append("touches the hardware: only the board seam does")
    if layer != "shell" and "asyncio" in tops:
        found.append("runs tasks: only the shell does")
    if layer == "core" and tops & {"socket", "select", "ssl"}:
        found.append("does I/O: the core does none")
    if "ssl" in tops and where != "shell/tls.py":
        found.append("imports ssl: TLS contexts live in tls.py")
    return found


@pytest.mark.parametrize("layer,path", list(modules()), ids=lambda v: str(v)[-30:])
def test_each_module_imports_only_what_its_layer_may(layer, path):
    assert breaches(layer, path.relative_to(FIRMWARE).as_posix(), imports(path)) == []


@pytest.mark.parametrize("layer,path", [m for m in modules() if m[0] == "core"],
                         ids=lambda v: str(v)[-30:])
def test_the_core_opens_no_file(layer, path):
    calls = [n for n in ast.walk(ast.parse(path.read_text()))
             if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "open"]
    assert calls == []


def test_the_rules_catch_a_breach(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nimport ssl\nfrom firmware.shell import hub\n\n"
                   "def f():\n    import machine\n")
    assert len(breaches("core", "core/bad.py", imports(bad))) == 5
    assert breaches("shell", "shell/tls.py", imports(bad)) == [
        "touches the hardware: only the board seam does"]
