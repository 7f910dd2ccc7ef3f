"""Content Discovery: the OCI conformance suite's third workflow (its 16 checks), and its additions.

Tags are listed whole, by page (``n``) and from a starting point (``last``); referrers are listed for a
manifest with six artifacts (whose ``artifactType`` comes from the manifest, from its config, from an
index, and from nowhere for an index without one), filtered by each artifact type, for a manifest that
was never pushed, and for a digest that is no digest.
"""

from __future__ import annotations

import functools
import typing as t

import pytest
import requests

from conformance.assertions import after
from conformance.assertions import not_applicable
from conformance.data import ARTIFACT_TYPE_A
from conformance.data import ARTIFACT_TYPE_B
from conformance.data import DUMMY_DIGEST
from conformance.data import EMPTY_JSON
from conformance.data import OCI_INDEX
from conformance.verdicts import end_if_not_offered
from conformance.verdicts import profile_of
from conformance.workflow import Workflow

if t.TYPE_CHECKING:
    from conformance.client import RegistryClient
    from conformance.conftest import Cleanup
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


class Discovery(Workflow):
    """Tags and a subject with its referrers, pushed once for every check that lists them."""

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
        for manifest in (refs.b_config, refs.b_layer, refs.untyped_index, refs.c):
            pushed.append((manifest, self.push_manifest(manifest.digest, manifest)))
        return pushed

    @functools.cached_property
    def tag_list(self) -> requests.Response:
        after(self.references)
        return self.registry.get(f"/v2/{self.repo}/tags/list")

    def list_tags(self, **params: str) -> requests.Response:
        after(self.references)
        return self.registry.get(f"/v2/{self.repo}/tags/list", params=params)

    def referrers(self, digest: str, **params: str) -> requests.Response:
        after(self.references)
        return self.registry.get(f"/v2/{self.repo}/referrers/{digest}", params=params)

    @functools.cached_property
    def referrers_probe(self) -> requests.Response:
        """The referrers of a digest nothing refers to: how the registry treats the API at all."""
        return self.referrers(DUMMY_DIGEST)

    def require_referrers_api(self) -> None:
        end_if_not_offered("referrers", self.referrers_probe, self.profile)


@pytest.fixture(scope="module")
def discovery(
    registry: RegistryClient, namespace: str, run_data: RunData, cleanup: Cleanup, pytestconfig: pytest.Config
) -> Discovery:
    return Discovery(registry, f"{namespace}/discovery", run_data, cleanup, profile_of(pytestconfig))


#: What a referrers descriptor is made of (distribution-spec, Listing Referrers); anything else is ignored.
DESCRIPTOR_FIELDS = ("mediaType", "digest", "size", "artifactType", "annotations")


def _index_manifests(response: requests.Response) -> list[dict[str, t.Any]]:
    """The descriptors of a referrers answer, which must be an OCI image index."""
    assert response.status_code == 200
    assert response.headers.get("Content-Type") == OCI_INDEX
    document = response.json()
    assert document.get("schemaVersion") == 2
    assert document.get("mediaType") == OCI_INDEX
    descriptors = document.get("manifests")
    assert isinstance(descriptors, list), "an index without a 'manifests' list"
    return [{key: d[key] for key in DESCRIPTOR_FIELDS if key in d} for d in descriptors]


