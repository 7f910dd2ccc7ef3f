"""Run the suite in a child ``pytest`` and read its JUnit report.

For CI runners and for tests of the suite itself, which need each check's outcome rather than an exit
code::

    result = run("http://127.0.0.1:5000", args=["-m", "pull"])
    assert not result.failed, result.output

Checks are named ``<module>::<Class>::<test>[<param>]`` without the ``.py``, e.g.
``test_pull::TestErrorCodes::test_400_response_body_should_contain_oci_conforming_json_message``.

With ``PAX_CONFORMANCE_REPORT_DIR`` set (:data:`REPORT_DIR`), every run also writes a JSON report there,
named after the test that made it; ``nox -s conformance_distribution`` prints them. A run the preflight
stops (exit status 2) writes no JUnit report, and :func:`run` raises with its message.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import itertools
import os
import re
import subprocess
import sys
import tempfile
import time
import typing as t
import xml.etree.ElementTree as ET
from pathlib import Path

from conformance.plugin import UNSUPPORTED

__all__ = ["REPORT_DIR", "SuiteResult", "child_environ", "pytest_command", "run"]

PACKAGE_DIR = Path(__file__).resolve().parent

#: A directory named by this variable (in the environment of the caller of :func:`run`) gets a JSON report
#: of every run, for CI to show (``python -m conformance.report summary DIR/*.json``).
REPORT_DIR = "PAX_CONFORMANCE_REPORT_DIR"

# Variables that would silently change what the child tests or how the registry reads its config.
_INHERITED_PREFIXES = ("PAX_", "OCI_", "REGISTRY_", "PYTEST_ADDOPTS")


@dataclasses.dataclass(frozen=True)
class SuiteResult:
    """What one run of the suite found."""

    returncode: int
    #: check name -> ``passed``, ``failed``, ``unsupported`` or ``skipped``
    outcomes: dict[str, str]
    #: check name -> the failure text or the skip reason
    messages: dict[str, str]
    output: str
    duration: float

    def named(self, outcome: str) -> set[str]:
        return {name for name, value in self.outcomes.items() if value == outcome}

    @property
    def passed(self) -> set[str]:
        return self.named("passed")

    @property
    def failed(self) -> set[str]:
        return self.named("failed")

    @property
    def unsupported(self) -> dict[str, str]:
        """Unsupported checks and the feature each names."""
        return {name: self.messages[name] for name in self.named("unsupported")}

    @property
    def skipped(self) -> set[str]:
        return self.named("skipped")


def _plugin_installed() -> bool:
    return any(
        entry.value == "conformance.plugin" for entry in importlib.metadata.entry_points(group="pytest11")
    )


def pytest_command(args: t.Sequence[str] = ()) -> list[str]:
    """``python -m pytest`` with the suite's plugin loaded once, whether or not the project is installed."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    if not _plugin_installed():
        command += ["-p", "conformance.plugin"]
    return command + list(args)


def child_environ(env: t.Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child run: ours without the variables that would change what it tests."""
    result = {key: value for key, value in os.environ.items() if not key.startswith(_INHERITED_PREFIXES)}
    # The checkout (or site-packages) holding the suite comes first, installed or not.
    result["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_DIR.parent), result.get("PYTHONPATH")]))
    result.update(env or {})
    return result


def _report_args() -> list[str]:
    """With :data:`REPORT_DIR` set, a JSON report per run, named after the test that ran it."""
    directory = os.environ.get(REPORT_DIR)
    if not directory:
        return []
    # "tests/test_x.py::test_tls[distribution-tls] (call)" -> "test_tls[distribution-tls]"
    current = os.environ.get("PYTEST_CURRENT_TEST", "run").rsplit(" ", 1)[0]
    label = current.rsplit("::", 1)[-1]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "run"
    # The child runs elsewhere: a relative directory is relative to us.
    path = Path(directory).resolve() / f"{stem}.json"
    for number in itertools.count(2):
        if not path.exists():
            break
        path = path.with_name(f"{stem}-{number}.json")
    return [f"--pax-report-json={path}", f"--pax-report-name={label}"]


def _name(testcase: ET.Element) -> str:
    classname = testcase.get("classname", "")
    parts = classname.split(".")
    # "conformance.test_pull.TestErrorCodes" -> "test_pull::TestErrorCodes"
    module_at = next((i for i, part in enumerate(parts) if part.startswith("test_")), len(parts) - 1)
    return "::".join([*parts[module_at:], testcase.get("name", "")])


def _parse(report: Path) -> tuple[dict[str, str], dict[str, str]]:
    outcomes: dict[str, str] = {}
    messages: dict[str, str] = {}
    for testcase in ET.parse(report).getroot().iter("testcase"):
        name = _name(testcase)
        failure = testcase.find("failure")
        if failure is None:
            failure = testcase.find("error")
        skipped = testcase.find("skipped")
        if failure is not None:
            outcomes[name] = "failed"
            messages[name] = failure.get("message", "")
        elif skipped is not None:
            reason = skipped.get("message", "")
            outcomes[name] = "unsupported" if reason.startswith(UNSUPPORTED) else "skipped"
            messages[name] = reason
        else:
            outcomes.setdefault(name, "passed")
    return outcomes, messages


def run(
    url: str | None = None,
    *,
    args: t.Sequence[str] = (),
    select: t.Sequence[str] = (),
    env: t.Mapping[str, str] | None = None,
    timeout: float = 300.0,
) -> SuiteResult:
    """Run the suite against ``url`` (the in-process emulator when ``None``) in a child process.

    :param args: more pytest arguments, e.g. ``["-m", "pull", "--pax-registry-config", "config.yml"]``.
    :param select: checks to run, as ``test_pull.py::TestPullBlobs::test_...``; all of them when empty.
    :param env: more environment for the child, whose ``PAX_*``, ``OCI_*`` and ``REGISTRY_*`` variables
        are otherwise cleared.
    """
    with tempfile.TemporaryDirectory(prefix="pax-conformance-") as workdir:
        report = Path(workdir, "junit.xml")
        command = pytest_command(["-q", f"--junitxml={report}"])
        command += _report_args()
        if url:
            command.append(f"--pax-registry-url={url}")
        command += [str(PACKAGE_DIR / item) for item in select] or ["--pyargs", "conformance"]
        command += list(args)
        started = time.monotonic()
        completed = subprocess.run(
            command,
            cwd=workdir,
            env=child_environ(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        duration = time.monotonic() - started
        output = completed.stdout + completed.stderr
        if not report.exists():
            raise RuntimeError(f"the suite did not run ({completed.returncode}):\n{output[-4000:]}")
        outcomes, messages = _parse(report)
    return SuiteResult(completed.returncode, outcomes, messages, output, duration)
