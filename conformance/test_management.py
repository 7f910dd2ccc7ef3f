"""Content Management: the OCI conformance suite's fourth workflow (10 checks).

A tag, then its manifest, then the manifest's blobs are deleted, and each deletion must be visible. Deletes
are optional: a registry that refuses them the way the spec says (405, or 400 ``UNSUPPORTED``) lacks a
feature; any other refusal fails.
"""

from __future__ import annotations

import functools
import typing as t

import pytest
import requests

from conformance.assertions import after
from conformance.data import MANIFEST_ACCEPT
from conformance.verdicts import end_if_not_offered
from conformance.verdicts import profile_of

if t.TYPE_CHECKING:
    from conformance.client import RegistryClient
    from conformance.conftest import Cleanup
    from conformance.data import RunData

pytestmark = pytest.mark.management

TAG = "tagtest0"


def tags_of(response: requests.Response) -> list[str]:
    # distribution answers "tags": null once every tag is gone.
    return list(response.json().get("tags") or [])


class Management:
    """The workflow's state; each request runs once, when the first check needs it."""

    def __init__(
        self, registry: RegistryClient, repo: str, data: RunData, cleanup: Cleanup, profile: str
    ) -> None:
        self.registry = registry
        self.profile = profile
        self.repo = repo
        self.data = data
        self.cleanup = cleanup
        self.manifest = data.manifests[3]
        self.config = data.configs[3]

    @functools.cached_property
    def config_push(self) -> requests.Response:
        self.cleanup.blob(self.repo, self.config.digest)
        return self.registry.push_blob(self.repo, self.config)

    @functools.cached_property
    def layer_push(self) -> requests.Response:
        self.cleanup.blob(self.repo, self.data.layer.digest)
        return self.registry.push_blob(self.repo, self.data.layer)

    @functools.cached_property
    def tag_push(self) -> requests.Response:
        after(self.config_push, self.layer_push)
        self.cleanup.manifest(self.repo, self.manifest.digest)
        return self.registry.push_manifest(self.repo, TAG, self.manifest)

    @functools.cached_property
    def tags_before(self) -> requests.Response:
        after(self.tag_push)
        return self.registry.get(f"/v2/{self.repo}/tags/list")

    @functools.cached_property
    def tag_delete(self) -> requests.Response:
        after(self.tags_before)
        return self.registry.delete_manifest(self.repo, TAG)

    @functools.cached_property
    def manifest_delete(self) -> requests.Response:
        after(self.tag_delete)
        return self.registry.delete_manifest(self.repo, self.manifest.digest)

    @functools.cached_property
    def blob_deletes(self) -> list[requests.Response]:
        after(self.manifest_delete)
        return [self.registry.delete_blob(self.repo, blob.digest) for blob in (self.config, self.data.layer)]

    def get_manifest(self, reference: str) -> requests.Response:
        # Accept everything, so a 404 cannot come from content negotiation instead of the deletion.
        return self.registry.get(
            f"/v2/{self.repo}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}
        )


@pytest.fixture(scope="module")
def management(
    registry: RegistryClient, namespace: str, run_data: RunData, cleanup: Cleanup, pytestconfig: pytest.Config
) -> Management:
    return Management(registry, f"{namespace}/management", run_data, cleanup, profile_of(pytestconfig))


@pytest.mark.spec(
    "distribution-spec 1.1 §Pushing blobs, §Pushing Manifests (the management workflow's setup)"
)
class TestSetup:
    def test_populate_registry_with_test_config_blob(self, management: Management) -> None:
        response = management.config_push
        assert response.status_code == 201

    def test_populate_registry_with_test_layer(self, management: Management) -> None:
        response = management.layer_push
        assert response.status_code == 201

    def test_populate_registry_with_test_tag(self, management: Management) -> None:
        response = management.tag_push
        assert response.status_code == 201

    def test_check_how_many_tags_there_are_before_anything_gets_deleted(self, management: Management) -> None:
        response = management.tags_before
        assert response.status_code == 200
        assert TAG in tags_of(response)


@pytest.mark.spec("distribution-spec 1.1 §Deleting tags, §Deleting Manifests")
class TestManifestDelete:
    def test_delete_request_to_manifest_tag_should_return_202_unless_tag_deletion_is_disallowed(
        self, management: Management
    ) -> None:
        response = management.tag_delete
        end_if_not_offered("tag-delete", response, management.profile)
        assert response.status_code == 202

    def test_get_request_to_deleted_tag_should_yield_404_response(self, management: Management) -> None:
        deleted = management.tag_delete
        end_if_not_offered("tag-delete", deleted, management.profile)
        response = management.get_manifest(TAG)
        assert response.status_code == 404

    def test_delete_request_to_manifest_digest_should_yield_202_response_unless_already_deleted(
        self, management: Management
    ) -> None:
        response = management.manifest_delete
        end_if_not_offered("manifest-delete", response, management.profile)
        assert response.status_code in (202, 404)

    def test_get_request_to_deleted_manifest_url_should_yield_404_response_unless_delete_is_disallowed(
        self, management: Management
    ) -> None:
        deleted = management.manifest_delete
        end_if_not_offered("manifest-delete", deleted, management.profile)
        response = management.get_manifest(management.manifest.digest)
        assert response.status_code == 404

    def test_get_request_to_tags_list_should_reflect_manifest_deletion(self, management: Management) -> None:
        before = tags_of(management.tags_before)
        deleted = management.manifest_delete
        end_if_not_offered("manifest-delete", deleted, management.profile)
        response = management.registry.get(f"/v2/{management.repo}/tags/list")
        # A repository without tags may be gone altogether.
        assert response.status_code in (200, 404)
        after_delete = tags_of(response) if response.status_code == 200 else []
        assert sorted(after_delete) == sorted(set(before) - {TAG})


@pytest.mark.spec("distribution-spec 1.1 §Deleting Blobs")
class TestBlobDelete:
    def test_delete_request_to_blob_url_should_yield_202_response(self, management: Management) -> None:
        for response in management.blob_deletes:
            end_if_not_offered("blob-delete", response, management.profile)
            assert response.status_code in (202, 404)

    def test_get_request_to_deleted_blob_url_should_yield_404_response(self, management: Management) -> None:
        deleted = management.blob_deletes[0]
        end_if_not_offered("blob-delete", deleted, management.profile)
        response = management.registry.get(f"/v2/{management.repo}/blobs/{management.config.digest}")
        assert response.status_code == 404
