"""Push: the OCI conformance suite's second workflow (its 29 checks), and its later additions.

Blobs go up streamed, in one request, in one PUT after a POST, and in two chunks (out of order first, then
retried on a stale URL); a blob is mounted from another repository; a manifest is pushed under four tags
and one manifest without layers. The additions: three chunks of ``OCI-Chunk-Min-Length`` with requests
out of order at every step (the final chunk in the closing PUT among them), sha512 blobs, manifests and
indexes, the empty blob and the empty descriptor. Every upload that succeeds is read back.
"""

from __future__ import annotations

import functools
import os
import typing as t

import pytest
import requests

from conformance.assertions import after
from conformance.assertions import assert_digest_header
from conformance.assertions import assert_digest_if_present
from conformance.assertions import assert_size_header
from conformance.assertions import not_applicable
from conformance.client import location
from conformance.client import path_of
from conformance.client import with_query
from conformance.data import DUMMY_DIGEST
from conformance.data import EMPTY_JSON
from conformance.data import INVALID_MANIFEST_NAME
from conformance.data import OCI_MANIFEST
from conformance.data import image_manifest
from conformance.plugin import parse_bool
from conformance.verdicts import end_if_not_offered
from conformance.verdicts import profile_of

if t.TYPE_CHECKING:
    from conformance.client import RegistryClient
    from conformance.conftest import Cleanup
    from conformance.data import Blob
    from conformance.data import Manifest
    from conformance.data import RunData

pytestmark = pytest.mark.push

TAGS = ("test0", "test1", "test2", "test3")
EMPTY_LAYER_TAG = "emptylayer"
EMPTY_ARTIFACT_TAG = "emptyartifact"
EMPTY_ARTIFACT_TYPE = "application/vnd.pax.conformance.empty"
OCTET_STREAM = {"Content-Type": "application/octet-stream"}


def _content_range(start: int, chunk: bytes) -> dict[str, str]:
    # The spec's form: no "bytes " unit, inclusive end, no total.
    return {
        **OCTET_STREAM,
        "Content-Range": f"{start}-{start + len(chunk) - 1}",
        "Content-Length": str(len(chunk)),
    }


def _range(size: int) -> str:
    """The ``Range`` of an upload holding ``size`` bytes."""
    return f"0-{size - 1}"


#: What an upload holding no byte may answer: distribution writes ``0-0``, the arithmetic gives ``0--1``.
EMPTY_RANGES = ("0-0", "0--1")


