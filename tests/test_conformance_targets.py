"""The conformance suite against live servers: Debian's docker-registry 2.8.2, the reference it is
measured by, and the emulator as ``python -m emulator serve``, each with the same configurations.

Each run goes through a child ``pytest`` (:func:`conformance.runner.run`) with the registry's own
configuration file, so the config-derived checks run too: plain filesystem storage with deletes, htpasswd
with configured headers, TLS, and TLS with client certificates. The emulator must pass everything under
every profile. 2.8.2 must fail what the OCI distribution-spec conformance suite fails it for (the 13
behaviours of issue 11), plus the stricter checks it breaks for the reasons given below, and lack only
the optional features listed below; the ``pack`` profile turns its missing pack surface into failures.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
import requests

from conformance.runner import SuiteResult
from conformance.runner import run
from conformance.verdicts import PROFILES
from conformance.verdicts import TABLE
from emulator.config import merged
from pax_registry_fixtures.distribution import DistributionServer
from pax_registry_fixtures.distribution import write_htpasswd
from pax_registry_fixtures.process import RegistryProcess
from pax_registry_fixtures.tls import TLSFiles

#: docker-registry missing fails its runs (``noxfile.install_peers`` installs it): no skip hides them.
TARGETS = [pytest.param("distribution", marks=pytest.mark.peers), "emulator"]

#: What the OCI suite (v1.1.1 and its main branch's Ginkgo suite) fails 2.8.2 for, filesystem storage
#: and deletes on, by the check that must fail here too.
OCI_SUITE_FAILURES = {
    # 500 UNKNOWN for GET /manifests/sha256:totallywrong: the bad digest is taken for a tag.
    "test_pull::TestErrorCodes::test_400_response_body_should_contain_oci_conforming_json_message",
    # Content-Range is ignored: an out-of-order chunk is appended (202).
    "test_push::TestBlobUploadChunked::test_out_of_order_blob_upload_should_return_416",
    # A stale upload URL (its _state names an older offset) answers 404 BLOB_UPLOAD_INVALID...
    "test_push::TestBlobUploadChunked::test_retry_previous_blob_chunk_should_return_416",
    # ... to GET as well.
    "test_push::TestBlobUploadChunked::test_get_on_stale_blob_upload_should_return_204_with_a_range_and_location",
    # No OCI-Subject on manifests with a subject.
    "test_discovery::TestSetup::test_references_setup",
    # Tags in storage order (test0, test3, TEST2, ...), n and last ignored.
    "test_discovery::TestListingTags::test_get_request_to_list_tags_should_yield_200_response_and_be_in_sorted_order",
    "test_discovery::TestListingTags::test_get_number_of_tags_should_be_limitable_by_n_query_parameter",
    "test_discovery::TestListingTags::test_get_start_of_tag_is_set_by_last_query_parameter",
    # No referrers API: 404 page not found.
    "test_discovery::TestListingReferences::test_get_request_to_nonexistent_blob_should_result_in_empty_200_response",
    "test_discovery::TestListingReferences::test_get_request_to_existing_blob_should_yield_200",
    "test_discovery::TestListingReferences::test_get_request_to_existing_blob_with_filter_should_yield_200[type-a]",
    "test_discovery::TestListingReferences::test_get_request_to_missing_manifest_should_yield_200",
    # DELETE by tag answers 400 DIGEST_INVALID, where 202, 405 or 400 UNSUPPORTED are allowed.
    "test_management::TestManifestDelete::"
    "test_delete_request_to_manifest_tag_should_return_202_unless_tag_deletion_is_disallowed",
}

#: The checks beyond the OCI suite's that 2.8.2 fails, for the same defects or for ones the OCI suite's
#: redesign also catches.
STRICTER_FAILURES = {
    # 416 for an unsatisfiable Range, with the blob's Content-Length and a 14-byte body (a body cut short).
    "test_pull::TestRangeRequests::test_blob_range_request[reversed]",
    "test_pull::TestRangeRequests::test_blob_range_request[unsatisfiable]",
    # Content-Range ignored: every out-of-order request is appended, and the upload is lost after it.
    *(
        f"test_push::TestBlobUploadChunkedOutOfOrder::{name}"
        for name in (
            "test_chunk_before_any_data_out_of_order_should_return_416",
            "test_first_chunk_should_return_202",
            "test_chunk_skipping_ahead_should_return_416",
            "test_chunk_sent_twice_should_return_416",
            "test_second_chunk_should_return_202_with_the_range_of_both",
            "test_final_chunk_out_of_order_in_put_should_return_416",
            "test_final_chunk_in_put_should_return_201",
        )
    ),
    # No referrers API (the second artifact type, and a malformed digest).
    "test_discovery::TestListingReferences::test_get_request_to_existing_blob_with_filter_should_yield_200[type-b]",
    "test_discovery::TestListingReferences::test_get_request_with_an_invalid_digest_should_yield_400",
    # The tag survives its refused DELETE.
    "test_management::TestManifestDelete::test_get_request_to_deleted_tag_should_yield_404_response",
}

#: What the pack profile adds: 2.8.2 has no /health and no /v1/.
PACK_FAILURES = {
    "test_pack::test_health_answers_up",
    "test_pack::test_v1_base_answers_200",
    "test_pack::test_v1_catalog_lists_repositories",
    "test_pack::test_v1_blob_is_served_with_the_requested_type",
}

#: The optional features 2.8.2 lacks, by row of the verdict table: it ignores ?digest= on POST, mounts
#: only with 'from', refuses sha512 manifests (400 DIGEST_INVALID), and has no pack surface.
MISSING_FEATURES = {"single-post", "automatic-mount", "sha512", "pack-health", "pack-v1"}

USER, PASSWORD = "conformance", "s3cret pass"
HEADERS = {
    "X-Content-Type-Options": ["nosniff"],
    "X-Frame-Options": ["DENY"],
    "Referrer-Policy": ["same-origin"],
}


class Server(t.Protocol):
    @property
    def url(self) -> str: ...

    @property
    def config_path(self) -> Path: ...

    def stop(self) -> t.Any: ...


def rows_of(result: SuiteResult) -> set[str]:
    """The rows of the verdict table behind a run's unsupported checks."""
    rows = set()
    for name, reason in result.unsupported.items():
        row = next((row for row in TABLE if reason.startswith(f"unsupported: {row.feature} (")), None)
        assert row is not None, f"{name}: {reason}"
        rows.add(row.key)
    return rows


