"""Docker Registry HTTP API v2 behaviours beyond the OCI suite, as distribution implements them.

Clients written against Docker's registry rely on these: the API version header, error codes,
``_catalog`` paging, ``ETag`` and ``304``, full headers on ``HEAD``, ``Accept`` negotiation, digest
verification and upload cancellation. OCI lets a registry lack most of them, so under the ``oci``
profile a registry that does not offer one is *unsupported* (each through its row of the verdict table);
the ``docker`` profile requires them all. A registry that offers one must get it right under any profile.
"""

from __future__ import annotations

import functools
import re
import typing as t
import urllib.parse

import pytest
import requests

from conformance.assertions import after
from conformance.assertions import assert_digest_header
from conformance.assertions import assert_error_code
from conformance.assertions import assert_size_header
from conformance.client import error_codes
from conformance.client import location
from conformance.client import with_query
from conformance.data import DOCKER_LIST
from conformance.data import DOCKER_MANIFEST
from conformance.data import DUMMY_DIGEST
from conformance.data import EMPTY_JSON
from conformance.data import MANIFEST_ACCEPT
from conformance.data import OCI_MANIFEST
from conformance.data import Blob
from conformance.data import image_manifest
from conformance.verdicts import end_if_not_offered
from conformance.verdicts import profile_of

if t.TYPE_CHECKING:
    from conformance.client import RegistryClient
    from conformance.conftest import Cleanup
    from conformance.data import Manifest
    from conformance.data import RunData

pytestmark = pytest.mark.docker

API_VERSION = "registry/2.0"
_NEXT_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


def next_link(response: requests.Response) -> str:
    """The absolute URL of the ``rel="next"`` Link, or ``""``."""
    match = _NEXT_LINK.search(response.headers.get("Link", ""))
    return urllib.parse.urljoin(response.url, match.group(1)) if match else ""


class Docker:
    """Content for the checks, pushed once, when the first check needs it."""

    def __init__(
        self, registry: RegistryClient, namespace: str, data: RunData, cleanup: Cleanup, profile: str
    ) -> None:
        self.registry = registry
        self.profile = profile
        self.repo = f"{namespace}/docker"
        self.catalog_prefix = f"{namespace}/catalog"
        self.catalog_repos = (f"{self.catalog_prefix}/a", f"{self.catalog_prefix}/b")
        self.data = data
        self.cleanup = cleanup

    def push_blob(self, blob: Blob, repo: str | None = None) -> requests.Response:
        self.cleanup.blob(repo or self.repo, blob.digest)
        return self.registry.push_blob(repo or self.repo, blob)

    def push_manifest(self, reference: str, manifest: Manifest, repo: str | None = None) -> requests.Response:
        self.cleanup.manifest(repo or self.repo, manifest.digest)
        return self.registry.push_manifest(repo or self.repo, reference, manifest)

    @functools.cached_property
    def oci(self) -> requests.Response:
        """An OCI image tagged ``oci``."""
        self.push_blob(self.data.configs[0])
        self.push_blob(self.data.layer)
        return self.push_manifest("oci", self.data.manifests[0])

    @functools.cached_property
    def docker(self) -> requests.Response:
        """A Docker schema 2 image tagged ``docker``."""
        image = self.data.docker
        self.push_blob(image.config)
        self.push_blob(image.layer)
        return self.push_manifest("docker", image.manifest)

    @functools.cached_property
    def manifest_list(self) -> requests.Response:
        """A manifest list tagged ``list`` whose only entry is the Docker image, for linux/amd64."""
        after(self.docker)
        return self.push_manifest("list", self.data.docker.manifest_list)

    @functools.cached_property
    def catalog_content(self) -> list[requests.Response]:
        pushed = []
        for repo in self.catalog_repos:
            self.push_blob(self.data.configs[0], repo)
            self.push_blob(self.data.layer, repo)
            pushed.append(self.push_manifest("latest", self.data.manifests[0], repo))
        return pushed

    def get_manifest(
        self, reference: str, accept: str = MANIFEST_ACCEPT, headers: t.Mapping[str, str] | None = None
    ) -> requests.Response:
        return self.registry.get(
            f"/v2/{self.repo}/manifests/{reference}", headers={"Accept": accept, **(headers or {})}
        )

    def blob_url(self, digest: str) -> str:
        return f"/v2/{self.repo}/blobs/{digest}"

    def catalog(self, **params: str) -> requests.Response:
        after(self.catalog_content)
        response = self.registry.get("/v2/_catalog", params=params)
        end_if_not_offered("catalog", response, self.profile)
        return response


@pytest.fixture(scope="module")
def docker(
    registry: RegistryClient, namespace: str, run_data: RunData, cleanup: Cleanup, pytestconfig: pytest.Config
) -> Docker:
    return Docker(registry, namespace, run_data, cleanup, profile_of(pytestconfig))


def assert_api_version(response: requests.Response, profile: str) -> None:
    end_if_not_offered("api-version-header", response, profile)
    assert response.headers.get("Docker-Distribution-API-Version") == API_VERSION