class Push:
    """The workflow's state; each request runs once, when the first check needs it."""

    def __init__(
        self,
        registry: RegistryClient,
        repo: str,
        crossmount: str,
        data: RunData,
        cleanup: Cleanup,
        profile: str,
    ) -> None:
        self.registry = registry
        self.repo = repo
        self.crossmount = crossmount
        self.data = data
        self.cleanup = cleanup
        self.profile = profile

    def open_session(self, repo: str | None = None, **params: str) -> requests.Response:
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

    def push_blob(self, blob: Blob, repo: str | None = None) -> requests.Response:
        self.cleanup.blob(repo or self.repo, blob.digest)
        return self.registry.push_blob(repo or self.repo, blob)

    def push_manifest(self, reference: str, manifest: Manifest) -> requests.Response:
        self.cleanup.manifest(self.repo, manifest.digest)
        return self.registry.push_manifest(self.repo, reference, manifest)

    def get_blob(self, digest: str, method: str = "GET", repo: str | None = None) -> requests.Response:
        return self.registry.request(method, f"/v2/{repo or self.repo}/blobs/{digest}")

    def get_manifest(self, reference: str, method: str = "GET") -> requests.Response:
        return self.registry.request(
            method,
            f"/v2/{self.repo}/manifests/{reference}",
            headers={"Accept": f"{OCI_MANIFEST}, application/vnd.oci.image.index.v1+json"},
        )

    def assert_stored(self, created: requests.Response, blob: Blob, repo: str | None = None) -> None:
        """A 201 that completes an upload: its ``Location`` serves the blob, byte for byte."""
        assert created.status_code == 201
        assert created.headers.get("Location"), "201 without Location"
        assert_digest_if_present(created, blob.content)
        response = self.registry.get(location(created))
        assert response.status_code == 200, f"GET of the Location answered {response.status_code}"
        assert response.content == blob.content, "the Location does not serve the bytes that were pushed"

    # -- streamed -------------------------------------------------------------------------------------

    @functools.cached_property
    def stream_patch(self) -> requests.Response:
        session = self.open_session()
        return self.registry.patch(location(session), headers=OCTET_STREAM, data=self.data.blob_a.content)

    @functools.cached_property
    def stream_close(self) -> requests.Response:
        return self._close(self.stream_patch, self.data.blob_a)

    # -- monolithic -----------------------------------------------------------------------------------

    def _single_post(self, blob: Blob) -> requests.Response:
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
    def single_post(self) -> requests.Response:
        return self._single_post(self.data.monolithic)

    @functools.cached_property
    def single_post_stored(self) -> requests.Response:
        # Its own blob: the OCI suite's check wants the first single-POST blob absent after a 202.
        return self._single_post(self.data.blob("single-post", 512))

    @functools.cached_property
    def session(self) -> requests.Response:
        return self.open_session()

    @functools.cached_property
    def config_put(self) -> requests.Response:
        blob = self.data.configs[1]
        return self._close(self.session, blob, blob.content)

    @functools.cached_property
    def layer_put(self) -> requests.Response:
        return self._close(self.open_session(), self.data.layer, self.data.layer.content)

    # -- chunked, as the OCI suite's v1.1 release does it -----------------------------------------------

    @functools.cached_property
    def chunk_probe(self) -> requests.Response:
        return self.open_session()

    @functools.cached_property
    def min_length(self) -> int:
        value = self.chunk_probe.headers.get("OCI-Chunk-Min-Length", "0")
        return int(value) if value.isdigit() else 0

    @functools.cached_property
    def chunks(self) -> tuple[Blob, bytes, bytes]:
        return self.data.chunks(self.min_length)

    @functools.cached_property
    def out_of_order(self) -> requests.Response:
        _, first, second = self.chunks
        return self.registry.patch(
            location(self.chunk_probe), headers=_content_range(len(first), second), data=second
        )

    @functools.cached_property
    def chunk_session(self) -> requests.Response:
        after(self.chunks)
        return self.open_session()

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

    # -- chunked, as the OCI suite's redesign does it: three chunks, every request out of order ---------

    @functools.cached_property
    def three(self) -> tuple[Blob, tuple[bytes, bytes, bytes]]:
        return self.data.three_chunks("three-chunks", self.min_length)

    @functools.cached_property
    def edge(self) -> Upload:
        after(self.three)
        return Upload(self, self.open_session())

    # -- cross-repository mount -----------------------------------------------------------------------

    def _mount(self, repo: str, digest: str, source: str | None) -> requests.Response:
        params = {"mount": digest} if source is None else {"mount": digest, "from": source}
        response = self.open_session(repo, **params)
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

    def complete_session(self, session: requests.Response, blob: Blob, repo: str) -> None:
        """A mount answered with a session: the client uploads instead, and that must work."""
        assert path_of(location(session)).startswith(_uploads_prefix(repo))
        self.cleanup.blob(repo, blob.digest)
        created = self.registry.put(
            with_query(location(session), digest=blob.digest), headers=OCTET_STREAM, data=blob.content
        )
        self.assert_stored(created, blob, repo)

    # -- manifests ------------------------------------------------------------------------------------

    @functools.cached_property
    def tagged(self) -> list[requests.Response]:
        after(self.config_put, self.layer_put)
        return [self.push_manifest(tag, self.data.manifests[1]) for tag in TAGS]

    @functools.cached_property
    def empty_layer(self) -> requests.Response:
        after(self.config_put)
        return self.push_manifest(EMPTY_LAYER_TAG, self.data.empty_layer_manifest)

    # -- sha512 ---------------------------------------------------------------------------------------

    @functools.cached_property
    def sha512_blobs(self) -> list[requests.Response]:
        return [self.push_blob(blob) for blob in self.data.sha512.blobs]

    @functools.cached_property
    def sha512_manifest(self) -> requests.Response:
        after(self.sha512_blobs)
        manifest = self.data.sha512.manifest
        return self.push_manifest(manifest.digest, manifest)

    @functools.cached_property
    def sha512_index(self) -> requests.Response:
        after(self.sha512_manifest)
        index = self.data.sha512.index
        return self.push_manifest(index.digest, index)

    # -- the empty blob and the empty descriptor ------------------------------------------------------

    @functools.cached_property
    def empty_artifact(self) -> Manifest:
        return image_manifest(
            EMPTY_JSON,
            [EMPTY_JSON],
            name="empty-artifact",
            artifact_type=EMPTY_ARTIFACT_TYPE,
            annotations={"io.pax.conformance.run": self.data.run_id},
        )


