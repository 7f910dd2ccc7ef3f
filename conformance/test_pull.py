"""Pull: the OCI conformance suite's first workflow (24 checks).

Setup pushes two configs, a layer and two manifests (one by tag, one by digest); the checks then read
them back and ask for things that do not exist.
"""

from __future__ import annotations

import functools
import typing as t

import pytest
import requests

from conformance.checks import after
from conformance.checks import deletion_refused
from conformance.checks import describe
from conformance.checks import is_success
from conformance.checks import not_applicable
from conformance.checks import unsupported
from conformance.client import error_codes
from conformance.data import DUMMY_DIGEST
from conformance.data import ERROR_CODES
from conformance.data import INVALID_MANIFEST_NAME
from conformance.data import OCI_MANIFEST

if t.TYPE_CHECKING:
    from conformance.client import Registry
    from conformance.conftest import Cleanup
    from conformance.data import RunData

pytestmark = pytest.mark.pull

TAG = "tagtest0"


class Pull:
    """The workflow's state; each request runs once, when the first check needs it."""

    def __init__(self, registry: Registry, repo: str, data: RunData, cleanup: Cleanup) -> None:
        self.registry = registry
        self.repo = repo
        self.data = data
        self.cleanup = cleanup

    def _push_blob(self, index: int | None) -> requests.Response:
        blob = self.data.layer if index is None else self.data.configs[index]
        self.cleanup.blob(self.repo, blob.digest)
        return self.registry.push_blob(self.repo, blob)

    @functools.cached_property
    def config0(self) -> requests.Response:
        return self._push_blob(0)

    @functools.cached_property
    def config1(self) -> requests.Response:
        return self._push_blob(1)

    @functools.cached_property
    def layer(self) -> requests.Response:
        return self._push_blob(None)

    @functools.cached_property
    def manifest_by_tag(self) -> requests.Response:
        after(self.config0, self.layer)
        manifest = self.data.manifests[0]
        self.cleanup.manifest(self.repo, manifest.digest)
        return self.registry.push_manifest(self.repo, TAG, manifest)

    @functools.cached_property
    def manifest_by_digest(self) -> requests.Response:
        after(self.config1, self.layer)
        manifest = self.data.manifests[1]
        self.cleanup.manifest(self.repo, manifest.digest)
        return self.registry.push_manifest(self.repo, manifest.digest, manifest)

    def ready(self) -> None:
        after(self.manifest_by_tag, self.manifest_by_digest)

    def get_manifest(self, method: str, reference: str) -> requests.Response:
        self.ready()
        return self.registry.request(
            method, f"/v2/{self.repo}/manifests/{reference}", headers={"Accept": OCI_MANIFEST}
        )

    def get_blob(self, method: str, digest: str) -> requests.Response:
        self.ready()
        return self.registry.request(method, f"/v2/{self.repo}/blobs/{digest}")


@pytest.fixture(scope="module")
def pull(registry: Registry, namespace: str, run_data: RunData, cleanup: Cleanup) -> Pull:
    return Pull(registry, f"{namespace}/pull", run_data, cleanup)


class TestSetup:
    @pytest.mark.parametrize("blob", ["config0", "config1"])
    def test_populate_registry_with_test_blob(self, pull: Pull, blob: str) -> None:
        response = t.cast(requests.Response, getattr(pull, blob))
        assert is_success(response)

    def test_populate_registry_with_test_layer(self, pull: Pull) -> None:
        response = pull.layer
        assert is_success(response)

    @pytest.mark.parametrize("reference", ["tag", "digest"])
    def test_populate_registry_with_test_manifest(self, pull: Pull, reference: str) -> None:
        response = pull.manifest_by_tag if reference == "tag" else pull.manifest_by_digest
        assert is_success(response)

    def test_get_tag_name_from_environment(self) -> None:
        not_applicable("the suite pushes its own content; it does not pull a tag named by OCI_TAG_NAME")


