"""The suite's preflight: pointed at a registry it cannot use, a run stops before any check.

Each case runs the real ``pytest --pyargs conformance`` in a child process against a real server (an
emulator from ``pax_registry_factory``, Debian's docker-registry, or a plain web server) set up wrong in one
way, and expects exit status 2 with one line of output that names the problem and the option that fixes
it: no traceback, no check reported.
"""

from __future__ import annotations

import functools
import http.server
import re
import subprocess
import threading
import typing as t
from pathlib import Path

import pytest

from conformance.plugin import PREFLIGHT
from conformance.runner import child_environ
from conformance.runner import pytest_command
from pax_registry_fixtures.distribution import DistributionServer
from pax_registry_fixtures.distribution import distribution_available
from pax_registry_fixtures.process import free_port

if t.TYPE_CHECKING:
    from pax_registry_fixtures import RegistryFactory
    from pax_registry_fixtures import TLSFiles


def run_suite(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pytest_command(["--pyargs", "conformance", *args]),
        cwd=tmp_path,
        env=child_environ(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def refused(result: subprocess.CompletedProcess[str], *phrases: str) -> str:
    """The one line a stopped run printed; it must hold every phrase."""
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"ERROR: {PREFLIGHT}: "), lines
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])
    return lines[0]


def with_scheme(url: str, scheme: str) -> str:
    return f"{scheme}://{url.split('://', 1)[1]}"


@pytest.fixture
def not_a_registry(tmp_path: Path) -> t.Iterator[str]:
    """A plain web server on an empty directory: ``GET /v2/`` answers 404."""
    root = tmp_path / "site"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_closed_port(tmp_path: Path) -> None:
    port = free_port()
    result = run_suite(tmp_path, f"--pax-registry-url=http://127.0.0.1:{port}")
    refused(result, f"127.0.0.1:{port}", "connection refused", "--pax-registry-url")