class Upload:
    """One chunked upload that answers each chunk in order only after one out of order.

    Each step is sent to the latest ``Location`` the registry gave (after a 416, the one its status
    answer gives), so a registry whose upload URLs change on every request is judged fairly.
    """

    def __init__(self, push: Push, session: requests.Response) -> None:
        self.push = push
        self.session = session
        self.blob, (self.c1, self.c2, self.c3) = push.three
        self.size = len(self.c1)
        self.latest = session

    def _follow(self, response: requests.Response) -> requests.Response:
        if location(response) and response.status_code in (202, 204):
            self.latest = response
        return response

    def patch(self, start: int, chunk: bytes) -> requests.Response:
        url = location(self.latest)
        return self._follow(self.push.registry.patch(url, headers=_content_range(start, chunk), data=chunk))

    def status(self) -> requests.Response:
        return self._follow(self.push.registry.get(location(self.latest)))

    def put(self, start: int, chunk: bytes) -> requests.Response:
        self.push.cleanup.blob(self.push.repo, self.blob.digest)
        url = with_query(location(self.latest), digest=self.blob.digest)
        return self.push.registry.put(url, headers=_content_range(start, chunk), data=chunk)

    @functools.cached_property
    def status_empty(self) -> requests.Response:
        return self.status()

    @functools.cached_property
    def early(self) -> tuple[requests.Response, requests.Response]:
        after(self.status_empty)
        return self.patch(self.size, self.c2), self.status()

    @functools.cached_property
    def first(self) -> requests.Response:
        after(self.early)
        return self.patch(0, self.c1)

    @functools.cached_property
    def skip(self) -> tuple[requests.Response, requests.Response]:
        after(self.first)
        return self.patch(2 * self.size, self.c3), self.status()

    @functools.cached_property
    def resend(self) -> tuple[requests.Response, requests.Response]:
        after(self.skip)
        return self.patch(0, self.c1), self.status()

    @functools.cached_property
    def second(self) -> requests.Response:
        after(self.resend)
        return self.patch(self.size, self.c2)

    @functools.cached_property
    def put_out_of_order(self) -> tuple[requests.Response, requests.Response]:
        after(self.second)
        # The final chunk, five bytes past where the upload is.
        return self.put(2 * self.size + 5, self.c3), self.status()

    @functools.cached_property
    def put_final(self) -> requests.Response:
        after(self.put_out_of_order)
        return self.put(2 * self.size, self.c3)


@pytest.fixture(scope="module")
def push(
    registry: RegistryClient,
    namespace: str,
    crossmount_namespace: str,
    run_data: RunData,
    cleanup: Cleanup,
    pytestconfig: pytest.Config,
) -> Push:
    return Push(
        registry, f"{namespace}/push", crossmount_namespace, run_data, cleanup, profile_of(pytestconfig)
    )


def _uploads_prefix(repo: str) -> str:
    return f"/v2/{repo}/blobs/uploads/"


def assert_upload_status(response: requests.Response, expected_range: str | tuple[str, ...]) -> None:
    """``GET`` on an upload: 204 with a ``Location`` and the ``Range`` accepted so far."""
    assert response.status_code == 204
    assert response.headers.get("Location"), "204 without Location"
    wanted = (expected_range,) if isinstance(expected_range, str) else expected_range
    assert response.headers.get("Range") in wanted


def assert_chunk_accepted(response: requests.Response, size: int) -> None:
    """A chunk in order: 202, the next ``Location``, and the ``Range`` of the whole upload so far."""
    assert response.status_code == 202
    assert response.headers.get("Location"), "202 without Location"
    assert response.headers.get("Range") == _range(size)


@pytest.mark.spec("distribution-spec 1.1 §Pushing a blob in chunks (a streamed PATCH)")
class TestBlobUploadStreamed:
    def test_patch_request_with_blob_in_body_should_yield_202_response(self, push: Push) -> None:
        assert_chunk_accepted(push.stream_patch, push.data.blob_a.size)

    def test_put_request_to_session_url_with_digest_should_yield_201_response(self, push: Push) -> None:
        push.assert_stored(push.stream_close, push.data.blob_a)


