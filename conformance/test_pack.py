"""The Spectro Cloud pack registry's surface: ``/health``, the ``/v1/`` routes, and pack archives.

A plain OCI or Docker registry has no ``/health`` and no ``/v1/``: each is a row of the verdict table,
*unsupported* unless the ``pack`` profile requires it. Palette's OCI pack registries keep packs as
``oras`` artifacts under ``<base path>/spectro-packs/archive/<pack>:<version>``, which any registry
serving deep repository names can hold; the ``pack`` profile requires it.
"""

from __future__ import annotations

import functools
import typing as t

import pytest
import requests

from conformance.assertions import after
from conformance.verdicts import end_if_not_offered
from conformance.verdicts import profile_of

if t.TYPE_CHECKING:
    from conformance.client import RegistryClient
    from conformance.conftest import Cleanup
    from conformance.data import RunData

pytestmark = pytest.mark.pack


class Pack:
    """A repository holding an image and a logo, pushed once, when the first check needs it."""

    def __init__(
        self, registry: RegistryClient, namespace: str, data: RunData, cleanup: Cleanup, profile: str
    ) -> None:
        self.registry = registry
        self.repo = f"{namespace}/pack"
        self.archive_repo = f"{namespace}/{data.pack_archive.repository}"
        self.data = data
        self.cleanup = cleanup
        self.profile = profile

    @functools.cached_property
    def content(self) -> list[requests.Response]:
        pushed = []
        for blob in (self.data.configs[0], self.data.layer, self.data.logo):
            self.cleanup.blob(self.repo, blob.digest)
            pushed.append(self.registry.push_blob(self.repo, blob))
        self.cleanup.manifest(self.repo, self.data.manifests[0].digest)
        pushed.append(self.registry.push_manifest(self.repo, "1.0.0", self.data.manifests[0]))
        return pushed

    @functools.cached_property
    def v1_base(self) -> requests.Response:
        return self.registry.get("/v1/")

    def require_v1(self) -> None:
        end_if_not_offered("pack-v1", self.v1_base, self.profile)

    @functools.cached_property
    def archive_blobs(self) -> list[requests.Response]:
        archive = self.data.pack_archive
        pushed = []
        for blob in (archive.config, archive.archive):
            self.cleanup.blob(self.archive_repo, blob.digest)
            pushed.append(self.registry.push_blob(self.archive_repo, blob))
        return pushed

    @functools.cached_property
    def archive_manifest(self) -> requests.Response:
        after(self.archive_blobs)
        archive = self.data.pack_archive
        self.cleanup.manifest(self.archive_repo, archive.manifest.digest)
        return self.registry.push_manifest(self.archive_repo, archive.version, archive.manifest)


@pytest.fixture(scope="module")
def pack(
    registry: RegistryClient, namespace: str, run_data: RunData, cleanup: Cleanup, pytestconfig: pytest.Config
) -> Pack:
    return Pack(registry, namespace, run_data, cleanup, profile_of(pytestconfig))


@pytest.mark.spec("Palette pack registry docs (deploy-pack): GET /health")
def test_health_answers_up(pack: Pack) -> None:
    response = pack.registry.get("/health")
    end_if_not_offered("pack-health", response, pack.profile)
    assert response.status_code == 200
    assert response.json() == {"status": "UP"}


@pytest.mark.spec("Palette pack registry docs (adding a custom registry): the /v1/ API")
def test_v1_base_answers_200(pack: Pack) -> None:
    pack.require_v1()
    assert pack.v1_base.status_code == 200


@pytest.mark.spec("Palette pack registry docs (adding a custom registry): the /v1/ API")
def test_v1_catalog_lists_repositories(pack: Pack) -> None:
    pack.require_v1()
    after(pack.content)
    # Start just before the pack repository, so a long catalog does not push it off the first page.
    response = pack.registry.get("/v1/_catalog", params={"n": "10", "last": pack.repo[:-1]})
    assert response.status_code == 200
    assert pack.repo in response.json()["repositories"]


@pytest.mark.spec("Palette pack registry docs (adding a custom registry): /v1/<pack>/blobs/<digest>?type=")
def test_v1_blob_is_served_with_the_requested_type(pack: Pack) -> None:
    pack.require_v1()
    after(pack.content)
    logo = pack.data.logo
    response = pack.registry.get(f"/v1/{pack.repo}/blobs/{logo.digest}", params={"type": "image/png"})
    assert response.status_code == 200
    assert response.headers.get("Content-Type") == "image/png"
    assert response.content == logo.content


@pytest.mark.spec("Palette pack registry docs (OCI pack registries): spectro-packs/archive/")
def test_pack_archive_is_pushed_and_pulled_under_spectro_packs_archive(pack: Pack) -> None:
    archive = pack.data.pack_archive
    for response in pack.archive_blobs:
        end_if_not_offered("pack-archive", response, pack.profile)
        assert response.status_code == 201
    created = pack.archive_manifest
    assert created.status_code == 201
    manifest = pack.registry.get(
        f"/v2/{pack.archive_repo}/manifests/{archive.version}",
        headers={"Accept": archive.manifest.media_type},
    )
    assert manifest.status_code == 200
    assert manifest.content == archive.manifest.content
    layer = pack.registry.get(f"/v2/{pack.archive_repo}/blobs/{archive.archive.digest}")
    assert layer.status_code == 200
    assert layer.content == archive.archive.content
    tags = pack.registry.get(f"/v2/{pack.archive_repo}/tags/list")
    assert tags.status_code == 200
    assert archive.version in (tags.json().get("tags") or [])