@pytest.mark.spec("Docker Registry HTTP API v2 §API Version Check")
class TestApiVersion:
    def test_base_answers_200_with_api_version_header(self, docker: Docker) -> None:
        response = docker.registry.get("/v2/")
        assert response.status_code == 200
        assert_api_version(response, docker.profile)

    def test_errors_carry_api_version_header(self, docker: Docker) -> None:
        response = docker.registry.get(docker.blob_url(DUMMY_DIGEST))
        assert response.status_code == 404
        assert_api_version(response, docker.profile)


@pytest.mark.spec("Docker Registry HTTP API v2 §Errors")
class TestErrorBodies:
    def test_unknown_blob_is_blob_unknown(self, docker: Docker) -> None:
        response = docker.registry.get(docker.blob_url(DUMMY_DIGEST))
        assert response.status_code == 404
        assert_error_code(response, "BLOB_UNKNOWN", docker.profile)

    def test_unknown_manifest_is_manifest_unknown(self, docker: Docker) -> None:
        after(docker.oci)
        response = docker.get_manifest(DUMMY_DIGEST)
        assert response.status_code == 404
        assert_error_code(response, "MANIFEST_UNKNOWN", docker.profile)


@pytest.mark.spec("Docker Registry HTTP API v2 §Listing Repositories (pagination)")
class TestCatalog:
    def test_catalog_lists_repositories(self, docker: Docker) -> None:
        response = docker.catalog(n="2", last=docker.catalog_prefix)
        assert response.status_code == 200
        assert response.headers.get("Content-Type", "").startswith("application/json")
        repositories = response.json()["repositories"]
        assert repositories == list(docker.catalog_repos)

    def test_catalog_n_limits_the_page_and_links_the_next(self, docker: Docker) -> None:
        response = docker.catalog(n="1", last=docker.catalog_prefix)
        assert response.status_code == 200
        repositories = response.json()["repositories"]
        assert repositories == [docker.catalog_repos[0]]
        assert next_link(response), "a page that is not the last one must link the next"

    def test_catalog_link_leads_to_the_next_page(self, docker: Docker) -> None:
        first = docker.catalog(n="1", last=docker.catalog_prefix)
        assert first.json()["repositories"] == [docker.catalog_repos[0]]
        link = next_link(first)
        assert link, "a page that is not the last one must link the next"
        response = docker.registry.get(link)
        assert response.status_code == 200
        assert response.json()["repositories"][:1] == [docker.catalog_repos[1]]


def _etag(response: requests.Response, profile: str) -> str:
    assert response.status_code == 200
    end_if_not_offered("etag", response, profile)
    return response.headers["ETag"]


@pytest.mark.spec("Docker Registry HTTP API v2 §Pulling an Image Manifest (ETag); RFC 9110 §13.1.2")
class TestConditionalRequests:
    @pytest.mark.parametrize("by", ["tag", "digest"])
    def test_manifest_if_none_match_answers_304(self, docker: Docker, by: str) -> None:
        after(docker.oci)
        reference = "oci" if by == "tag" else docker.data.manifests[0].digest
        etag = _etag(docker.get_manifest(reference), docker.profile)
        response = docker.get_manifest(reference, headers={"If-None-Match": etag})
        assert response.status_code == 304
        assert not response.content

    def test_blob_if_none_match_answers_304(self, docker: Docker) -> None:
        after(docker.oci)
        url = docker.blob_url(docker.data.configs[0].digest)
        etag = _etag(docker.registry.get(url), docker.profile)
        response = docker.registry.get(url, headers={"If-None-Match": etag})
        assert response.status_code == 304
        assert not response.content


@pytest.mark.spec(
    "Docker Registry HTTP API v2 §Pushing an Image Manifest, "
    "§Existing Layers (Docker-Content-Digest, Content-Length)"
)
class TestHeaders:
    def test_manifest_put_returns_docker_content_digest(self, docker: Docker) -> None:
        response = docker.oci
        manifest = docker.data.manifests[0]
        assert response.status_code == 201
        assert_digest_header(response, manifest.content, docker.profile, exactly=manifest.digest)

    def test_manifest_head_matches_get(self, docker: Docker) -> None:
        after(docker.oci)
        manifest = docker.data.manifests[0]
        response = docker.registry.head(
            f"/v2/{docker.repo}/manifests/oci", headers={"Accept": MANIFEST_ACCEPT}
        )
        assert response.status_code == 200
        assert response.headers.get("Content-Type") == OCI_MANIFEST
        assert_size_header(response, manifest.size, docker.profile)
        assert_digest_header(response, manifest.content, docker.profile, exactly=manifest.digest)

    def test_blob_head_reports_size_and_digest(self, docker: Docker) -> None:
        after(docker.oci)
        blob = docker.data.layer
        response = docker.registry.head(docker.blob_url(blob.digest))
        assert response.status_code == 200
        assert_size_header(response, blob.size, docker.profile)
        assert_digest_header(response, blob.content, docker.profile, exactly=blob.digest)

    def test_blob_get_returns_content_and_digest(self, docker: Docker) -> None:
        after(docker.oci)
        blob = docker.data.layer
        response = docker.registry.get(docker.blob_url(blob.digest))
        assert response.status_code == 200
        assert response.content == blob.content
        assert_digest_header(response, blob.content, docker.profile, exactly=blob.digest)