@pytest.mark.spec("distribution-spec 1.1 §Pushing a blob monolithically, §Single POST")
class TestBlobUploadMonolithic:
    def test_get_nonexistent_blob_should_result_in_404_response(self, push: Push) -> None:
        response = push.get_blob(DUMMY_DIGEST)
        assert response.status_code == 404

    def test_post_request_with_digest_and_blob_should_yield_a_201_or_202(self, push: Push) -> None:
        response = push.single_post
        assert response.status_code in (201, 202)
        assert response.headers.get("Location")

    def test_get_request_to_blob_url_from_prior_request_should_yield_200_or_404_based_on_response_code(
        self, push: Push
    ) -> None:
        posted = push.single_post
        blob = push.data.monolithic
        response = push.get_blob(blob.digest)
        # 201 means the POST stored the blob; 202 means it only opened a session.
        assert response.status_code == (200 if posted.status_code == 201 else 404)
        if posted.status_code == 201:
            assert response.content == blob.content

    def test_single_post_upload_stores_the_blob(self, push: Push) -> None:
        posted = push.single_post_stored
        blob = push.data.blob("single-post", 512)
        if posted.status_code == 202 and posted.headers.get("Location"):
            # A registry without single-POST uploads must let the client finish with a PUT.
            created = push.registry.put(
                with_query(location(posted), digest=blob.digest), headers=OCTET_STREAM, data=blob.content
            )
            push.assert_stored(created, blob)
        end_if_not_offered("single-post", posted, push.profile)
        push.assert_stored(posted, blob)

    def test_post_request_should_yield_a_session_id(self, push: Push) -> None:
        response = push.session
        assert response.status_code == 202
        assert response.headers.get("Location")

    def test_put_upload_of_a_blob_should_yield_a_201_response(self, push: Push) -> None:
        response = push.config_put
        assert response.status_code == 201
        assert response.headers.get("Location")

    def test_get_request_to_existing_blob_should_yield_200_response(self, push: Push) -> None:
        push.assert_stored(push.config_put, push.data.configs[1])

    def test_put_upload_of_a_layer_blob_should_yield_a_201_response(self, push: Push) -> None:
        response = push.layer_put
        assert response.status_code == 201
        assert response.headers.get("Location")

    def test_get_request_to_existing_layer_should_yield_200_response(self, push: Push) -> None:
        push.assert_stored(push.layer_put, push.data.layer)


@pytest.mark.spec("distribution-spec 1.1 §Pushing a blob in chunks")
class TestBlobUploadChunked:
    def test_out_of_order_blob_upload_should_return_416(self, push: Push) -> None:
        assert push.chunk_probe.headers.get("Location")
        response = push.out_of_order
        assert response.status_code == 416

    def test_patch_request_with_first_chunk_should_return_202(self, push: Push) -> None:
        _, first, _ = push.chunks
        assert_chunk_accepted(push.first_chunk, len(first))

    def test_retry_previous_blob_chunk_should_return_416(self, push: Push) -> None:
        response = push.retry_chunk
        assert response.status_code == 416

    def test_get_on_stale_blob_upload_should_return_204_with_a_range_and_location(self, push: Push) -> None:
        _, first, _ = push.chunks
        assert_upload_status(push.stale_status, _range(len(first)))

    def test_patch_request_with_second_chunk_should_return_202(self, push: Push) -> None:
        blob, _, _ = push.chunks
        # The range covers the whole blob so far, not just this chunk (distribution-spec#581).
        assert_chunk_accepted(push.second_chunk, blob.size)

    def test_put_request_with_digest_should_return_201(self, push: Push) -> None:
        blob, _, _ = push.chunks
        push.assert_stored(push.chunk_close, blob)


