"""Push: the OCI conformance suite's second workflow (29 checks).

Blobs go up streamed, in one request, in one PUT after a POST, and in two chunks (out of order first, then
retried on a stale URL); a blob is mounted from another repository; a manifest is pushed under four tags
and one manifest without layers.
"""

from __future__ import annotations

import functools
import os
import typing as t

import pytest
import requests

from conformance.checks import after
from conformance.checks import deletion_refused
from conformance.checks import describe
from conformance.checks import is_success
from conformance.checks import not_applicable
from conformance.checks import unsupported
from conformance.client import location
from conformance.client import path_of
from conformance.client import with_query
from conformance.data import DUMMY_DIGEST
from conformance.data import INVALID_MANIFEST_NAME
from conformance.data import OCI_MANIFEST
from conformance.plugin import parse_bool

if t.TYPE_CHECKING:
    from conformance.client import Registry
    from conformance.conftest import Cleanup
    from conformance.data import Blob
    from conformance.data import RunData

pytestmark = pytest.mark.push

TAGS = ("test0", "test1", "test2", "test3")
EMPTY_LAYER_TAG = "emptylayer"
OCTET_STREAM = {"Content-Type": "application/octet-stream"}


def _content_range(start: int, chunk: bytes) -> dict[str, str]:
    # The spec's form: no "bytes " unit, inclusive end.
    return {
        **OCTET_STREAM,
        "Content-Range": f"{start}-{start + len(chunk) - 1}",
        "Content-Length": str(len(chunk)),
    }


