"""The layout the tools and the tests keep: the harness lives in
tools/harness, which the tests and the benchmarks import; nothing under
tools/ imports the tests, and host_tests/ holds tests and fixtures only.
Read from the source files, nothing run."""
import ast
import os

from tools.harness.proc import ROOT

TOOLS = os.path.join(ROOT, "tools")
TESTS = os.path.join(ROOT, "host_tests")


def sources(folder):
    for dirpath, dirnames, files in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(dirpath, name)


def imported(path):
    """Every module PATH imports, anywhere in it (absolute names; a relative
    import as its dots and name)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            yield module
            yield from (module.rstrip(".") + "." + alias.name for alias in node.names)


def test_nothing_under_tools_imports_the_tests():
    found = {os.path.relpath(p, ROOT): [m for m in imported(p)
                                         if m == "host_tests" or m.startswith("host_tests.")]
             for p in sources(TOOLS)}
    assert os.path.join("tools", "harness", "peer.py") in found  # the walk reached the harness
    assert {p: m for p, m in found.items() if m} == {}


def test_the_import_check_sees_every_form(tmp_path):
    path = tmp_path / "forms.py"
    path.write_text("import host_tests.peer\nfrom host_tests import soak\n"
                    "def f():\n    from host_tests.cloud import Lab\n")
    names = list(imported(str(path)))
    assert {"host_tests.peer", "host_tests", "host_tests.soak", "host_tests.cloud"} <= set(names)


def test_host_tests_holds_tests_and_fixtures_only():
    others = [os.path.relpath(p, ROOT) for p in sources(TESTS)
              if not os.path.basename(p).startswith("test_")
              and os.path.basename(p) not in ("conftest.py", "__init__.py")]
    assert others == []
