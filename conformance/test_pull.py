"""Pull: the OCI conformance suite's first workflow (its 24 checks), and blob Range requests.

Setup pushes two configs, a layer and two manifests (one by tag, one by digest); the checks then read
them back, byte for byte and header by header, and ask for things that do not exist. Range requests are
the OCI suite's later additions: a registry SHOULD support them, and when it does, it must answer each
range exactly.
"""

from __future__ import annotations

import functools
import re
import typing as t

import pytest
import requests

from conformance.assertions import after
from conformance.assertions import assert_digest_header
from conformance.assertions import assert_size_header
from conformance.assertions import not_applicable
from conformance.client import error_codes
from conformance.data import DUMMY_DIGEST
from conformance.data import ERROR_CODES
from conformance.data import INVALID_MANIFEST_NAME
from conformance.data import OCI_MANIFEST
from conformance.verdicts import end_if_not_offered
from conformance.verdicts import profile_of
from conformance.workflow import Workflow

if t.TYPE_CHECKING:
    from conformance.client import RegistryClient
    from conformance.conftest import Cleanup
    from conformance.data import Manifest
    from conformance.data import RunData

pytestmark = pytest.mark.pull

TAG = "tagtest0"


class Pull(Workflow):
    """Two configs, a layer and two manifests, pushed once for every check that reads them back."""

    @functools.cached_property
    def config0(self) -> requests.Response:
        return self.push_blob(self.data.configs[0])

    @functools.cached_property
    def config1(self) -> requests.Response:
        return self.push_blob(self.data.configs[1])

    @functools.cached_property
    def layer(self) -> requests.Response:
        return self.push_blob(self.data.layer)

    @functools.cached_property
    def manifest_by_tag(self) -> requests.Response:
        after(self.config0, self.layer)
        return self.push_manifest(TAG, self.data.manifests[0])

    @functools.cached_property
    def manifest_by_digest(self) -> requests.Response:
        after(self.config1, self.layer)
        manifest = self.data.manifests[1]
        return self.push_manifest(manifest.digest, manifest)

    @functools.cached_property
    def ranged(self) -> requests.Response:
        return self.push_blob(self.data.ranged)

    def ready(self) -> None:
        after(self.manifest_by_tag, self.manifest_by_digest)

    def get_manifest(self, method: str, reference: str) -> requests.Response:
        self.ready()
        return self.registry.request(
            method, f"/v2/{self.repo}/manifests/{reference}", headers={"Accept": OCI_MANIFEST}
        )

    def get_blob(
        self, method: str, digest: str, headers: t.Mapping[str, str] | None = None
    ) -> requests.Response:
        self.ready()
        return self.registry.request(method, f"/v2/{self.repo}/blobs/{digest}", headers=headers)

    @functools.cached_property
    def range_probe(self) -> requests.Response:
        """A plain range inside the blob: how the registry treats ``Range`` at all."""
        after(self.ranged)
        return self.get_blob("GET", self.data.ranged.digest, {"Range": "bytes=500-1499"})


@pytest.fixture(scope="module")
def pull(
    registry: RegistryClient, namespace: str, run_data: RunData, cleanup: Cleanup, pytestconfig: pytest.Config
) -> Pull:
    return Pull(registry, f"{namespace}/pull", run_data, cleanup, profile_of(pytestconfig))


def assert_created(response: requests.Response) -> None:
    assert response.status_code == 201
    assert response.headers.get("Location"), "201 without Location"


def assert_manifest(pull: Pull, response: requests.Response, manifest: Manifest, method: str) -> None:
    """A manifest GET or HEAD: 200, the pushed type and size, the bytes (GET), the digest header."""
    assert response.status_code == 200
    assert response.headers.get("Content-Type") == manifest.media_type
    if method == "GET":
        assert response.content == manifest.content, "the manifest is not the bytes that were pushed"
    else:
        assert not response.content, "a HEAD answered with a body"
        assert_size_header(response, manifest.size, pull.profile)
    assert_digest_header(response, manifest.content, pull.profile)


@pytest.mark.spec("distribution-spec 1.1 §Pushing blobs, §Pushing Manifests (the pull workflow's setup)")
class TestSetup:
    @pytest.mark.parametrize("blob", ["config0", "config1"])
    def test_populate_registry_with_test_blob(self, pull: Pull, blob: str) -> None:
        response = t.cast("requests.Response", getattr(pull, blob))
        assert_created(response)

    def test_populate_registry_with_test_layer(self, pull: Pull) -> None:
        response = pull.layer
        assert_created(response)

    @pytest.mark.parametrize("reference", ["tag", "digest"])
    def test_populate_registry_with_test_manifest(self, pull: Pull, reference: str) -> None:
        response = pull.manifest_by_tag if reference == "tag" else pull.manifest_by_digest
        assert_created(response)

    def test_get_tag_name_from_environment(self) -> None:
        not_applicable("the suite pushes its own content; it does not pull a tag named by OCI_TAG_NAME")


@pytest.mark.spec("distribution-spec 1.1 §Pulling blobs, §Checking if content exists in the registry")
class TestPullBlobs:
    def test_head_request_to_nonexistent_blob_should_result_in_404_response(self, pull: Pull) -> None:
        response = pull.get_blob("HEAD", DUMMY_DIGEST)
        assert response.status_code == 404

    def test_head_request_to_existing_blob_should_yield_200(self, pull: Pull) -> None:
        blob = pull.data.configs[0]
        response = pull.get_blob("HEAD", blob.digest)
        assert response.status_code == 200
        assert not response.content, "a HEAD answered with a body"
        assert_size_header(response, blob.size, pull.profile)
        assert_digest_header(response, blob.content, pull.profile)

    def test_get_nonexistent_blob_should_result_in_404_response(self, pull: Pull) -> None:
        response = pull.get_blob("GET", DUMMY_DIGEST)
        assert response.status_code == 404

    def test_get_request_to_existing_blob_url_should_yield_200(self, pull: Pull) -> None:
        blob = pull.data.configs[0]
        response = pull.get_blob("GET", blob.digest)
        assert response.status_code == 200
        assert response.content == blob.content, "the blob is not the bytes that were pushed"
        assert_digest_header(response, blob.content, pull.profile)


