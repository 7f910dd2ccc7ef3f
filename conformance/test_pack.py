"""The Spectro Cloud pack registry's surface beyond distribution's: ``/health`` and the ``/v1/`` routes.

A plain OCI or Docker registry has none of this, so each missing route is *unsupported*, not a failure.
"""

from __future__ import annotations

import functools
import typing as t

import pytest
import requests

from conformance.checks import after
from conformance.checks import unsupported

if t.TYPE_CHECKING:
    from conformance.client import Registry
    from conformance.conftest import Cleanup
    from conformance.data import RunData

pytestmark = pytest.mark.pack


class Pack:
    """A repository holding an image and a logo, pushed once, when the first check needs it."""

    def __init__(self, registry: Registry, repo: str, data: RunData, cleanup: Cleanup) -> None:
        self.registry = registry
        self.repo = repo
        self.data = data
        self.cleanup = cleanup

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
    def v1(self) -> bool:
        """Whether the registry serves the ``/v1/`` routes at all."""
        return self.registry.get("/v1/").status_code != 404

    def require_v1(self) -> None:
        if not self.v1:
            unsupported("pack registry /v1/ API (GET /v1/ answered 404)")


@pytest.fixture(scope="module")
def pack(registry: Registry, namespace: str, run_data: RunData, cleanup: Cleanup) -> Pack:
    return Pack(registry, f"{namespace}/pack", run_data, cleanup)


def test_health_answers_up(pack: Pack) -> None:
    response = pack.registry.get("/health")
    if response.status_code == 404:
        unsupported("pack registry health endpoint (GET /health answered 404)")
    assert response.status_code == 200
    assert response.json() == {"status": "UP"}


def test_v1_base_answers_200(pack: Pack) -> None:
    pack.require_v1()
    response = pack.registry.get("/v1/")
    assert response.status_code == 200


def test_v1_catalog_lists_repositories(pack: Pack) -> None:
    pack.require_v1()
    after(pack.content)
    # Start just before the pack repository, so a long catalog does not push it off the first page.
    response = pack.registry.get("/v1/_catalog", params={"n": "10", "last": pack.repo[:-1]})
    assert response.status_code == 200
    assert pack.repo in response.json()["repositories"]


def test_v1_blob_is_served_with_the_requested_type(pack: Pack) -> None:
    pack.require_v1()
    after(pack.content)
    logo = pack.data.logo
    response = pack.registry.get(f"/v1/{pack.repo}/blobs/{logo.digest}", params={"type": "image/png"})
    assert response.status_code == 200
    assert response.headers.get("Content-Type") == "image/png"
    assert response.content == logo.content
