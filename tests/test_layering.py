"""The emulator's layers, read from its source: no import cycle, and storage below HTTP.

Every import counts, those inside functions and under ``TYPE_CHECKING`` too: an import hidden in a
function is still a dependency, and hiding one is how a cycle gets in unnoticed.
"""

from __future__ import annotations

import ast
import pathlib
import typing as t

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "emulator"

Graph = dict[str, set[str]]


def module_name(root: pathlib.Path, source: pathlib.Path) -> str:
    parts = [root.name, *source.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, list[str]]]:
    """What ``module`` imports: each source module, absolute, with the names taken from it (none for
    ``import x``)."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            found.append((source, [alias.name for alias in node.names]))
    return found


def read_package(root: pathlib.Path) -> tuple[Graph, dict[str, set[str]]]:
    """The package's import graph (module to the package modules it imports) and, for each module,
    the top-level names of what it imports from outside the package.

    ``from x import y`` leads to ``x.y`` where that is a module, else to ``x``."""
    sources = {module_name(root, path): path for path in root.rglob("*.py")}
    graph: Graph = {}
    outside: dict[str, set[str]] = {}
    for module, path in sources.items():
        targets: set[str] = set()
        external: set[str] = set()
        tree = ast.parse(path.read_text(), str(path))
        for source, names in imports(tree, module, path.name == "__init__.py"):
            if source.split(".")[0] != root.name:
                external.add(source.split(".")[0])
                continue
            submodules = {f"{source}.{name}" for name in names} & sources.keys()
            targets |= submodules
            if len(submodules) < len(names) or not names:
                targets.add(source)
        graph[module] = targets - {module}
        outside[module] = external
    return graph, outside


def find_cycle(graph: Graph) -> list[str] | None:
    """One import cycle as the modules along it (the first repeated at the end), or ``None``."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(module: str) -> list[str] | None:
        path.append(module)
        on_path.add(module)
        for target in sorted(graph.get(module, ())):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done:
                found = visit(target)
                if found is not None:
                    return found
        path.pop()
        on_path.discard(module)
        done.add(module)
        return None

    for module in sorted(graph):
        if module not in done:
            found = visit(module)
            if found is not None:
                return found
    return None


def reachable(graph: Graph, start: str) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for target in graph.get(stack.pop(), ()):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def test_the_emulator_has_no_import_cycle() -> None:
    graph, _ = read_package(PACKAGE)
    assert "emulator.handlers.blobs" in graph["emulator.app"]  # the reader sees what app imports
    assert find_cycle(graph) is None


@pytest.mark.parametrize("layer", ["emulator.storage", "emulator.drivers"])
def test_storage_and_drivers_know_no_http(layer: str) -> None:
    graph, outside = read_package(PACKAGE)
    modules = [module for module in graph if module.startswith(f"{layer}.")]
    assert modules
    offenders = {}
    for module in modules:
        below = reachable(graph, module)
        wrong = sorted(m for m in below if m.startswith("emulator.handlers") or m == "emulator.app")
        wrong += sorted(m for m in below if "werkzeug" in outside[m])
        if wrong:
            offenders[module] = wrong
    assert offenders == {}


def write_package(root: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path: pathlib.Path) -> None:
    package = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "app.py": "def handlers():\n    from .handlers import base\n",
            "handlers/__init__.py": "",
            "handlers/base.py": "from ..app import Context\n",
            "free.py": "import json\nfrom . import app\n",
        },
    )
    graph, outside = read_package(package)
    assert graph["pkg.free"] == {"pkg.app"}
    assert outside["pkg.free"] == {"json"}
    assert find_cycle(graph) == ["pkg.app", "pkg.handlers.base", "pkg.app"]


def test_reachable_follows_imports_of_imports(tmp_path: pathlib.Path) -> None:
    package = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "low.py": "from .mid import x\n",
            "mid.py": "from .top import werkzeug_user\n",
            "top.py": "import werkzeug\n",
        },
    )
    graph, outside = read_package(package)
    assert find_cycle(graph) is None
    assert reachable(graph, "pkg.low") == {"pkg.low", "pkg.mid", "pkg.top"}
    assert outside["pkg.top"] == {"werkzeug"}


def is_a_name(node: ast.expr) -> bool:
    """``x.name`` or ``getattr(x, "name", ...)``."""
    if isinstance(node, ast.Attribute):
        return node.attr == "name"
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "getattr"
        and len(node.args) > 1
        and isinstance(node.args[1], ast.Constant)
        and node.args[1].value == "name"
    )


def compares_a_name_with_a_driver(node: ast.AST, drivers: set[str]) -> t.TypeGuard[ast.Compare]:
    """Whether ``node`` compares some ``name`` with a driver's name (or a collection of them)."""
    if not isinstance(node, ast.Compare):
        return False
    operands = [node.left, *node.comparators]
    if not any(is_a_name(operand) for operand in operands):
        return False
    constants = [
        element
        for operand in operands
        for element in (operand.elts if isinstance(operand, ast.Tuple | ast.List | ast.Set) else [operand])
    ]
    return any(isinstance(c, ast.Constant) and c.value in drivers for c in constants)


def test_callers_ask_a_driver_its_capabilities_not_its_name() -> None:
    drivers = {"filesystem", "inmemory", "s3"}
    offenders = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if compares_a_name_with_a_driver(node, drivers)
    ]
    assert offenders == []
    sample = ast.parse(
        'driver.name == "filesystem"\n'
        'getattr(d, "name", None) in ("inmemory", "s3")\n'
        'getattr(d, "local") in ("inmemory", "s3")\n'
        'config.driver == "s3"\n'
    )
    assert [compares_a_name_with_a_driver(node, drivers) for node in ast.walk(sample)].count(True) == 2