@pytest.mark.spec("distribution-spec 1.1 §Pushing a blob in chunks (416 for a chunk out of order)")
class TestBlobUploadChunkedOutOfOrder:
    """Three chunks; before each one in order, one out of order that must get 416 and leave the upload
    as it was."""

    def test_minimum_chunk_length_is_a_number(self, push: Push) -> None:
        response = push.chunk_probe
        assert response.status_code == 202
        value = response.headers.get("OCI-Chunk-Min-Length")
        assert value is None or value.isdigit(), f"OCI-Chunk-Min-Length: {value}"

    def test_get_on_an_upload_without_data_should_return_204_with_an_empty_range(self, push: Push) -> None:
        assert push.edge.session.status_code == 202
        assert_upload_status(push.edge.status_empty, EMPTY_RANGES)

    def test_chunk_before_any_data_out_of_order_should_return_416(self, push: Push) -> None:
        rejected, status = push.edge.early
        assert rejected.status_code == 416
        assert_upload_status(status, EMPTY_RANGES)

    def test_first_chunk_should_return_202(self, push: Push) -> None:
        assert_chunk_accepted(push.edge.first, push.edge.size)

    def test_chunk_skipping_ahead_should_return_416(self, push: Push) -> None:
        rejected, status = push.edge.skip
        assert rejected.status_code == 416
        assert_upload_status(status, _range(push.edge.size))

    def test_chunk_sent_twice_should_return_416(self, push: Push) -> None:
        rejected, status = push.edge.resend
        assert rejected.status_code == 416
        assert_upload_status(status, _range(push.edge.size))

    def test_second_chunk_should_return_202_with_the_range_of_both(self, push: Push) -> None:
        assert_chunk_accepted(push.edge.second, 2 * push.edge.size)

    def test_final_chunk_out_of_order_in_put_should_return_416(self, push: Push) -> None:
        rejected, status = push.edge.put_out_of_order
        assert rejected.status_code == 416
        assert_upload_status(status, _range(2 * push.edge.size))

    def test_final_chunk_in_put_should_return_201(self, push: Push) -> None:
        push.assert_stored(push.edge.put_final, push.edge.blob)


@pytest.mark.spec("distribution-spec 1.1 §Mounting a blob from another repository")
class TestCrossRepositoryBlobMount:
    def test_cross_mounting_of_a_blob_without_the_from_argument_should_yield_session_id(
        self, push: Push
    ) -> None:
        response = push.mount_without_from
        assert response.status_code == 202
        assert path_of(location(response)).startswith(_uploads_prefix(push.crossmount))

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
        blob = push.data.blob_a
        if mounted.status_code == 202:
            push.complete_session(mounted, blob, push.crossmount)
        end_if_not_offered("mount", mounted, push.profile)
        assert mounted.status_code == 201
        assert path_of(location(mounted)) == f"/v2/{push.crossmount}/blobs/{blob.digest}"
        push.assert_stored(mounted, blob, push.crossmount)

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
        target = f"{push.crossmount}-auto"
        blob = push.data.blob_a
        if expected is None:
            if response.status_code == 202:
                push.complete_session(response, blob, target)
            end_if_not_offered("automatic-mount", response, push.profile)
        assert response.status_code == 201
        assert path_of(location(response)) == f"/v2/{target}/blobs/{blob.digest}"
        push.assert_stored(response, blob, target)

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


@pytest.mark.spec("distribution-spec 1.1 §Pushing Manifests")
class TestManifestUpload:
    def test_get_nonexistent_manifest_should_return_404(self, push: Push) -> None:
        response = push.get_manifest(INVALID_MANIFEST_NAME)
        assert response.status_code == 404

    def test_put_should_accept_a_manifest_upload(self, push: Push) -> None:
        manifest = push.data.manifests[1]
        for response in push.tagged:
            assert response.status_code == 201
            assert response.headers.get("Location")
        assert_digest_header(push.tagged[0], manifest.content, push.profile, exactly=manifest.digest)

    def test_registry_should_accept_a_manifest_upload_with_no_layers(self, push: Push) -> None:
        response = push.empty_layer
        assert response.status_code == 201
        assert response.headers.get("Location")

    def test_get_request_to_manifest_url_digest_should_yield_200_response(self, push: Push) -> None:
        after(push.tagged)
        manifest = push.data.manifests[1]
        response = push.get_manifest(manifest.digest)
        assert response.status_code == 200
        assert response.headers.get("Content-Type") == manifest.media_type
        assert response.content == manifest.content


