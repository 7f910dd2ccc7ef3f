"""Guards on the conformance suite's independence, its verdicts and its plugin's manners.

The suite must judge any registry over HTTP, so only its target fixture (which starts the emulator when no
URL is given) may touch the emulator. A check ends as unsupported only through a row of the verdict table,
every row is used, and the README shows the table as the code has it. Its pytest plugin is loaded by every
pytest run of the environment, so it must import nothing heavy and say nothing to other test suites.
"""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import conformance
from conformance import plugin
from conformance import verdicts

PACKAGE = Path(conformance.__file__).resolve().parent
README = PACKAGE.parent / "README.md"

#: (file, function) pairs allowed to reach the emulator.
ALLOWED = {("conftest.py", "registry_url")}

#: The modules that may produce the unsupported outcome (the verdict table) or read it (reports).
UNSUPPORTED_READERS = {"verdicts.py", "plugin.py", "runner.py", "report.py"}


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


def _modules() -> list[tuple[str, ast.Module]]:
    sources = sorted(PACKAGE.glob("*.py"))
    return [(source.name, ast.parse(source.read_text(), str(source))) for source in sources]


def _unsupported_spellings(tree: ast.AST) -> list[int]:
    """Lines that name ``UNSUPPORTED`` or spell the reason it prefixes (``unsupported:``)."""
    lines = []
    for node in ast.walk(tree):
        named = (isinstance(node, ast.Name) and node.id == "UNSUPPORTED") or (
            isinstance(node, ast.alias) and node.name == "UNSUPPORTED"
        )
        spelled = isinstance(node, ast.Constant) and str(node.value).lower().startswith(plugin.UNSUPPORTED)
        if named or spelled:
            lines.append(getattr(node, "lineno", 0))
    return sorted(lines)


def _row_calls(tree: ast.AST) -> list[tuple[int, object]]:
    """Every ``end_if_not_offered(...)``: its line and first argument (a constant's value, or the node)."""
    calls: list[tuple[int, object]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("end_if_not_offered"):
            first = node.args[0] if node.args else None
            calls.append((node.lineno, first.value if isinstance(first, ast.Constant) else first))
    return calls


def test_the_guards_see_every_spelling() -> None:
    code = "\n".join(
        [
            "from conformance.plugin import UNSUPPORTED",
            "pytest.skip(f'{UNSUPPORTED} x')",
            "pytest.skip('Unsupported: y')",
            "codes = ['UNSUPPORTED', 'UNSUPPORTED_PROTOCOL']",
            "verdicts.end_if_not_offered('etag', r, p)",
            "end_if_not_offered(KEY, r, p)",
        ]
    )
    tree = ast.parse(code)
    assert _unsupported_spellings(tree) == [1, 2, 3]
    calls = _row_calls(tree)
    assert [line for line, _ in calls] == [5, 6]
    assert calls[0][1] == "etag"
    assert isinstance(calls[1][1], ast.Name)


def test_only_the_verdict_table_ends_a_check_as_unsupported() -> None:
    offenders = [
        f"{name}:{line}"
        for name, tree in _modules()
        if name not in UNSUPPORTED_READERS
        for line in _unsupported_spellings(tree)
    ]
    assert not offenders, "only conformance.verdicts may end a check as unsupported: " + ", ".join(offenders)


def test_checks_name_rows_of_the_table_and_use_every_row() -> None:
    calls = [
        (name, line, key)
        for name, tree in _modules()
        if name != "verdicts.py"
        for line, key in _row_calls(tree)
    ]
    unknown = [f"{name}:{line}" for name, line, key in calls if key not in verdicts.ROWS]
    assert not unknown, "end_if_not_offered must name a row of the table, as a literal: " + ", ".join(unknown)
    unused = set(verdicts.ROWS) - {key for _, _, key in calls}
    assert not unused, f"rows no check uses: {sorted(unused)}"


def test_every_row_is_complete() -> None:
    for row in verdicts.TABLE:
        assert row.required_in <= set(verdicts.PROFILES), row.key
        assert row.feature and row.keyword and row.section and row.quote and row.not_offered, row.key
    assert len(verdicts.ROWS) == len(verdicts.TABLE), "two rows share a key"


def test_profiles_are_the_plugins() -> None:
    assert verdicts.PROFILES[0] == "oci"


def test_readme_shows_the_verdict_table() -> None:
    text = README.read_text()
    begin, end = "<!-- verdicts:begin -->\n", "<!-- verdicts:end -->"
    assert begin in text and end in text, "the README lost its verdict table markers"
    shown = text.split(begin, 1)[1].split(end, 1)[0]
    assert shown == verdicts.markdown(), "regenerate it: python -m conformance.verdicts"


def _marks_spec(decorators: list[ast.expr]) -> bool:
    """Whether one of ``decorators`` is ``@pytest.mark.spec(...)``."""
    return any(
        isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Attribute)
        and decorator.func.attr == "spec"
        for decorator in decorators
    )


def test_every_check_names_the_spec_section_it_enforces() -> None:
    """The reports show, beside each verdict, the rule the check enforces: every check class (or
    module-level check) carries a ``spec`` marker."""
    missing = []
    for path in sorted(PACKAGE.glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.ClassDef | ast.FunctionDef):
                continue
            if node.name.startswith(("Test", "test_")) and not _marks_spec(node.decorator_list):
                missing.append(f"{path.name}::{node.name}")
    assert not missing, f"checks without @pytest.mark.spec: {missing}"
