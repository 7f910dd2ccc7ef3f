"""Guards on the conformance suite's independence and on its plugin's manners.

The suite must judge any registry over HTTP, so only its target fixture (which starts the emulator when no
URL is given) and its configuration reader may touch the emulator. Its pytest plugin is loaded by every
pytest run of the environment, so it must import nothing heavy and say nothing to other test suites.
"""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import conformance

PACKAGE = Path(conformance.__file__).resolve().parent

#: (file, function) pairs allowed to reach the emulator.
ALLOWED = {("conftest.py", "registry_url"), ("conftest.py", "registry_config")}


def _emulator_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """Line and enclosing function of every import of ``emulator``, by statement or by name."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            callee = ast.unparse(node.func)
            if callee.endswith("import_module") or callee == "__import__":
                names = [str(node.args[0].value)]
        if any(name == "emulator" or name.startswith("emulator.") for name in names):
            found.append((getattr(node, "lineno", 0), function))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "<module>")
    return found


def test_only_the_target_fixtures_touch_the_emulator() -> None:
    offenders = []
    for source in sorted(PACKAGE.glob("*.py")):
        for line, function in _emulator_uses(ast.parse(source.read_text(), str(source))):
            if (source.name, function) not in ALLOWED:
                offenders.append(f"{source.name}:{line} in {function}")
    assert not offenders, "conformance/ must speak HTTP only; emulator imported at " + ", ".join(offenders)


def test_the_guard_sees_every_form_of_import() -> None:
    code = "\n".join(
        [
            "import emulator",
            "from emulator.config import load",
            "def f():",
            "    importlib.import_module('emulator.app')",
        ]
    )
    assert [function for _, function in _emulator_uses(ast.parse(code))] == ["<module>", "<module>", "f"]


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_plugin_imports_nothing_heavy() -> None:
    loaded = _run(
        "import sys, conformance.plugin\n"
        "print(sorted(m for m in ('requests', 'emulator', 'urllib3', 'yaml') if m in sys.modules))"
    )
    assert loaded.strip() == "[]"


def test_plugin_is_silent_for_other_suites(tmp_path: Path) -> None:
    (tmp_path / "test_other.py").write_text("def test_nothing():\n    pass\n")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(tmp_path)]
    installed = any(
        e.value == "conformance.plugin" for e in importlib.metadata.entry_points(group="pytest11")
    )
    if not installed:
        command[3:3] = ["-p", "conformance.plugin"]
    output = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path).stdout
    assert "1 passed" in output
    assert "pax conformance" not in output