@pytest.mark.spec("image-spec 1.1 §Digests (SHA-512); distribution-spec main §Pushing blobs")
class TestSha512:
    """sha512 everywhere a digest goes; registries may refuse it (400), but not half-support it."""

    def test_sha512_blob_push_and_pull(self, push: Push) -> None:
        for response, blob in zip(push.sha512_blobs, push.data.sha512.blobs, strict=True):
            end_if_not_offered("sha512", response, push.profile)
            push.assert_stored(response, blob)
            head = push.get_blob(blob.digest, "HEAD")
            assert head.status_code == 200
            assert_size_header(head, blob.size, push.profile)

    def test_sha512_chunked_upload(self, push: Push) -> None:
        blob = push.data.blob("sha512-chunked", 600, "sha512")
        session = push.open_session()
        assert session.status_code == 202
        first, rest = blob.content[:300], blob.content[300:]
        patched = push.registry.patch(location(session), headers=_content_range(0, first), data=first)
        assert_chunk_accepted(patched, len(first))
        push.cleanup.blob(push.repo, blob.digest)
        created = push.registry.put(
            with_query(location(patched), digest=blob.digest), headers=_content_range(300, rest), data=rest
        )
        end_if_not_offered("sha512", created, push.profile)
        push.assert_stored(created, blob)

    def test_sha512_manifest_by_digest(self, push: Push) -> None:
        for response in push.sha512_blobs:
            end_if_not_offered("sha512", response, push.profile)
        manifest = push.data.sha512.manifest
        created = push.sha512_manifest
        end_if_not_offered("sha512", created, push.profile)
        assert created.status_code == 201
        assert created.headers.get("Location")
        for method in ("GET", "HEAD"):
            response = push.get_manifest(manifest.digest, method)
            assert response.status_code == 200
            assert response.headers.get("Content-Type") == manifest.media_type
            if method == "GET":
                assert response.content == manifest.content
        assert_digest_header(created, manifest.content, push.profile, exactly=manifest.digest)

    def test_sha512_index_by_digest(self, push: Push) -> None:
        end_if_not_offered("sha512", push.sha512_manifest, push.profile)
        index = push.data.sha512.index
        created = push.sha512_index
        end_if_not_offered("sha512", created, push.profile)
        assert created.status_code == 201
        response = push.get_manifest(index.digest)
        assert response.status_code == 200
        assert response.headers.get("Content-Type") == index.media_type
        assert response.content == index.content


@pytest.mark.spec("distribution-spec 1.1 §Pushing blobs; image-spec 1.1 §Guidance for an Empty Descriptor")
class TestEmptyContent:
    def test_empty_json_blob_push_and_pull(self, push: Push) -> None:
        blob = EMPTY_JSON
        push.assert_stored(push.push_blob(blob), blob)
        head = push.get_blob(blob.digest, "HEAD")
        assert head.status_code == 200
        assert_size_header(head, blob.size, push.profile)

    def test_zero_byte_blob_push_and_pull(self, push: Push) -> None:
        blob = push.data.zero
        push.assert_stored(push.push_blob(blob), blob)
        head = push.get_blob(blob.digest, "HEAD")
        assert head.status_code == 200
        assert_size_header(head, 0, push.profile)

    def test_artifact_with_the_empty_descriptor_as_config_and_layer(self, push: Push) -> None:
        push.push_blob(EMPTY_JSON)
        manifest = push.empty_artifact
        created = push.push_manifest(EMPTY_ARTIFACT_TAG, manifest)
        assert created.status_code == 201
        assert created.headers.get("Location")
        response = push.get_manifest(EMPTY_ARTIFACT_TAG)
        assert response.status_code == 200
        assert response.content == manifest.content


@pytest.mark.spec("distribution-spec 1.1 §Deleting Manifests, §Deleting Blobs (the push workflow's teardown)")
class TestTeardown:
    def test_delete_manifest_created_in_tests(self, push: Push) -> None:
        manifests = [push.data.manifests[1]]
        after(push.tagged)
        if push.empty_layer.status_code == 201:
            manifests.append(push.data.empty_layer_manifest)
        for manifest in manifests:
            response = push.registry.delete_manifest(push.repo, manifest.digest)
            end_if_not_offered("manifest-delete", response, push.profile)
            assert response.status_code == 202

    def test_delete_config_blob_created_in_tests(self, push: Push) -> None:
        after(push.config_put)
        response = push.registry.delete_blob(push.repo, push.data.configs[1].digest)
        end_if_not_offered("blob-delete", response, push.profile)
        assert response.status_code in (202, 404)

    def test_delete_layer_blob_created_in_setup(self, push: Push) -> None:
        after(push.layer_put)
        response = push.registry.delete_blob(push.repo, push.data.layer.digest)
        end_if_not_offered("blob-delete", response, push.profile)
        assert response.status_code in (202, 404)