class Push:
    """The workflow's state; each request runs once, when the first check needs it."""

    def __init__(
        self, registry: Registry, repo: str, crossmount: str, data: RunData, cleanup: Cleanup
    ) -> None:
        self.registry = registry
        self.repo = repo
        self.crossmount = crossmount
        self.data = data
        self.cleanup = cleanup

    def _session(self, repo: str | None = None, **params: str) -> requests.Response:
        response = self.registry.post(
            f"/v2/{repo or self.repo}/blobs/uploads/", headers={"Content-Length": "0"}, params=params
        )
        self.cleanup.upload(response)
        return response

    def _close(self, session: requests.Response, blob: Blob, body: bytes | None = None) -> requests.Response:
        self.cleanup.blob(self.repo, blob.digest)
        headers = OCTET_STREAM if body is not None else {}
        return self.registry.put(
            with_query(location(session), digest=blob.digest), headers=headers, data=body
        )

    # -- streamed -------------------------------------------------------------------------------------

    @functools.cached_property
    def stream_patch(self) -> requests.Response:
        session = self._session()
        return self.registry.patch(location(session), headers=OCTET_STREAM, data=self.data.blob_a.content)

    @functools.cached_property
    def stream_close(self) -> requests.Response:
        return self._close(self.stream_patch, self.data.blob_a)

    # -- monolithic -----------------------------------------------------------------------------------

    @functools.cached_property
    def single_post(self) -> requests.Response:
        blob = self.data.monolithic
        self.cleanup.blob(self.repo, blob.digest)
        response = self.registry.post(
            f"/v2/{self.repo}/blobs/uploads/",
            params={"digest": blob.digest},
            headers=OCTET_STREAM,
            data=blob.content,
        )
        self.cleanup.upload(response)
        return response

    @functools.cached_property
    def session(self) -> requests.Response:
        return self._session()

    @functools.cached_property
    def config_put(self) -> requests.Response:
        blob = self.data.configs[1]
        return self._close(self.session, blob, blob.content)

    @functools.cached_property
    def layer_put(self) -> requests.Response:
        return self._close(self._session(), self.data.layer, self.data.layer.content)

    # -- chunked --------------------------------------------------------------------------------------

    @functools.cached_property
    def chunk_probe(self) -> requests.Response:
        return self._session()

    @functools.cached_property
    def chunks(self) -> tuple[Blob, bytes, bytes]:
        minimum = self.chunk_probe.headers.get("OCI-Chunk-Min-Length", "0")
        return self.data.chunks(int(minimum) if minimum.isdigit() else 0)

    @functools.cached_property
    def out_of_order(self) -> requests.Response:
        _, first, second = self.chunks
        return self.registry.patch(
            location(self.chunk_probe), headers=_content_range(len(first), second), data=second
        )

    @functools.cached_property
    def chunk_session(self) -> requests.Response:
        after(self.chunks)
        return self._session()

    @functools.cached_property
    def first_chunk(self) -> requests.Response:
        _, first, _ = self.chunks
        return self.registry.patch(location(self.chunk_session), headers=_content_range(0, first), data=first)

    @functools.cached_property
    def retry_chunk(self) -> requests.Response:
        after(self.first_chunk)
        _, first, _ = self.chunks
        return self.registry.patch(location(self.chunk_session), headers=_content_range(0, first), data=first)

    @functools.cached_property
    def stale_status(self) -> requests.Response:
        after(self.retry_chunk)
        return self.registry.get(location(self.chunk_session))

    @functools.cached_property
    def second_chunk(self) -> requests.Response:
        _, first, second = self.chunks
        # Continue where the status check says the upload lives; without one, where the first chunk left it.
        current = self.stale_status if location(self.stale_status) else self.first_chunk
        return self.registry.patch(location(current), headers=_content_range(len(first), second), data=second)

    @functools.cached_property
    def chunk_close(self) -> requests.Response:
        blob, _, _ = self.chunks
        return self._close(self.second_chunk, blob)

    # -- cross-repository mount -----------------------------------------------------------------------

    def _mount(self, repo: str, digest: str, source: str | None) -> requests.Response:
        params = {"mount": digest} if source is None else {"mount": digest, "from": source}
        response = self._session(repo, **params)
        if response.status_code == 201:
            self.cleanup.blob(repo, digest)
        return response

    @functools.cached_property
    def mount_without_from(self) -> requests.Response:
        return self._mount(self.crossmount, DUMMY_DIGEST, None)

    @functools.cached_property
    def mount(self) -> requests.Response:
        after(self.stream_close)
        return self._mount(self.crossmount, self.data.blob_a.digest, self.repo)

    @functools.cached_property
    def mount_missing(self) -> requests.Response:
        return self._mount(self.crossmount, DUMMY_DIGEST, self.repo)

    @functools.cached_property
    def automatic_mount(self) -> requests.Response:
        after(self.stream_close)
        # A repository that has never seen the blob, so a 201 means the registry found it on its own.
        return self._mount(f"{self.crossmount}-auto", self.data.blob_a.digest, None)

    # -- manifests ------------------------------------------------------------------------------------

    @functools.cached_property
    def tagged(self) -> list[requests.Response]:
        after(self.config_put, self.layer_put)
        manifest = self.data.manifests[1]
        self.cleanup.manifest(self.repo, manifest.digest)
        return [self.registry.push_manifest(self.repo, tag, manifest) for tag in TAGS]

    @functools.cached_property
    def empty_layer(self) -> requests.Response:
        after(self.config_put)
        manifest = self.data.empty_layer_manifest
        self.cleanup.manifest(self.repo, manifest.digest)
        return self.registry.push_manifest(self.repo, EMPTY_LAYER_TAG, manifest)


@pytest.fixture(scope="module")
def push(
    registry: Registry, namespace: str, crossmount_namespace: str, run_data: RunData, cleanup: Cleanup
) -> Push:
    return Push(registry, f"{namespace}/push", crossmount_namespace, run_data, cleanup)


def _uploads_prefix(repo: str) -> str:
    return f"/v2/{repo}/blobs/uploads/"


class TestBlobUploadStreamed:
    def test_patch_request_with_blob_in_body_should_yield_202_response(self, push: Push) -> None:
        response = push.stream_patch
        assert response.status_code == 202

    def test_put_request_to_session_url_with_digest_should_yield_201_response(self, push: Push) -> None:
        response = push.stream_close
        assert response.status_code == 201
        assert response.headers.get("Location")