def test_http_against_a_tls_registry(tmp_path: Path, pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(tls=True)
    result = run_suite(tmp_path, f"--pax-registry-url={with_scheme(registry.url, 'http')}")
    refused(result, "speaks TLS", f"use https://{registry.host}", "--pax-registry-url")


def test_https_against_a_plain_registry(tmp_path: Path, pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory()
    result = run_suite(tmp_path, f"--pax-registry-url={with_scheme(registry.url, 'https')}")
    refused(result, "speaks plain HTTP", f"use http://{registry.host}", "--pax-registry-url")


def test_untrusted_certificate(tmp_path: Path, pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(tls=True)
    result = run_suite(tmp_path, f"--pax-registry-url={registry.url}")
    refused(result, "not trusted", "--pax-registry-cacert")


def test_certificate_from_another_ca(
    tmp_path: Path, pax_registry_factory: RegistryFactory, pax_tls: TLSFiles
) -> None:
    registry = pax_registry_factory(tls=True)
    assert registry.tls is not None and registry.tls.ca_path != pax_tls.ca_path
    result = run_suite(
        tmp_path, f"--pax-registry-url={registry.url}", f"--pax-registry-cacert={pax_tls.ca_path}"
    )
    refused(result, "not signed by a CA in --pax-registry-cacert", str(pax_tls.ca_path))


def test_missing_client_certificate(tmp_path: Path, pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(client_auth=True)
    assert registry.tls is not None
    result = run_suite(
        tmp_path, f"--pax-registry-url={registry.url}", f"--pax-registry-cacert={registry.tls.ca_path}"
    )
    refused(result, "requires a client certificate", "--pax-registry-client-cert")


def test_wrong_password(tmp_path: Path, pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(auth=True)
    result = run_suite(
        tmp_path,
        f"--pax-registry-url={registry.url}",
        f"--pax-registry-username={registry.username}",
        "--pax-registry-password=not the password",
    )
    line = refused(result, "refused the credentials", f"'{registry.username}'", "--pax-registry-password")
    assert "not the password" not in line


def test_no_credentials(tmp_path: Path, pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(auth=True)
    result = run_suite(tmp_path, f"--pax-registry-url={registry.url}")
    refused(result, "requires credentials", "--pax-registry-username", "--pax-registry-password")


def test_not_a_registry(tmp_path: Path, not_a_registry: str) -> None:
    result = run_suite(tmp_path, f"--pax-registry-url={not_a_registry}")
    refused(result, "answered 404", "not the base URL of a registry", "--pax-registry-url")


def test_missing_ca_file(tmp_path: Path, pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(tls=True)
    missing = tmp_path / "nowhere" / "ca.pem"
    result = run_suite(tmp_path, f"--pax-registry-url={registry.url}", f"--pax-registry-cacert={missing}")
    refused(result, f"--pax-registry-cacert={missing}: no such file")


def test_unreadable_configuration(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("storage: [unclosed\n")
    result = run_suite(tmp_path, f"--pax-registry-config={config}")
    refused(result, "--pax-registry-config", str(config))


def test_in_process_emulator_that_wants_credentials(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("")
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\nstorage:\n  inmemory: {}\n"
        f"auth:\n  htpasswd:\n    realm: pax\n    path: {htpasswd}\n"
    )
    for extra in ([], ["-n", "2"]):
        result = run_suite(tmp_path, f"--pax-registry-config={config}", *extra)
        refused(
            result, "the emulator started here requires credentials", "htpasswd", "--pax-registry-username"
        )


def test_in_process_emulator_that_serves_an_untrusted_certificate(tmp_path: Path, pax_tls: TLSFiles) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\nstorage:\n  inmemory: {}\n"
        f"http:\n  tls:\n    certificate: {pax_tls.cert_path}\n    key: {pax_tls.key_path}\n"
    )
    result = run_suite(tmp_path, f"--pax-registry-config={config}")
    output = result.stdout + result.stderr
    # Found once the emulator runs, inside the session: pytest's exit notice is the one message.
    assert result.returncode == 2, output
    assert re.search(
        rf"^! _pytest.outcomes.Exit: {PREFLIGHT}: the certificate of .* is not trusted", output, re.M
    )
    assert "--pax-registry-cacert" in output
    assert "Traceback" not in output and " passed" not in output and " failed" not in output


@pytest.mark.peers
@pytest.mark.parametrize(
    ("case", "phrases"),
    [
        ("http-to-tls", ("speaks TLS", "use https://")),
        ("https-to-plain", ("speaks plain HTTP", "use http://")),
        ("no-client-certificate", ("requires a client certificate", "--pax-registry-client-cert")),
    ],
    ids=["http-to-tls", "https-to-plain", "no-client-certificate"],
)
def test_docker_registry_set_up_wrong(
    tmp_path: Path, pax_tls: TLSFiles, case: str, phrases: tuple[str, ...]
) -> None:
    """Go's TLS stack answers these its own way (a 400 page, a bad-certificate alert)."""
    assert distribution_available(), "docker-registry is not installed (Debian package docker-registry)"
    tls: dict[str, t.Any] = {"certificate": str(pax_tls.cert_path), "key": str(pax_tls.key_path)}
    if case == "no-client-certificate":
        tls["clientcas"] = [str(pax_tls.ca_path)]
    config = {} if case == "https-to-plain" else {"http": {"tls": tls}}
    with DistributionServer(config, workdir=tmp_path / "registry") as server:
        scheme = {"http-to-tls": "http", "https-to-plain": "https"}.get(case, "https")
        result = run_suite(
            tmp_path,
            f"--pax-registry-url={scheme}://{server.host}",
            f"--pax-registry-cacert={pax_tls.ca_path}",
        )
    refused(result, *phrases)


def test_a_registry_set_up_right_passes_the_preflight(
    tmp_path: Path, pax_registry_factory: RegistryFactory
) -> None:
    registry = pax_registry_factory(tls=True, auth=True)
    assert registry.tls is not None
    result = run_suite(
        tmp_path,
        "-q",
        "-m",
        "pack",
        f"--pax-registry-url={registry.url}",
        f"--pax-registry-cacert={registry.tls.ca_path}",
        f"--pax-registry-username={registry.username}",
        f"--pax-registry-password={registry.password}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^\d+ passed, \d+ deselected in ", result.stdout, re.MULTILINE), result.stdout
