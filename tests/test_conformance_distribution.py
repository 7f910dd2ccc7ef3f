"""The conformance suite against Debian's docker-registry 2.8.2, the reference it is measured by.

Each run goes through a child ``pytest`` (:func:`conformance.runner.run`) with the registry's own
configuration file, so the config-derived checks run too: plain filesystem storage with deletes, htpasswd
with configured headers, TLS, and TLS with client certificates.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
import requests

from conformance.runner import SuiteResult
from conformance.runner import run
from fixtures.distribution import DistributionServer
from fixtures.distribution import distribution_available
from fixtures.distribution import write_htpasswd

pytestmark = [
    pytest.mark.peers,
    pytest.mark.skipif(not distribution_available(), reason="docker-registry is not installed"),
]

#: 2.8.2 answers ``GET /v2/<name>/manifests/sha256:totallywrong`` with 500 UNKNOWN: the invalid digest is
#: taken for a tag, and the storage driver rejects the ':' in the tag's path. The spec wants 400 or 404.
KNOWN_FAILURES = {
    "test_pull::TestErrorCodes::test_400_response_body_should_contain_oci_conforming_json_message"
}

#: The optional features 2.8.2 lacks, as the suite names them.
MISSING_FEATURES = (
    "referrers API",
    "tag list pagination",
    "ordered tag lists",
    "tag deletion",
    "Content-Range on PATCH",
    "reusable upload URLs",
    "pack registry health endpoint",
    "pack registry /v1/ API",
)

USER, PASSWORD = "conformance", "s3cret pass"
HEADERS = {
    "X-Content-Type-Options": ["nosniff"],
    "X-Frame-Options": ["DENY"],
    "Referrer-Policy": ["same-origin"],
}


def check(result: SuiteResult) -> None:
    assert result.failed == KNOWN_FAILURES, result.output[-6000:]
    for name, reason in result.unsupported.items():
        assert reason.startswith("unsupported: ")
        assert any(feature in reason for feature in MISSING_FEATURES), f"{name}: {reason}"
    assert result.duration < 30


def config_checks(result: SuiteResult) -> dict[str, str]:
    return {name: outcome for name, outcome in result.outcomes.items() if name.startswith("test_config::")}


def test_filesystem_with_deletes() -> None:
    with DistributionServer() as server:
        result = run(server.url, args=[f"--pax-registry-config={server.config_path}"])
    check(result)
    assert config_checks(result)["test_config::test_deletes_follow_storage_delete_enabled[blob]"] == "passed"


def test_htpasswd_and_headers(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {USER: PASSWORD})
    config = {
        "auth": {"htpasswd": {"realm": "pax realm", "path": str(htpasswd)}},
        "http": {"headers": HEADERS},
    }
    with DistributionServer(config) as server:
        result = run(
            server.url,
            args=[
                f"--pax-registry-config={server.config_path}",
                f"--pax-registry-username={USER}",
                f"--pax-registry-password={PASSWORD}",
            ],
        )
    check(result)
    checks = config_checks(result)
    assert (
        checks["test_config::test_htpasswd_challenges_requests_without_credentials[upload-patch]"] == "passed"
    )
    assert checks["test_config::test_configured_headers_are_on_every_response[unauthorized]"] == "passed"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import trustme

    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("conformance@example.test")
    files = {
        "ca": directory / "ca.pem",
        "cert": directory / "cert.pem",
        "key": directory / "key.pem",
        "client": directory / "client.pem",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(files["client"]))
    return {name: str(path) for name, path in files.items()}


@pytest.mark.parametrize("client_certificates", [False, True], ids=["tls", "mutual-tls"])
def test_tls(tls_files: dict[str, str], client_certificates: bool) -> None:
    tls: dict[str, t.Any] = {
        "certificate": tls_files["cert"],
        "key": tls_files["key"],
        "minimumtls": "tls1.2",
    }
    if client_certificates:
        tls["clientcas"] = [tls_files["ca"]]
    with DistributionServer({"http": {"tls": tls}}) as server:
        assert server.url.startswith("https://")
        result = run(
            server.url,
            args=[
                f"--pax-registry-config={server.config_path}",
                f"--pax-registry-cacert={tls_files['ca']}",
                f"--pax-registry-client-cert={tls_files['client']}",
            ],
        )
    check(result)
    checks = config_checks(result)
    assert checks["test_config::test_tls_versions_below_the_minimum_are_refused"] == "passed"
    refused = checks["test_config::test_handshake_without_client_certificate_is_refused"]
    assert refused == ("passed" if client_certificates else "skipped")


def test_two_runs_share_one_server_and_clean_up() -> None:
    namespace = "conformance/twice"
    with DistributionServer() as server:
        first = run(server.url, args=[f"--pax-namespace={namespace}"])
        second = run(server.url, args=[f"--pax-namespace={namespace}"])
        leftovers = {
            repo: requests.get(f"{server.url}/v2/{namespace}/{repo}/tags/list", timeout=10).json().get("tags")
            for repo in ("pull", "push", "discovery", "management", "docker", "pack")
        }
    check(first)
    check(second)
    assert first.outcomes == second.outcomes
    # 2.8.2 keeps an emptied repository and lists no tags ("tags": null) once its manifests are gone.
    assert all(not tags for tags in leftovers.values()), leftovers
