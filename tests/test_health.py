"""Health checks, the gate they close on the registry API, and the debug server's ``/debug/health``.

The checkers' logic (thresholds, messages) is driven step by step through ``run_once``; the gate is
driven end to end by real checks over real HTTP, waiting for a check thread with a bounded poll.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest
import requests
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

import emulator
from emulator.config import ConfigError
from emulator.drivers.filesystem import FileSystemDriver
from emulator.drivers.inmemory import InMemoryDriver
from emulator.health import HealthGate
from emulator.health import PeriodicChecker
from emulator.health import file_check
from emulator.health import http_check
from emulator.health import storage_check
from emulator.health import tcp_check
from pax_registry_fixtures import RegistryFactory
from pax_registry_fixtures import RegistryServer

UNAVAILABLE = {
    "errors": [
        {
            "code": "UNAVAILABLE",
            "message": "service unavailable",
            "detail": "health check failed: please see /debug/health",
        }
    ]
}
DEBUG = {"addr": "127.0.0.1:0"}


def closed_port() -> int:
    """A port nothing listens on (bound, never listened to, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_status(url: str, status: int, timeout: float = 30.0) -> requests.Response:
    """Poll ``url`` until it answers ``status``: checks run in their own threads, one interval apart."""
    deadline = time.monotonic() + timeout
    while True:
        response = requests.get(url, timeout=30)
        if response.status_code == status or time.monotonic() > deadline:
            assert response.status_code == status, f"{url} still answers {response.status_code}"
            return response
        time.sleep(0.02)


# -- checkers, step by step ------------------------------------------------------------------------


class Outcomes:
    """A check answering from a script: ``None`` passes, a string fails with that message."""

    def __init__(self, *outcomes: str | None) -> None:
        self.outcomes = list(outcomes)

    def __call__(self) -> str | None:
        return self.outcomes.pop(0)


def test_threshold_zero_fails_at_the_first_failure_and_recovers_at_the_first_success() -> None:
    gate = HealthGate()
    checker = PeriodicChecker("c", Outcomes("down", None, "again"), gate, interval=10, threshold=0)
    seen = []
    for _ in range(3):
        checker.run_once()
        seen.append(dict(gate.failing))
    assert seen == [{"c": "down"}, {}, {"c": "again"}]


def test_threshold_needs_that_many_failures_in_a_row() -> None:
    gate = HealthGate()
    script = Outcomes("1", "2", None, "1", "2", "3", "4", None)
    checker = PeriodicChecker("c", script, gate, interval=10, threshold=3)
    seen = []
    for _ in range(8):
        checker.run_once()
        seen.append(gate.failing.get("c"))
    # A success resets the count; once failing, the latest message is shown.
    assert seen == [None, None, None, None, None, "3", "4", None]


def test_a_check_that_raises_is_a_failure() -> None:
    def broken() -> str | None:
        raise RuntimeError("cannot tell")

    gate = HealthGate()
    PeriodicChecker("c", broken, gate, interval=10).run_once()
    assert gate.failing == {"c": "cannot tell"}


def test_gate_keeps_each_checks_latest_status() -> None:
    gate = HealthGate()
    gate.report("a", "broken")
    gate.report("b", "also broken")
    gate.report("a", None)
    assert gate.failing == {"b": "also broken"}
    gate.report("b", "broken differently")
    assert gate.failing == {"b": "broken differently"}
    gate.report("b", None)
    assert gate.failing == {}


def test_file_check(tmp_path: Path) -> None:
    path = tmp_path / "down"
    check = file_check(str(path))
    assert check() is None
    path.touch()
    assert check() == "file exists"
    path.unlink()
    path.mkdir()  # anything at the path counts, as os.Stat succeeding does in distribution
    assert check() == "file exists"


def test_tcp_check() -> None:
    port = closed_port()
    assert tcp_check(f"127.0.0.1:{port}", timeout=5)() == f"connection to 127.0.0.1:{port} failed"
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        addr = f"127.0.0.1:{server.getsockname()[1]}"
        assert tcp_check(addr, timeout=5)() is None


def test_http_check_sends_a_head_with_headers_and_compares_the_status() -> None:
    seen: list[tuple[str, str | None]] = []
    answer = [200]

    @Request.application
    def downstream(request: Request) -> Response:
        seen.append((request.method, request.headers.get("X-Check")))
        return Response("body", status=answer[0])

    with emulator.serve_wsgi(downstream) as server:
        uri = f"{server.url}/ping"
        check = http_check(uri, status=200, timeout=5, headers={"X-Check": ("a", "b")})
        assert check() is None
        answer[0] = 503
        assert check() == "downstream service returned unexpected status: 503"
        assert http_check(uri, status=503, timeout=5, headers={})() is None
    assert seen[:2] == [("HEAD", "a, b"), ("HEAD", "a, b")]
    port = closed_port()
    dead = f"http://127.0.0.1:{port}/"
    assert http_check(dead, status=200, timeout=5, headers={})() == f"error while checking: {dead}"


def test_storage_check(tmp_path: Path) -> None:
    assert storage_check(InMemoryDriver())() is None  # nothing stored yet: not found is healthy
    root = tmp_path / "root"
    driver = FileSystemDriver(str(root))
    assert storage_check(driver)() is None
    root.rmdir()
    assert storage_check(driver)() is None
    root.symlink_to(root)  # a loop: every stat of the root fails
    problem = storage_check(driver)()
    assert problem is not None and str(root) in problem


def test_checker_thread_runs_one_interval_after_start_and_stops() -> None:
    gate = HealthGate()
    calls: list[float] = []

    def check() -> str | None:
        calls.append(time.monotonic())
        return "down"

    checker = PeriodicChecker("c", check, gate, interval=0.05)
    started = time.monotonic()
    checker.start()
    checker.start()  # idempotent: still one thread
    deadline = time.monotonic() + 30
    # Waiting for the report, not for the call: the thread reports after the check returns.
    while not gate.failing and time.monotonic() < deadline:
        time.sleep(0.01)
    checker.stop()
    checker.stop()
    assert calls and calls[0] - started >= 0.05
    assert gate.failing == {"c": "down"}
    stopped_with = len(calls)
    time.sleep(0.2)
    assert len(calls) <= stopped_with + 1  # at most the run that was already under way


# -- the gate on the registry, and /debug/health ---------------------------------------------------


def test_file_check_closes_and_reopens_the_api(pax_registry_factory: RegistryFactory, tmp_path: Path) -> None:
    flag = tmp_path / "maintenance"
    registry = pax_registry_factory(
        {"http": {"debug": DEBUG}, "health": {"file": [{"file": str(flag), "interval": "50ms"}]}}
    )
    health = registry.debug_url + "/debug/health"
    healthy = requests.get(health, timeout=30)
    assert (healthy.status_code, healthy.text) == (200, "{}")
    assert healthy.headers["Content-Type"] == "application/json; charset=utf-8"

    flag.touch()
    refused = wait_for_status(registry.url_for("/v2/"), 503)
    assert refused.json() == UNAVAILABLE
    assert refused.headers["Content-Type"] == "application/json; charset=utf-8"
    assert refused.reason == "Service Unavailable"
    assert "Docker-Distribution-API-Version" not in refused.headers
    assert "X-Frame-Options" not in refused.headers  # nor the configured http.headers
    # Everything on the main port is refused, before routing and before authentication.
    for method, path in [("GET", "/"), ("GET", "/v2/_catalog"), ("PUT", "/v2/a/manifests/1"), ("GET", "/x")]:
        response = requests.request(method, registry.url_for(path), timeout=30)
        assert (response.status_code, response.json()) == (503, UNAVAILABLE), path
    pack_health = requests.get(registry.url_for("/health"), timeout=30)
    assert (pack_health.status_code, pack_health.json()) == (503, {"status": "DOWN"})
    unhealthy = requests.get(health, timeout=30)
    assert (unhealthy.status_code, unhealthy.json()) == (503, {str(flag): "file exists"})
    assert unhealthy.headers["Content-Type"] == "application/json; charset=utf-8"

    flag.unlink()
    wait_for_status(registry.url_for("/v2/"), 200)
    assert requests.get(registry.url_for("/health"), timeout=30).json() == {"status": "UP"}
    assert requests.get(health, timeout=30).text == "{}"


def test_tcp_check_against_a_closed_port(pax_registry_factory: RegistryFactory) -> None:
    addr = f"127.0.0.1:{closed_port()}"
    registry = pax_registry_factory(
        {"http": {"debug": DEBUG}, "health": {"tcp": [{"addr": addr, "interval": "50ms", "timeout": "5s"}]}}
    )
    response = wait_for_status(registry.debug_url + "/debug/health", 503)
    assert response.text == f'{{"{addr}":"connection to {addr} failed"}}'  # compact, as Go marshals it
    assert requests.get(registry.url_for("/v2/"), timeout=30).json() == UNAVAILABLE


def test_http_check_against_a_small_server(pax_registry_factory: RegistryFactory) -> None:
    answer = [200]

    @Request.application
    def downstream(request: Request) -> Response:
        return Response(status=answer[0])

    with emulator.serve_wsgi(downstream) as server:
        uri = f"{server.url}/ready"
        check = {"uri": uri, "interval": "50ms", "threshold": 2, "timeout": "5s"}
        registry = pax_registry_factory({"http": {"debug": DEBUG}, "health": {"http": [check]}})
        assert requests.get(registry.url_for("/v2/"), timeout=30).status_code == 200
        answer[0] = 500
        response = wait_for_status(registry.debug_url + "/debug/health", 503)
        assert response.json() == {uri: "downstream service returned unexpected status: 500"}
        answer[0] = 200
        wait_for_status(registry.url_for("/v2/"), 200)


def test_storagedriver_check(pax_registry_factory: RegistryFactory, tmp_path: Path) -> None:
    root = tmp_path / "storage"
    check = {"storagedriver": {"enabled": True, "interval": "50ms", "threshold": 1}}
    registry = pax_registry_factory(
        {"http": {"debug": DEBUG}, "health": check, "storage": {"filesystem": {"rootdirectory": str(root)}}}
    )
    registry.push_blob("team/a", b"data")
    time.sleep(0.2)  # several check runs, on storage that is fine
    assert requests.get(registry.url_for("/v2/"), timeout=30).status_code == 200
    moved = tmp_path / "elsewhere"
    root.rename(moved)
    root.symlink_to(root)
    response = wait_for_status(registry.debug_url + "/debug/health", 503)
    assert list(response.json()) == ["storagedriver_filesystem"]
    root.unlink()
    moved.rename(root)
    wait_for_status(registry.url_for("/v2/"), 200)


def test_debug_health_answers_get_only(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory({"http": {"debug": DEBUG}})
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        response = requests.request(method, registry.debug_url + "/debug/health", timeout=30)
        assert response.status_code == 404, method
        if method != "HEAD":
            assert response.text == "404 page not found\n"
            assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    for path in ("/debug/health/up", "/debug/vars", "/"):
        assert requests.get(registry.debug_url + path, timeout=30).status_code == 404
    # The debug port is plain HTTP without auth, and the main port has no /debug/health.
    assert requests.get(registry.url_for("/debug/health"), timeout=30).status_code == 404


def test_debug_port_follows_the_registry(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory({"http": {"debug": DEBUG}})
    url = registry.debug_url
    assert requests.get(url + "/debug/health", timeout=30).status_code == 200
    registry.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/debug/health", timeout=30)
    with pytest.raises(RuntimeError, match="not running"):
        registry.debug_url  # noqa: B018
    plain = pax_registry_factory()
    with pytest.raises(RuntimeError, match=r"http\.debug\.addr"):
        plain.debug_url  # noqa: B018


def test_a_taken_debug_port_stops_the_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
        config: dict[str, t.Any] = {"http": {"debug": {"addr": addr}}}
        with pytest.raises(ConfigError) as caught:
            RegistryServer(config)
        assert caught.value.key == "http.debug.addr"
        assert str(caught.value).endswith(f"http.debug.addr: cannot listen on {addr}: Address already in use")


def test_serve_exits_with_one_line_when_the_debug_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
        config = tmp_path / "config.yml"
        config.write_text(
            "version: 0.1\nstorage:\n  inmemory: {}\n"
            f"http:\n  addr: 127.0.0.1:0\n  secret: s\n  debug:\n    addr: {addr}\n"
        )
        environment = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        result = subprocess.run(
            [sys.executable, "-m", "emulator", "serve", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
            env=environment,
            check=False,
        )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"{config}: http.debug.addr: cannot listen on {addr}: Address already in use"
    assert "Traceback" not in result.stderr