class TestPullBlobs:
    def test_head_request_to_nonexistent_blob_should_result_in_404_response(self, pull: Pull) -> None:
        response = pull.get_blob("HEAD", DUMMY_DIGEST)
        assert response.status_code == 404

    def test_head_request_to_existing_blob_should_yield_200(self, pull: Pull) -> None:
        digest = pull.data.configs[0].digest
        response = pull.get_blob("HEAD", digest)
        assert response.status_code == 200
        assert response.headers.get("Docker-Content-Digest", digest) == digest

    def test_get_nonexistent_blob_should_result_in_404_response(self, pull: Pull) -> None:
        response = pull.get_blob("GET", DUMMY_DIGEST)
        assert response.status_code == 404

    def test_get_request_to_existing_blob_url_should_yield_200(self, pull: Pull) -> None:
        response = pull.get_blob("GET", pull.data.configs[0].digest)
        assert response.status_code == 200


class TestPullManifests:
    def test_head_request_to_nonexistent_manifest_should_return_404(self, pull: Pull) -> None:
        response = pull.get_manifest("HEAD", INVALID_MANIFEST_NAME)
        assert response.status_code == 404

    @pytest.mark.parametrize("index", [0, 1], ids=["manifest0", "manifest1"])
    def test_head_request_to_manifest_path_digest_should_yield_200_response(
        self, pull: Pull, index: int
    ) -> None:
        digest = pull.data.manifests[index].digest
        response = pull.get_manifest("HEAD", digest)
        assert response.status_code == 200
        assert response.headers.get("Docker-Content-Digest", digest) == digest

    def test_head_request_to_manifest_path_tag_should_yield_200_response(self, pull: Pull) -> None:
        digest = pull.data.manifests[0].digest
        response = pull.get_manifest("HEAD", TAG)
        assert response.status_code == 200
        assert response.headers.get("Docker-Content-Digest", digest) == digest

    def test_get_nonexistent_manifest_should_return_404(self, pull: Pull) -> None:
        response = pull.get_manifest("GET", INVALID_MANIFEST_NAME)
        assert response.status_code == 404

    @pytest.mark.parametrize("index", [0, 1], ids=["manifest0", "manifest1"])
    def test_get_request_to_manifest_path_digest_should_yield_200_response(
        self, pull: Pull, index: int
    ) -> None:
        response = pull.get_manifest("GET", pull.data.manifests[index].digest)
        assert response.status_code == 200

    def test_get_request_to_manifest_path_tag_should_yield_200_response(self, pull: Pull) -> None:
        response = pull.get_manifest("GET", TAG)
        assert response.status_code == 200


class TestErrorCodes:
    def test_400_response_body_should_contain_oci_conforming_json_message(self, pull: Pull) -> None:
        response = pull.get_manifest("GET", "sha256:totallywrong")
        assert response.status_code in (400, 404)
        if response.status_code == 400:
            codes = error_codes(response)
            assert codes, "a 400 must carry an {'errors': [...]} body"
            assert codes[0] in ERROR_CODES


class TestTeardown:
    @pytest.mark.parametrize("index", [0, 1], ids=["manifest0", "manifest1"])
    def test_delete_manifest_created_in_setup(self, pull: Pull, index: int) -> None:
        pull.ready()
        response = pull.registry.delete_manifest(pull.repo, pull.data.manifests[index].digest)
        if deletion_refused(response):
            unsupported(f"manifest deletion (DELETE answered {describe(response)})")
        assert is_success(response)

    @pytest.mark.parametrize("index", [0, 1], ids=["config0", "config1"])
    def test_delete_config_blob_created_in_setup(self, pull: Pull, index: int) -> None:
        pull.ready()
        response = pull.registry.delete_blob(pull.repo, pull.data.configs[index].digest)
        if deletion_refused(response):
            unsupported(f"blob deletion (DELETE answered {describe(response)})")
        assert is_success(response) or response.status_code == 404

    def test_delete_layer_blob_created_in_setup(self, pull: Pull) -> None:
        pull.ready()
        response = pull.registry.delete_blob(pull.repo, pull.data.layer.digest)
        if deletion_refused(response):
            unsupported(f"blob deletion (DELETE answered {describe(response)})")
        assert is_success(response) or response.status_code == 404
