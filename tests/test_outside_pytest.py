"""The registry handle outside pytest: the ``RegistryServer`` context manager in a plain script, and the
``with_registry`` decorator in a ``unittest.TestCase``, each run by its own interpreter as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
import typing as t

import pytest

from pax_registry_fixtures import RegistryServer
from pax_registry_fixtures.server import with_registry

if t.TYPE_CHECKING:
    from pathlib import Path


def run_python(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The child imports the same code as this test run, whether that is the tree or an installed copy.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
    return subprocess.run(
        [sys.executable, *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


SCRIPT = """
import threading

import requests

from pax_registry_fixtures import RegistryServer

with RegistryServer({"storage": {"delete": {"enabled": True}}}) as registry:
    image = registry.push_image("team/app", "1.0", layers=2)
    session = registry.session()

    def pull():
        session.get(registry.url_for("/v2/team/app/manifests/1.0"), headers={"Accept": image.media_type})
        for digest in image.layers:
            session.get(registry.url_for(f"/v2/team/app/blobs/{digest}"))

    client = threading.Thread(target=pull)
    client.start()
    blobs = registry.wait_for_requests(2, timeout=30, method="GET", path="/v2/team/app/blobs/*")
    client.join()
    print("pulled", len(blobs), "blobs")
    registry.assert_request_made("GET", "/v2/team/app/manifests/1.0", status=200)

    registry.reset()
    print("after reset:", session.get(registry.url_for("/v2/_catalog")).json())

    registry.expect("GET", "/v2/_catalog")
    session.get(registry.url_for("/v2/_catalog"))
    registry.check()
    session.delete(registry.url_for(f"/v2/team/app/manifests/{image.digest}"))
    try:
        registry.check()
    except AssertionError as error:
        print(error)
    url = registry.url

try:
    requests.get(url + "/v2/", timeout=5)
except requests.ConnectionError:
    print("stopped")
"""


def test_a_plain_script_uses_the_context_manager(tmp_path: Path) -> None:
    (tmp_path / "script.py").write_text(SCRIPT)

    result = run_python(tmp_path, "script.py")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["pulled 2 blobs", "after reset: {'repositories': []}"]
    assert lines[2].startswith("1 unexpected request(s) to the strict registry <RegistryServer http://")
    assert "  DELETE /v2/team/app/manifests/sha256:" in result.stdout
    assert result.stdout.endswith("expected:\n  GET /v2/_catalog\nstopped\n")


UNITTEST_MODULE = """
import unittest

from pax_registry_fixtures import RegistryServer
from pax_registry_fixtures.server import with_registry


class RegistryTest(unittest.TestCase):
    @with_registry({"http": {"headers": {"X-Team": ["platform"]}}})
    def test_push_and_pull(self, registry: RegistryServer) -> None:
        image = registry.push_image("team/app", "1")
        response = registry.session().get(
            registry.url_for("/v2/team/app/manifests/1"), headers={"Accept": image.media_type}
        )
        self.assertEqual(response.headers["X-Team"], "platform")
        self.assertEqual(response.content, image.manifest)
        registry.assert_request_made("GET", "/v2/team/app/manifests/1")

    @with_registry(strict=True)
    def test_strict_and_expected(self, registry: RegistryServer) -> None:
        registry.expect("GET", "/v2/")
        self.assertEqual(registry.session().get(registry.url_for("/v2/")).status_code, 200)

    @with_registry()
    def test_strict_and_surprised(self, registry: RegistryServer) -> None:
        registry.expect("GET", "/v2/")
        registry.session().get(registry.url_for("/v2/_catalog"))


if __name__ == "__main__":
    unittest.main()
"""


def test_a_unittest_testcase_uses_the_decorator(tmp_path: Path) -> None:
    (tmp_path / "test_registry_unittest.py").write_text(UNITTEST_MODULE)

    result = run_python(tmp_path, "-m", "unittest", "-v", "test_registry_unittest")

    assert result.returncode == 1, result.stderr
    report = result.stderr
    assert "test_push_and_pull (test_registry_unittest.RegistryTest.test_push_and_pull) ... ok" in report
    assert (
        "test_strict_and_expected (test_registry_unittest.RegistryTest.test_strict_and_expected) ... ok"
        in (report)
    )
    assert (
        "test_strict_and_surprised (test_registry_unittest.RegistryTest.test_strict_and_surprised) ... FAIL"
        in (report)
    )
    failure = report[report.index("AssertionError: ") :]
    assert failure.startswith(
        "AssertionError: 1 unexpected request(s) to the strict registry <RegistryServer"
    )
    assert "\n  GET /v2/_catalog -> 200\n" in failure
    assert "expected:\n  GET /v2/\n" in failure
    assert "Ran 3 tests" in report and "FAILED (failures=1)" in report


@with_registry({"storage": {"delete": {"enabled": False}}})
def test_pytest_runs_a_decorated_test_without_a_registry_fixture(registry: RegistryServer) -> None:
    assert not registry.config.storage.delete_enabled
    assert registry.session().get(registry.url_for("/v2/")).status_code == 200


def test_the_decorator_passes_arguments_returns_the_result_and_stops_the_registry() -> None:
    seen: list[RegistryServer] = []

    @with_registry()
    def main(name: str, *, registry: RegistryServer, tag: str = "1") -> str:
        seen.append(registry)
        return registry.push_image(name, tag).reference

    reference = main("team/app", tag="2")

    [registry] = seen
    assert reference.endswith("/team/app:2")
    assert not registry.is_running()
    assert registry.registry.manifest_exists("team/app", "2")


def test_the_decorator_fails_a_strict_call_after_the_function_returned() -> None:
    calls: list[str] = []

    @with_registry(strict=True)
    def quiet(registry: RegistryServer) -> None:
        calls.append("quiet")

    @with_registry(strict=True)
    def chatty(registry: RegistryServer) -> None:
        registry.session().get(registry.url_for("/v2/"))
        calls.append("chatty")

    quiet()
    with pytest.raises(
        AssertionError, match=r"(?s)1 unexpected request.*GET /v2/ -> 200.*no request was expected"
    ):
        chatty()
    assert calls == ["quiet", "chatty"]


def test_the_decorator_without_parentheses_says_how_to_write_it() -> None:
    def main(registry: RegistryServer) -> None:
        raise AssertionError("never called")

    with pytest.raises(TypeError, match=r"write @with_registry\(\) with parentheses"):
        with_registry(main)  # type: ignore[arg-type]  # the mistake itself