def _by_digest(descriptors: t.Iterable[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    return sorted(descriptors, key=lambda d: str(d.get("digest")))


@pytest.mark.spec("distribution-spec 1.1 §Pushing Manifests with Subject")
class TestSetup:
    def test_populate_registry_with_test_blob(self, discovery: Discovery) -> None:
        response = discovery.config
        assert response.status_code == 201

    def test_populate_registry_with_test_layer(self, discovery: Discovery) -> None:
        response = discovery.layer
        assert response.status_code == 201

    def test_populate_registry_with_test_tags(self, discovery: Discovery) -> None:
        for response in discovery.tagged:
            assert response.status_code == 201

    def test_populate_registry_with_test_tags_no_push(self) -> None:
        not_applicable("the suite pushes its own tags; it does not list tags named by OCI_TAG_LIST")

    def test_references_setup(self, discovery: Discovery) -> None:
        assert EMPTY_JSON.digest == EMPTY_JSON_DIGEST
        for manifest, response in discovery.references:
            assert response.status_code == 201, f"PUT of {manifest.name}"
        for manifest, response in discovery.references:
            subject = manifest.document.get("subject")
            if subject is None:
                continue
            if "OCI-Subject" not in response.headers:
                # Without the header a client falls back to the tag schema: fine only without the API.
                discovery.require_referrers_api()
            assert response.headers.get("OCI-Subject") == subject["digest"], f"OCI-Subject of {manifest.name}"


@pytest.mark.spec("distribution-spec 1.1 §Listing Tags")
class TestListingTags:
    def test_get_request_to_list_tags_should_yield_200_response_and_be_in_sorted_order(
        self, discovery: Discovery
    ) -> None:
        response = discovery.tag_list
        assert response.status_code == 200
        assert response.json().get("name") == discovery.repo
        tags = tags_of(response)
        assert set(TAGS) | {SUBJECT_TAG} <= set(tags)
        # Lexical order ignoring case, or plain byte order: the spec allows either (distribution-spec#583).
        assert tags == sorted(tags, key=str.lower) or tags == sorted(tags), f"tags out of order: {tags}"

    def test_get_number_of_tags_should_be_limitable_by_n_query_parameter(self, discovery: Discovery) -> None:
        count = len(tags_of(discovery.tag_list))
        n = count // 2
        response = discovery.list_tags(n=str(n))
        assert response.status_code == 200
        page = tags_of(response)
        assert len(page) <= n, f"n={n} answered {len(page)} tags"
        # Fewer than n is allowed only when a Link header says more follow.
        assert len(page) == n or "Link" in response.headers, f"n={n} answered {len(page)} tags and no Link"
        assert page == tags_of(discovery.tag_list)[: len(page)], "the page is not the start of the list"

    def test_get_start_of_tag_is_set_by_last_query_parameter(self, discovery: Discovery) -> None:
        everything = tags_of(discovery.tag_list)
        n = len(everything) // 2
        first = tags_of(discovery.list_tags(n=str(n)))
        assert 0 < len(first) <= n, f"n={n} answered {len(first)} tags"
        last = first[-1]
        response = discovery.list_tags(n=str(n), last=last)
        assert response.status_code == 200
        page = tags_of(response)
        assert last not in page
        following = everything[everything.index(last) + 1 :] if last in everything else []
        assert page == following[: len(page)], f"after {last!r} came {page}, not the tags that follow it"
        assert len(page) == min(n, len(following)) or "Link" in response.headers


@pytest.mark.spec("distribution-spec 1.1 §Listing Referrers")
class TestListingReferences:
    def test_get_request_to_nonexistent_blob_should_result_in_empty_200_response(
        self, discovery: Discovery
    ) -> None:
        response = discovery.referrers_probe
        end_if_not_offered("referrers", response, discovery.profile)
        assert _index_manifests(response) == []

    def test_get_request_to_existing_blob_should_yield_200(self, discovery: Discovery) -> None:
        discovery.require_referrers_api()
        refs = discovery.data.referrers
        response = discovery.referrers(refs.subject.digest)
        expected = [m.referrer_descriptor() for m in refs.of_subject]
        assert _by_digest(_index_manifests(response)) == _by_digest(expected)

    @pytest.mark.parametrize("artifact_type", [ARTIFACT_TYPE_A, ARTIFACT_TYPE_B], ids=["type-a", "type-b"])
    def test_get_request_to_existing_blob_with_filter_should_yield_200(
        self, discovery: Discovery, artifact_type: str
    ) -> None:
        discovery.require_referrers_api()
        refs = discovery.data.referrers
        response = discovery.referrers(refs.subject.digest, artifactType=artifact_type)
        listed = _by_digest(_index_manifests(response))
        everything = [m.referrer_descriptor() for m in refs.of_subject]
        if "OCI-Filters-Applied" not in response.headers:
            # Not filtered: then it must be the whole list, for the client to filter.
            assert listed == _by_digest(everything)
        end_if_not_offered("referrers-filter", response, discovery.profile)
        assert response.headers["OCI-Filters-Applied"] == "artifactType"
        assert listed == _by_digest(d for d in everything if d.get("artifactType") == artifact_type)

    def test_get_request_to_missing_manifest_should_yield_200(self, discovery: Discovery) -> None:
        discovery.require_referrers_api()
        refs = discovery.data.referrers
        response = discovery.referrers(refs.missing_subject.digest)
        assert _index_manifests(response) == [refs.c.referrer_descriptor()]

    def test_get_request_with_an_invalid_digest_should_yield_400(self, discovery: Discovery) -> None:
        discovery.require_referrers_api()
        response = discovery.referrers("sha256:totallywrong")
        assert response.status_code == 400


def _delete_manifest(discovery: Discovery, digest: str) -> None:
    response = discovery.registry.delete_manifest(discovery.repo, digest)
    end_if_not_offered("manifest-delete", response, discovery.profile)
    # Deleting the subject may take its referrers along.
    assert response.status_code in (202, 404)


def _delete_blob(discovery: Discovery, digest: str) -> None:
    response = discovery.registry.delete_blob(discovery.repo, digest)
    end_if_not_offered("blob-delete", response, discovery.profile)
    assert response.status_code in (202, 404)


@pytest.mark.spec(
    "distribution-spec 1.1 §Deleting Manifests, §Deleting Blobs (the discovery workflow's teardown)"
)
class TestTeardown:
    def test_delete_created_manifest_and_associated_tags(self, discovery: Discovery) -> None:
        after(discovery.references)
        refs = discovery.data.referrers
        for manifest in (refs.index, refs.untyped_index, discovery.data.manifests[2], refs.subject):
            _delete_manifest(discovery, manifest.digest)

    def test_delete_config_blob_created_in_tests(self, discovery: Discovery) -> None:
        after(discovery.config)
        _delete_blob(discovery, discovery.data.configs[2].digest)

    def test_delete_layer_blob_created_in_setup(self, discovery: Discovery) -> None:
        after(discovery.layer)
        _delete_blob(discovery, discovery.data.layer.digest)

    def test_references_teardown(self, discovery: Discovery) -> None:
        after(discovery.references)
        refs = discovery.data.referrers
        for manifest in refs.manifests:
            _delete_manifest(discovery, manifest.digest)
        for blob in (discovery.data.configs[4], refs.blob_a, refs.blob_b, EMPTY_JSON):
            _delete_blob(discovery, blob.digest)