class TestBlobUploadMonolithic:
    def test_get_nonexistent_blob_should_result_in_404_response(self, push: Push) -> None:
        response = push.registry.get(f"/v2/{push.repo}/blobs/{DUMMY_DIGEST}")
        assert response.status_code == 404

    def test_post_request_with_digest_and_blob_should_yield_a_201_or_202(self, push: Push) -> None:
        response = push.single_post
        assert response.status_code in (201, 202)
        assert response.headers.get("Location")

    def test_get_request_to_blob_url_from_prior_request_should_yield_200_or_404_based_on_response_code(
        self, push: Push
    ) -> None:
        posted = push.single_post
        response = push.registry.get(f"/v2/{push.repo}/blobs/{push.data.monolithic.digest}")
        # 201 means the POST stored the blob; 202 means it only opened a session.
        assert response.status_code == (200 if posted.status_code == 201 else 404)

    def test_post_request_should_yield_a_session_id(self, push: Push) -> None:
        response = push.session
        assert response.status_code == 202
        assert response.headers.get("Location")

    def test_put_upload_of_a_blob_should_yield_a_201_response(self, push: Push) -> None:
        response = push.config_put
        assert response.status_code == 201
        assert response.headers.get("Location")

    def test_get_request_to_existing_blob_should_yield_200_response(self, push: Push) -> None:
        after(push.config_put)
        response = push.registry.get(f"/v2/{push.repo}/blobs/{push.data.configs[1].digest}")
        assert response.status_code == 200

    def test_put_upload_of_a_layer_blob_should_yield_a_201_response(self, push: Push) -> None:
        response = push.layer_put
        assert response.status_code == 201
        assert response.headers.get("Location")

    def test_get_request_to_existing_layer_should_yield_200_response(self, push: Push) -> None:
        after(push.layer_put)
        response = push.registry.get(f"/v2/{push.repo}/blobs/{push.data.layer.digest}")
        assert response.status_code == 200


class TestBlobUploadChunked:
    def test_out_of_order_blob_upload_should_return_416(self, push: Push) -> None:
        assert push.chunk_probe.headers.get("Location")
        _, _, second = push.chunks
        response = push.out_of_order
        if response.status_code == 202 and response.headers.get("Range") == f"0-{len(second) - 1}":
            # distribution 2.x: the chunk was appended at offset 0 as if no Content-Range had been sent.
            unsupported("Content-Range on PATCH (an out-of-order chunk was appended at offset 0)")
        assert response.status_code == 416

    def test_patch_request_with_first_chunk_should_return_202(self, push: Push) -> None:
        _, first, _ = push.chunks
        response = push.first_chunk
        assert response.status_code == 202
        assert response.headers.get("Range") == f"0-{len(first) - 1}"

    def test_retry_previous_blob_chunk_should_return_416(self, push: Push) -> None:
        response = push.retry_chunk
        if response.status_code == 404:
            unsupported(f"reusable upload URLs (a stale upload URL answered {describe(response)})")
        assert response.status_code == 416

    def test_get_on_stale_blob_upload_should_return_204_with_a_range_and_location(self, push: Push) -> None:
        _, first, _ = push.chunks
        response = push.stale_status
        if response.status_code == 404:
            unsupported(f"reusable upload URLs (a stale upload URL answered {describe(response)})")
        assert response.status_code == 204
        assert response.headers.get("Location")
        assert response.headers.get("Range") == f"0-{len(first) - 1}"

    def test_patch_request_with_second_chunk_should_return_202(self, push: Push) -> None:
        blob, _, _ = push.chunks
        response = push.second_chunk
        assert response.status_code == 202
        assert response.headers.get("Location")
        # The range covers the whole blob so far, not just this chunk (distribution-spec#581).
        assert response.headers.get("Range") == f"0-{blob.size - 1}"

    def test_put_request_with_digest_should_return_201(self, push: Push) -> None:
        response = push.chunk_close
        assert response.status_code == 201
        assert response.headers.get("Location")


