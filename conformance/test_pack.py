"""The Spectro Cloud pack registry's surface: ``/health``, the ``/v1/`` routes, and pack archives.

A plain OCI or Docker registry has no ``/health`` and no ``/v1/``: each is a row of the verdict table,
*unsupported* unless the ``pack`` profile requires it. Palette's OCI pack registries keep packs as
``oras`` artifacts under ``<base path>/spectro-packs/archive/<pack>:<version>``, which any registry
serving deep repository names can hold; the ``pack`` profile requires it. A valid pack pushed with
oras-py (as the docs push with the oras CLI) must pull back byte for byte and list its version.
Whether a registry refuses bad packs depends on its configuration: that is a ``config`` check.
"""

from __future__ import annotations

import functools
import typing as t
import urllib.parse
from pathlib import Path

import pytest
import requests

from conformance.assertions import after
from conformance.assertions import not_applicable
from conformance.data import OCI_MANIFEST
from conformance.data import ORAS_CONFIG
from conformance.data import ORAS_LAYER
from conformance.data import TITLE
from conformance.data import Blob
from conformance.data import pack_tarball
from conformance.verdicts import end_if_not_offered
from conformance.verdicts import profile_of

if t.TYPE_CHECKING:
    import oras.client

    from conformance.client import RegistryClient
    from conformance.conftest import Cleanup
    from conformance.data import RunData
    from conformance.settings import Settings

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


# -- packs pushed as the docs push them, with oras ---------------------------------------------------------


def oras_for(registry: RegistryClient, settings: Settings) -> oras.client.OrasClient:
    """An oras-py client for the registry under test, with the suite's credentials and CA."""
    oras_client = pytest.importorskip(
        "oras.client", reason="the pack checks push with oras-py (pip install oras)"
    )
    parsed = urllib.parse.urlsplit(registry.base_url)
    if parsed.path.strip("/"):
        not_applicable(f"oras addresses a registry by host alone, not {registry.base_url}")
    if settings.client_cert:
        not_applicable("oras-py cannot present a client certificate")
    options: dict[str, t.Any] = {}
    if settings.username:
        # oras-py's token backend cannot answer a Basic challenge, and its login() writes the user's
        # docker configuration: the credentials go to the backend the registry's challenge asks for.
        challenge = registry.get("/v2/", credentials=None).headers.get("WWW-Authenticate", "")
        options["auth_backend"] = "basic" if challenge.lower().startswith("basic") else "token"
    client = oras_client.OrasClient(
        hostname=parsed.netloc,
        insecure=parsed.scheme == "http",
        tls_verify=settings.cacert or True,
        **options,
    )
    if settings.username:
        client.auth.set_basic_auth(settings.username, settings.password or "")
    return client


@pytest.mark.spec(
    "Palette pack registry docs (OCI pack registries): oras push spectro-packs/archive/<name>:<version>"
)
def test_a_pack_pushed_with_oras_pulls_back_and_lists_its_version(
    pack: Pack,
    pax_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, version = f"pax-oras-{pack.data.run_id}", "1.2.3"
    repo = f"{pack.archive_repo.rsplit('/', 1)[0]}/{name}"
    archive = pack_tarball(name, version)
    workdir = tmp_path_factory.mktemp("pack")
    (workdir / f"{name}-{version}.tar.gz").write_bytes(archive)
    client = oras_for(pack.registry, pax_settings)
    host = urllib.parse.urlsplit(pack.registry.base_url).netloc
    for blob in (Blob(archive), Blob(b"{}")):
        pack.cleanup.blob(repo, blob.digest)
    with monkeypatch.context() as context:
        # oras-py pushes only paths below the working directory, as the docs run oras from the pack's.
        context.chdir(workdir)
        pushed = client.push(files=[f"{name}-{version}.tar.gz"], target=f"{host}/{repo}:{version}")
    assert pushed.status_code == 201
    manifest = pack.registry.get(f"/v2/{repo}/manifests/{version}", headers={"Accept": OCI_MANIFEST})
    assert manifest.status_code == 200
    pack.cleanup.manifest(
        repo, manifest.headers.get("Docker-Content-Digest") or Blob(manifest.content).digest
    )
    document = manifest.json()
    assert document["config"]["mediaType"] == ORAS_CONFIG
    assert [(layer["mediaType"], layer["annotations"][TITLE]) for layer in document["layers"]] == [
        (ORAS_LAYER, f"{name}-{version}.tar.gz")
    ]

    pulled = client.pull(target=f"{host}/{repo}:{version}", outdir=str(workdir / "pulled"))

    assert [Path(path).read_bytes() for path in pulled] == [archive]
    tags = pack.registry.get(f"/v2/{repo}/tags/list")
    assert tags.status_code == 200
    assert version in (tags.json().get("tags") or [])