@pytest.mark.spec("distribution-spec 1.1 §Pulling manifests, §Checking if content exists in the registry")
class TestPullManifests:
    def test_head_request_to_nonexistent_manifest_should_return_404(self, pull: Pull) -> None:
        response = pull.get_manifest("HEAD", INVALID_MANIFEST_NAME)
        assert response.status_code == 404

    @pytest.mark.parametrize("index", [0, 1], ids=["manifest0", "manifest1"])
    def test_head_request_to_manifest_path_digest_should_yield_200_response(
        self, pull: Pull, index: int
    ) -> None:
        manifest = pull.data.manifests[index]
        response = pull.get_manifest("HEAD", manifest.digest)
        assert_manifest(pull, response, manifest, "HEAD")

    def test_head_request_to_manifest_path_tag_should_yield_200_response(self, pull: Pull) -> None:
        response = pull.get_manifest("HEAD", TAG)
        assert_manifest(pull, response, pull.data.manifests[0], "HEAD")

    def test_get_nonexistent_manifest_should_return_404(self, pull: Pull) -> None:
        response = pull.get_manifest("GET", INVALID_MANIFEST_NAME)
        assert response.status_code == 404

    @pytest.mark.parametrize("index", [0, 1], ids=["manifest0", "manifest1"])
    def test_get_request_to_manifest_path_digest_should_yield_200_response(
        self, pull: Pull, index: int
    ) -> None:
        manifest = pull.data.manifests[index]
        response = pull.get_manifest("GET", manifest.digest)
        assert_manifest(pull, response, manifest, "GET")

    def test_get_request_to_manifest_path_tag_should_yield_200_response(self, pull: Pull) -> None:
        response = pull.get_manifest("GET", TAG)
        assert_manifest(pull, response, pull.data.manifests[0], "GET")


@pytest.mark.spec("distribution-spec 1.1 §Error Codes")
class TestErrorCodes:
    def test_400_response_body_should_contain_oci_conforming_json_message(self, pull: Pull) -> None:
        response = pull.get_manifest("GET", "sha256:totallywrong")
        assert response.status_code in (400, 404)
        if response.status_code == 400:
            codes = error_codes(response)
            assert codes, "a 400 must carry an {'errors': [...]} body"
            assert codes[0] in ERROR_CODES


#: ``Content-Range`` of a 206: ``bytes <first>-<last>/<size or *>``.
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")

#: (Range header, first byte, last byte) of a 2048-byte blob; ``None`` when no byte can be served.
RANGES: dict[str, tuple[str, tuple[int, int] | None]] = {
    "closed": ("bytes=500-1499", (500, 1499)),
    "open-ended": ("bytes=500-", (500, 2047)),
    "suffix": ("bytes=-500", (1548, 2047)),
    "past-the-end": ("bytes=2000-5000", (2000, 2047)),
    "reversed": ("bytes=500-0", None),
    "unsatisfiable": ("bytes=5000-10000", None),
}


@pytest.mark.spec("distribution-spec 1.1 §Pulling blobs (Range); RFC 9110 §14")
class TestRangeRequests:
    @pytest.mark.parametrize("case", list(RANGES))
    def test_blob_range_request(self, pull: Pull, case: str) -> None:
        header, span = RANGES[case]
        blob = pull.data.ranged
        probe = pull.range_probe
        if probe.status_code == 200:
            assert probe.content == blob.content, "200 to a Range request without the whole blob"
        end_if_not_offered("blob-range", probe, pull.profile)
        response = (
            probe if header == "bytes=500-1499" else pull.get_blob("GET", blob.digest, {"Range": header})
        )
        if span is None:
            assert response.status_code == 416
            return
        first, last = span
        assert response.status_code == 206
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        assert match is not None, "206 without a 'Content-Range: bytes <first>-<last>/<size>'"
        assert (int(match.group(1)), int(match.group(2))) == (first, last)
        assert match.group(3) in (str(blob.size), "*")
        assert response.headers.get("Content-Length") == str(last - first + 1)
        assert response.content == blob.content[first : last + 1]


@pytest.mark.spec("distribution-spec 1.1 §Deleting Manifests, §Deleting Blobs (the pull workflow's teardown)")
class TestTeardown:
    @pytest.mark.parametrize("index", [0, 1], ids=["manifest0", "manifest1"])
    def test_delete_manifest_created_in_setup(self, pull: Pull, index: int) -> None:
        pull.ready()
        response = pull.registry.delete_manifest(pull.repo, pull.data.manifests[index].digest)
        end_if_not_offered("manifest-delete", response, pull.profile)
        assert response.status_code == 202

    @pytest.mark.parametrize("index", [0, 1], ids=["config0", "config1"])
    def test_delete_config_blob_created_in_setup(self, pull: Pull, index: int) -> None:
        pull.ready()
        response = pull.registry.delete_blob(pull.repo, pull.data.configs[index].digest)
        end_if_not_offered("blob-delete", response, pull.profile)
        assert response.status_code in (202, 404)

    def test_delete_layer_blob_created_in_setup(self, pull: Pull) -> None:
        pull.ready()
        response = pull.registry.delete_blob(pull.repo, pull.data.layer.digest)
        end_if_not_offered("blob-delete", response, pull.profile)
        assert response.status_code in (202, 404)