@pytest.mark.spec(
    "Docker Registry HTTP API v2 §Pulling an Image Manifest (Accept); "
    "distribution-spec 1.1 §Pulling manifests"
)
class TestAcceptNegotiation:
    @pytest.mark.parametrize("kind", ["oci", "docker"])
    def test_manifest_is_served_as_pushed(self, docker: Docker, kind: str) -> None:
        manifest = docker.data.manifests[0] if kind == "oci" else docker.data.docker.manifest
        after(docker.oci if kind == "oci" else docker.docker)
        response = docker.get_manifest(kind, accept=manifest.media_type)
        assert response.status_code == 200
        assert response.headers.get("Content-Type") == manifest.media_type
        assert response.content == manifest.content
        assert_digest_header(response, manifest.content, docker.profile, exactly=manifest.digest)

    def test_oci_manifest_is_unknown_to_clients_that_do_not_accept_it(self, docker: Docker) -> None:
        after(docker.oci)
        response = docker.get_manifest("oci", accept=DOCKER_MANIFEST)
        if response.status_code == 200:
            assert response.content == docker.data.manifests[0].content
        end_if_not_offered("accept-negotiation", response, docker.profile)
        assert response.status_code in (404, 406)

    def test_manifest_list_by_tag_resolves_to_the_platform_manifest(self, docker: Docker) -> None:
        after(docker.manifest_list)
        image = docker.data.docker.manifest
        response = docker.get_manifest("list", accept=DOCKER_MANIFEST)
        assert response.status_code == 200
        if response.headers.get("Content-Type") == DOCKER_LIST:
            assert response.content == docker.data.docker.manifest_list.content
        end_if_not_offered("accept-negotiation", response, docker.profile)
        assert response.headers.get("Content-Type") == DOCKER_MANIFEST
        assert response.content == image.content
        assert_digest_header(response, image.content, docker.profile, exactly=image.digest)

    def test_manifest_list_by_digest_is_served_as_pushed(self, docker: Docker) -> None:
        after(docker.manifest_list)
        manifest_list = docker.data.docker.manifest_list
        response = docker.get_manifest(manifest_list.digest, accept=DOCKER_LIST)
        assert response.status_code == 200
        assert response.headers.get("Content-Type") == DOCKER_LIST
        assert response.content == manifest_list.content


@pytest.mark.spec("Docker Registry HTTP API v2 §Completed Upload (digest verification)")
class TestDigestVerification:
    def test_blob_put_with_wrong_digest_is_rejected(self, docker: Docker) -> None:
        blob = Blob(b"pax-conformance wrong digest " + docker.data.run_id.encode())
        session = docker.registry.start_upload(docker.repo)
        docker.cleanup.upload(session)
        docker.cleanup.blob(docker.repo, blob.digest)
        response = docker.registry.put(
            with_query(location(session), digest=DUMMY_DIGEST),
            headers={"Content-Type": "application/octet-stream"},
            data=blob.content,
        )
        assert response.status_code == 400
        assert_error_code(response, "DIGEST_INVALID", docker.profile)

    def test_manifest_put_by_wrong_digest_is_rejected(self, docker: Docker) -> None:
        after(docker.oci)
        manifest = docker.data.manifests[0]
        docker.cleanup.manifest(docker.repo, DUMMY_DIGEST)
        response = docker.registry.put(
            f"/v2/{docker.repo}/manifests/{DUMMY_DIGEST}",
            headers={"Content-Type": manifest.media_type},
            data=manifest.content,
        )
        assert response.status_code == 400
        assert_error_code(response, "DIGEST_INVALID", docker.profile)

    def test_manifest_referencing_unknown_blob_is_rejected(self, docker: Docker) -> None:
        missing = Blob(b"pax-conformance never pushed " + docker.data.run_id.encode())
        manifest = image_manifest(EMPTY_JSON, [missing], name="dangling")
        docker.push_blob(EMPTY_JSON)
        response = docker.push_manifest("dangling", manifest)
        end_if_not_offered("manifest-blob-check", response, docker.profile)
        assert response.status_code == 400
        # The spec's one MUST about this rejection (distribution-spec 1.1 §Push).
        assert "MANIFEST_BLOB_UNKNOWN" in error_codes(response)


@pytest.mark.spec("Docker Registry HTTP API v2 §Canceling an Upload")
class TestUploads:
    def test_cancelled_upload_is_unknown(self, docker: Docker) -> None:
        session = docker.registry.start_upload(docker.repo)
        assert session.status_code == 202
        cancelled = docker.registry.delete(location(session))
        end_if_not_offered("upload-cancel", cancelled, docker.profile)
        assert cancelled.status_code == 204
        response = docker.registry.get(location(session))
        assert response.status_code == 404
        assert_error_code(response, "BLOB_UPLOAD_UNKNOWN", docker.profile)