class TestCrossRepositoryBlobMount:
    def test_cross_mounting_of_a_blob_without_the_from_argument_should_yield_session_id(
        self, push: Push
    ) -> None:
        response = push.mount_without_from
        assert response.status_code == 202
        assert response.headers.get("Location")

    def test_post_request_to_mount_another_repositorys_blob_should_return_201_or_202(
        self, push: Push
    ) -> None:
        response = push.mount
        assert response.status_code in (201, 202)
        if response.status_code == 202:
            assert path_of(location(response)).startswith(_uploads_prefix(push.crossmount))

    def test_get_request_to_test_digest_within_cross_mount_namespace_should_return_200(
        self, push: Push
    ) -> None:
        mounted = push.mount
        if mounted.status_code != 201:
            unsupported(f"cross-repository blob mount (mount with from answered {describe(mounted)})")
        digest = push.data.blob_a.digest
        assert path_of(location(mounted)) == f"/v2/{push.crossmount}/blobs/{digest}"
        response = push.registry.get(f"/v2/{push.crossmount}/blobs/{digest}")
        assert response.status_code == 200

    def test_cross_mounting_of_nonexistent_blob_should_yield_session_id(self, push: Push) -> None:
        response = push.mount_missing
        assert response.status_code == 202
        assert path_of(location(response)).startswith(_uploads_prefix(push.crossmount))

    def test_cross_mounting_without_from_and_automatic_content_discovery_enabled_should_return_a_201(
        self, push: Push
    ) -> None:
        expected = _automatic_crossmount()
        if expected is False:
            not_applicable("OCI_AUTOMATIC_CROSSMOUNT is false")
        response = push.automatic_mount
        if expected is None and response.status_code == 202:
            not_applicable("the registry does not mount without 'from' (OCI_AUTOMATIC_CROSSMOUNT unset)")
        assert response.status_code == 201
        assert path_of(location(response)) == f"/v2/{push.crossmount}-auto/blobs/{push.data.blob_a.digest}"

    def test_cross_mounting_without_from_and_automatic_content_discovery_disabled_should_return_a_202(
        self, push: Push
    ) -> None:
        expected = _automatic_crossmount()
        if expected is True:
            not_applicable("OCI_AUTOMATIC_CROSSMOUNT is true")
        response = push.automatic_mount
        if expected is None and response.status_code == 201:
            not_applicable("the registry mounts without 'from' (OCI_AUTOMATIC_CROSSMOUNT unset)")
        assert response.status_code == 202
        assert path_of(location(response)).startswith(_uploads_prefix(f"{push.crossmount}-auto"))


def _automatic_crossmount() -> bool | None:
    """``OCI_AUTOMATIC_CROSSMOUNT``: what the user says the registry does; ``None`` lets either pass."""
    value = os.environ.get("OCI_AUTOMATIC_CROSSMOUNT")
    return None if value is None else bool(parse_bool(value))


class TestManifestUpload:
    def test_get_nonexistent_manifest_should_return_404(self, push: Push) -> None:
        response = push.registry.get(
            f"/v2/{push.repo}/manifests/{INVALID_MANIFEST_NAME}", headers={"Accept": OCI_MANIFEST}
        )
        assert response.status_code == 404

    def test_put_should_accept_a_manifest_upload(self, push: Push) -> None:
        for response in push.tagged:
            assert response.status_code == 201
            assert response.headers.get("Location")

    def test_registry_should_accept_a_manifest_upload_with_no_layers(self, push: Push) -> None:
        response = push.empty_layer
        if response.status_code != 201:
            unsupported(f"manifests without layers (PUT answered {describe(response)})")
        assert response.headers.get("Location")

    def test_get_request_to_manifest_url_digest_should_yield_200_response(self, push: Push) -> None:
        after(push.tagged)
        response = push.registry.get(
            f"/v2/{push.repo}/manifests/{push.data.manifests[1].digest}", headers={"Accept": OCI_MANIFEST}
        )
        assert response.status_code == 200


class TestTeardown:
    def test_delete_manifest_created_in_tests(self, push: Push) -> None:
        manifests = [push.data.manifests[1]]
        after(push.tagged)
        if push.empty_layer.status_code == 201:
            manifests.append(push.data.empty_layer_manifest)
        for manifest in manifests:
            response = push.registry.delete_manifest(push.repo, manifest.digest)
            if deletion_refused(response):
                unsupported(f"manifest deletion (DELETE answered {describe(response)})")
            assert is_success(response)

    def test_delete_config_blob_created_in_tests(self, push: Push) -> None:
        after(push.config_put)
        response = push.registry.delete_blob(push.repo, push.data.configs[1].digest)
        if deletion_refused(response):
            unsupported(f"blob deletion (DELETE answered {describe(response)})")
        assert is_success(response) or response.status_code == 404

    def test_delete_layer_blob_created_in_setup(self, push: Push) -> None:
        after(push.layer_put)
        response = push.registry.delete_blob(push.repo, push.data.layer.digest)
        if deletion_refused(response):
            unsupported(f"blob deletion (DELETE answered {describe(response)})")
        assert is_success(response) or response.status_code == 404
