"""The README as a reader uses it: the quick start, pasted into a fresh shell, serves a registry, and every
Python snippet runs as pasted, imports included."""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from pax_registry_fixtures.process import answers
from pax_registry_fixtures.process import free_port
from tests.installs import PROJECT
from tests.installs import copy_source
from tests.installs import download_wheelhouse
from tests.installs import run

README = PROJECT / "README.md"
EXAMPLES = PROJECT / "tests" / "examples" / "test_fixture_examples.py"
#: Both quick-start commands begin so: a fresh shell, and Debian's Python refuses pip outside a venv.
VENV_PREFIX = "python3 -m venv .venv && . .venv/bin/activate && "
#: pip install . and the start take a few seconds each on an idle machine; this is a ceiling for a busy one.
START_TIMEOUT = 300.0


def blocks(language: str, text: str | None = None) -> list[str]:
    """The fenced code blocks of ``language`` in ``text`` (the README by default), in order."""
    source = README.read_text() if text is None else text
    return [match.group(1) for match in re.finditer(rf"^```{language}\n(.*?)^```$", source, re.S | re.M)]


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def quick_start() -> list[str]:
    [commands] = blocks("sh", section("Quick start"))[:1]
    return commands.splitlines()


def test_the_quick_start_is_two_commands_each_working_in_a_fresh_shell() -> None:
    serve, test = quick_start()

    assert serve == f"{VENV_PREFIX}pip install . && python -m emulator serve"
    assert test == f"{VENV_PREFIX}pip install nox && nox"


def test_every_python_snippet_runs_as_pasted(tmp_path: Path) -> None:
    snippets = blocks("python")
    assert snippets, "no python snippet found"
    for number, snippet in enumerate(snippets, 1):
        (tmp_path / f"test_readme_snippet_{number}.py").write_text(snippet)
    expected = sum(len(re.findall(r"^\s*def test_", snippet, re.M)) for snippet in snippets)
    # The plugin comes from the installed package's entry point, as for a reader: no conftest, no -p.
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PYTEST_", "PAX_"))}

    output = run(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", cwd=tmp_path, env=env)

    assert f"{expected} passed" in output, output


def test_each_fixture_example_is_in_a_readme_snippet_verbatim() -> None:
    source = EXAMPLES.read_text()
    snippets = blocks("python")
    functions = [node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)]

    assert functions
    for function in functions:
        text = ast.get_source_segment(source, function)
        assert text is not None
        assert any(text in snippet for snippet in snippets), f"{function.name} differs from the README"


@pytest.fixture
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return download_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


def _offline(command: str, wheelhouse: Path) -> str:
    """The quick start's command, with what it would download taken from here instead: the venv sees this
    environment's packages, and pip builds with the wheelhouse's setuptools."""
    substitutions = {
        "python3 -m venv .venv": "python3 -m venv --system-site-packages .venv",
        "pip install .": f"pip install --no-index --no-deps --find-links {wheelhouse} .",
    }
    for pasted, offline in substitutions.items():
        assert command.count(pasted) == 1, command
        command = command.replace(pasted, offline)
    return command


def _stop(process: subprocess.Popen[bytes]) -> None:
    # The shell and the server it started share the session started for them.
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_the_quick_start_serves_a_registry(tmp_path: Path, wheelhouse: Path) -> None:
    checkout = copy_source(tmp_path / "checkout")
    shims = tmp_path / "bin"
    shims.mkdir()
    # python3 is this interpreter, whose environment holds the dependencies the venv will see.
    (shims / "python3").symlink_to(sys.executable)
    port = free_port()
    env = {name: value for name, value in os.environ.items() if name not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env |= {"PATH": f"{shims}:{env['PATH']}", "REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}"}
    command = _offline(quick_start()[0], wheelhouse)
    log = tmp_path / "quick-start.log"

    with log.open("wb") as output:
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=checkout,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not answers(f"http://127.0.0.1:{port}", tls=False, timeout=1):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        response = _get(f"http://127.0.0.1:{port}/v2/")
    finally:
        _stop(process)

    assert response == 200, log.read_text()
    installed = run(
        checkout / ".venv/bin/python", "-c", "import emulator; print(emulator.__file__)", cwd=tmp_path
    )
    assert installed.startswith(str(checkout / ".venv")), installed


def _get(url: str) -> int:
    session = requests.Session()
    session.trust_env = False  # loopback: no proxy
    return session.get(url, timeout=10).status_code
