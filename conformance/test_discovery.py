"""Content Discovery: the OCI conformance suite's third workflow (16 checks).

Tags are listed whole, by page (``n``) and from a starting point (``last``); referrers are listed for a
manifest with five artifacts, filtered by artifact type, and for a manifest that was never pushed.
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
from conformance.data import ARTIFACT_TYPE_A
from conformance.data import DUMMY_DIGEST
from conformance.data import EMPTY_JSON
from conformance.data import OCI_INDEX

if t.TYPE_CHECKING:
    from conformance.client import Registry
    from conformance.conftest import Cleanup
    from conformance.data import Blob
    from conformance.data import Manifest
    from conformance.data import RunData

pytestmark = pytest.mark.discovery

#: Upper-case twins make the sort order observable (distribution-spec#583).
TAGS = ("test0", "test1", "test2", "test3", "TEST0", "TEST1", "TEST2", "TEST3")
SUBJECT_TAG = "tagtest0"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def tags_of(response: requests.Response) -> list[str]:
    # distribution answers "tags": null once every tag is gone.
    return list(response.json().get("tags") or [])


class Discovery:
    """The workflow's state; each request runs once, when the first check needs it."""

    def __init__(self, registry: Registry, repo: str, data: RunData, cleanup: Cleanup) -> None:
        self.registry = registry
        self.repo = repo
        self.data = data
        self.cleanup = cleanup

    def push_blob(self, blob: Blob) -> requests.Response:
        self.cleanup.blob(self.repo, blob.digest)
        return self.registry.push_blob(self.repo, blob)

    def push_manifest(self, reference: str, manifest: Manifest) -> requests.Response:
        self.cleanup.manifest(self.repo, manifest.digest)
        return self.registry.push_manifest(self.repo, reference, manifest)

    @functools.cached_property
    def config(self) -> requests.Response:
        return self.push_blob(self.data.configs[2])

    @functools.cached_property
    def layer(self) -> requests.Response:
        return self.push_blob(self.data.layer)

    @functools.cached_property
    def tagged(self) -> list[requests.Response]:
        after(self.config, self.layer)
        return [self.push_manifest(tag, self.data.manifests[2]) for tag in TAGS]

    @functools.cached_property
    def references(self) -> list[tuple[Manifest, requests.Response]]:
        """Push the artifacts, the subject between them (so the first ones name a missing subject)."""
        after(self.tagged)
        refs = self.data.referrers
        pushed: list[tuple[Manifest, requests.Response]] = []
        for blob in (EMPTY_JSON, refs.blob_a):
            self.push_blob(blob)
        for manifest in (refs.a_config, refs.a_layer, refs.index):
            pushed.append((manifest, self.push_manifest(manifest.digest, manifest)))
        self.push_blob(self.data.configs[4])
        pushed.append((refs.subject, self.push_manifest(SUBJECT_TAG, refs.subject)))
        self.push_blob(refs.blob_b)
        for manifest in (refs.b_config, refs.b_layer, refs.c):
            pushed.append((manifest, self.push_manifest(manifest.digest, manifest)))
        return pushed

    @functools.cached_property
    def tag_list(self) -> requests.Response:
        after(self.references)
        return self.registry.get(f"/v2/{self.repo}/tags/list")

    @functools.cached_property
    def paginates(self) -> bool:
        """Whether ``n`` limits the tag list (a first page of one tag, out of several)."""
        return len(tags_of(self.list_tags(n="1"))) <= 1

    def list_tags(self, **params: str) -> requests.Response:
        after(self.references)
        return self.registry.get(f"/v2/{self.repo}/tags/list", params=params)

    def referrers(self, digest: str, **params: str) -> requests.Response:
        after(self.references)
        return self.registry.get(f"/v2/{self.repo}/referrers/{digest}", params=params)

    @functools.cached_property
    def referrers_api(self) -> bool:
        """Whether the registry serves the referrers API at all (a registry that does never answers 404)."""
        return self.referrers(DUMMY_DIGEST).status_code != 404

    def require_referrers_api(self) -> None:
        if not self.referrers_api:
            unsupported("referrers API (GET /v2/<name>/referrers/<digest> answered 404)")


@pytest.fixture(scope="module")
def discovery(registry: Registry, namespace: str, run_data: RunData, cleanup: Cleanup) -> Discovery:
    return Discovery(registry, f"{namespace}/discovery", run_data, cleanup)


#: What a referrers descriptor is made of (distribution-spec, Listing Referrers); anything else is ignored.
DESCRIPTOR_FIELDS = ("mediaType", "digest", "size", "artifactType", "annotations")


def _index_manifests(response: requests.Response) -> list[dict[str, t.Any]]:
    descriptors = response.json().get("manifests") or []
    return [{key: d[key] for key in DESCRIPTOR_FIELDS if key in d} for d in descriptors]


class TestSetup:
    def test_populate_registry_with_test_blob(self, discovery: Discovery) -> None:
        response = discovery.config
        assert is_success(response)

    def test_populate_registry_with_test_layer(self, discovery: Discovery) -> None:
        response = discovery.layer
        assert is_success(response)

    def test_populate_registry_with_test_tags(self, discovery: Discovery) -> None:
        for response in discovery.tagged:
            assert is_success(response)

    def test_populate_registry_with_test_tags_no_push(self) -> None:
        not_applicable("the suite pushes its own tags; it does not list tags named by OCI_TAG_LIST")

    def test_references_setup(self, discovery: Discovery) -> None:
        assert EMPTY_JSON.digest == EMPTY_JSON_DIGEST
        for _, response in discovery.references:
            assert is_success(response)
        for manifest, response in discovery.references:
            subject = manifest.document.get("subject")
            if subject is None:
                continue
            if "OCI-Subject" not in response.headers:
                discovery.require_referrers_api()
            assert response.headers.get("OCI-Subject") == subject["digest"], f"OCI-Subject of {manifest.name}"