class Target:
    """One registry kind under test, started from a configuration mapping."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.workdir = workdir

    def start(self, config: t.Mapping[str, t.Any] | None = None) -> Server:
        if self.kind == "distribution":
            return DistributionServer(config).start()
        # The same settings DistributionServer applies by default: filesystem storage with deletes.
        base: dict[str, t.Any] = {
            "storage": {
                "filesystem": {"rootdirectory": str(self.workdir / "data")},
                "delete": {"enabled": True},
            },
            "log": {"level": "error", "accesslog": {"disabled": True}},
        }
        return RegistryProcess(merged(base, config or {})).start()

    def check(self, result: SuiteResult, profile: str = "oci") -> None:
        if self.kind == "emulator":
            assert result.failed == set(), result.output[-6000:]
            assert result.unsupported == {}, result.unsupported
            return
        assert not OCI_SUITE_FAILURES - result.failed, result.output[-6000:]
        expected = OCI_SUITE_FAILURES | STRICTER_FAILURES | (PACK_FAILURES if profile == "pack" else set())
        assert result.failed == expected, sorted(result.failed ^ expected)
        missing = {key for key in MISSING_FEATURES if not (profile == "pack" and key.startswith("pack-"))}
        assert rows_of(result) == missing, result.unsupported


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    return Target(request.param, tmp_path)


def config_checks(result: SuiteResult) -> dict[str, str]:
    return {name: outcome for name, outcome in result.outcomes.items() if name.startswith("test_config::")}


@pytest.mark.parametrize("profile", PROFILES)
def test_filesystem_with_deletes(target: Target, profile: str) -> None:
    server = target.start()
    try:
        result = run(
            server.url,
            args=[f"--pax-registry-config={server.config_path}", f"--pax-registry-profile={profile}"],
        )
    finally:
        server.stop()
    target.check(result, profile)
    assert config_checks(result)["test_config::test_deletes_follow_storage_delete_enabled[blob]"] == "passed"


def test_htpasswd_and_headers(target: Target, tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {USER: PASSWORD})
    config = {
        "auth": {"htpasswd": {"realm": "pax realm", "path": str(htpasswd)}},
        "http": {"headers": HEADERS},
    }
    server = target.start(config)
    try:
        result = run(
            server.url,
            args=[
                f"--pax-registry-config={server.config_path}",
                f"--pax-registry-username={USER}",
                f"--pax-registry-password={PASSWORD}",
            ],
        )
    finally:
        server.stop()
    target.check(result)
    checks = config_checks(result)
    assert (
        checks["test_config::test_htpasswd_challenges_requests_without_credentials[upload-patch]"] == "passed"
    )
    assert checks["test_config::test_configured_headers_are_on_every_response[unauthorized]"] == "passed"


@pytest.mark.parametrize("client_certificates", [False, True], ids=["tls", "mutual-tls"])
def test_tls(target: Target, pax_tls: TLSFiles, client_certificates: bool) -> None:
    tls = {**pax_tls.server_config(client_auth=client_certificates), "minimumtls": "tls1.2"}
    client = pax_tls.issue_client_cert("conformance@example.test")
    server = target.start({"http": {"tls": tls}})
    try:
        assert server.url.startswith("https://")
        result = run(
            server.url,
            args=[
                f"--pax-registry-config={server.config_path}",
                f"--pax-registry-cacert={pax_tls.ca_path}",
                f"--pax-registry-client-cert={client.cert_path}",
                f"--pax-registry-client-key={client.key_path}",
            ],
        )
    finally:
        server.stop()
    target.check(result)
    checks = config_checks(result)
    assert checks["test_config::test_tls_versions_below_the_minimum_are_refused"] == "passed"
    refused = checks["test_config::test_handshake_without_client_certificate_is_refused"]
    assert refused == ("passed" if client_certificates else "skipped")


def test_two_runs_share_one_server_and_clean_up(target: Target) -> None:
    namespace = "conformance/twice"
    server = target.start()
    try:
        first = run(server.url, args=[f"--pax-namespace={namespace}"])
        second = run(server.url, args=[f"--pax-namespace={namespace}"])
        leftovers = {
            repo: requests.get(f"{server.url}/v2/{namespace}/{repo}/tags/list", timeout=10).json().get("tags")
            for repo in ("pull", "push", "discovery", "management", "docker", "pack")
        }
    finally:
        server.stop()
    target.check(first)
    target.check(second)
    assert first.outcomes == second.outcomes
    # 2.8.2 keeps an emptied repository and lists no tags ("tags": null) once its manifests are gone.
    assert all(not tags for tags in leftovers.values()), leftovers


def test_an_emulator_validating_packs_refuses_a_bad_pack(tmp_path: Path) -> None:
    """The pack profile against an emulator with the pack extensions on: every check passes, and the
    config check derived from validation.packs.enabled runs instead of ending not applicable."""
    target = Target("emulator", tmp_path)
    server = target.start({"validation": {"packs": {"enabled": True, "floatingtags": True}}})
    try:
        result = run(
            server.url,
            args=[f"--pax-registry-config={server.config_path}", "--pax-registry-profile=pack"],
        )
    finally:
        server.stop()
    target.check(result, "pack")
    check = "test_config::test_a_bad_pack_is_refused_with_manifest_invalid_and_leaves_no_tag"
    assert config_checks(result)[check] == "passed"