class TestListingTags:
    def test_get_request_to_list_tags_should_yield_200_response_and_be_in_sorted_order(
        self, discovery: Discovery
    ) -> None:
        response = discovery.tag_list
        assert response.status_code == 200
        tags = tags_of(response)
        assert set(TAGS) | {SUBJECT_TAG} <= set(tags)
        # Lexical order ignoring case, or plain byte order: the spec allows either.
        in_order = tags == sorted(tags, key=str.lower) or tags == sorted(tags)
        if not in_order and not discovery.paginates:
            # The spec orders tags for the sake of n/last; distribution 2.x does neither.
            unsupported("ordered tag lists (tags are neither sorted nor paginated by n)")
        assert in_order

    def test_get_number_of_tags_should_be_limitable_by_n_query_parameter(self, discovery: Discovery) -> None:
        count = len(tags_of(discovery.tag_list))
        n = count // 2
        response = discovery.list_tags(n=str(n))
        assert response.status_code == 200
        page = tags_of(response)
        if len(page) > n:
            unsupported(f"tag list pagination (n={n} answered {len(page)} tags)")
        # Fewer than n is allowed only when a Link header says more follow.
        assert len(page) == n or "Link" in response.headers

    def test_get_start_of_tag_is_set_by_last_query_parameter(self, discovery: Discovery) -> None:
        count = len(tags_of(discovery.tag_list))
        n = count // 2
        first = tags_of(discovery.list_tags(n=str(n)))
        if len(first) > n:
            unsupported(f"tag list pagination (n={n} answered {len(first)} tags)")
        assert first, "the first page is empty"
        last = first[-1]
        response = discovery.list_tags(n=str(n), last=last)
        assert response.status_code == 200
        page = tags_of(response)
        assert len(page) <= n
        assert last not in page


class TestListingReferences:
    def test_get_request_to_nonexistent_blob_should_result_in_empty_200_response(
        self, discovery: Discovery
    ) -> None:
        response = discovery.referrers(DUMMY_DIGEST)
        if response.status_code == 404:
            unsupported("referrers API (GET /v2/<name>/referrers/<digest> answered 404)")
        assert response.status_code == 200
        assert response.headers.get("Content-Type") == OCI_INDEX
        assert _index_manifests(response) == []

    def test_get_request_to_existing_blob_should_yield_200(self, discovery: Discovery) -> None:
        discovery.require_referrers_api()
        refs = discovery.data.referrers
        response = discovery.referrers(refs.subject.digest)
        assert response.status_code == 200
        assert response.headers.get("Content-Type") == OCI_INDEX
        listed = sorted(_index_manifests(response), key=lambda d: str(d.get("digest")))
        expected = sorted((m.referrer_descriptor() for m in refs.of_subject), key=lambda d: str(d["digest"]))
        assert listed == expected

    def test_get_request_to_existing_blob_with_filter_should_yield_200(self, discovery: Discovery) -> None:
        discovery.require_referrers_api()
        refs = discovery.data.referrers
        response = discovery.referrers(refs.subject.digest, artifactType=ARTIFACT_TYPE_A)
        assert response.status_code == 200
        assert response.headers.get("Content-Type") == OCI_INDEX
        digests = sorted(str(d.get("digest")) for d in _index_manifests(response))
        if "OCI-Filters-Applied" not in response.headers:
            assert digests == sorted(m.digest for m in refs.of_subject)
            unsupported("referrers filtering by artifactType (no OCI-Filters-Applied header)")
        assert response.headers["OCI-Filters-Applied"] == "artifactType"
        assert digests == sorted(m.digest for m in refs.of_type_a)

    def test_get_request_to_missing_manifest_should_yield_200(self, discovery: Discovery) -> None:
        discovery.require_referrers_api()
        refs = discovery.data.referrers
        response = discovery.referrers(refs.missing_subject.digest)
        assert response.status_code == 200
        assert response.headers.get("Content-Type") == OCI_INDEX
        assert _index_manifests(response) == [refs.c.referrer_descriptor()]


def _delete(response: requests.Response, what: str) -> None:
    if deletion_refused(response):
        unsupported(f"{what} deletion (DELETE answered {describe(response)})")
    assert is_success(response) or response.status_code == 404


class TestTeardown:
    def test_delete_created_manifest_and_associated_tags(self, discovery: Discovery) -> None:
        after(discovery.references)
        refs = discovery.data.referrers
        for manifest in (refs.index, discovery.data.manifests[2], refs.subject, *refs.manifests[1:]):
            _delete(discovery.registry.delete_manifest(discovery.repo, manifest.digest), "manifest")

    def test_delete_config_blob_created_in_tests(self, discovery: Discovery) -> None:
        after(discovery.config)
        _delete(discovery.registry.delete_blob(discovery.repo, discovery.data.configs[2].digest), "blob")

    def test_delete_layer_blob_created_in_setup(self, discovery: Discovery) -> None:
        after(discovery.layer)
        _delete(discovery.registry.delete_blob(discovery.repo, discovery.data.layer.digest), "blob")

    def test_references_teardown(self, discovery: Discovery) -> None:
        after(discovery.references)
        refs = discovery.data.referrers
        for manifest in refs.manifests:
            _delete(discovery.registry.delete_manifest(discovery.repo, manifest.digest), "manifest")
        for blob in (discovery.data.configs[4], refs.blob_a, refs.blob_b, EMPTY_JSON):
            _delete(discovery.registry.delete_blob(discovery.repo, blob.digest), "blob")
