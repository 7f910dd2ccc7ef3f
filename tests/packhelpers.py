"""What the tests of pack validation over HTTP share: a registry with pack checks on, a client for it,
and pushes built the way ``oras push`` builds them, so that each test module states only its cases.

A module takes the fixtures by importing ``registry_fixture`` and ``client_fixture`` (pytest finds fixtures
in a module's globals; a conftest would hand them to every test module). They are named ``registry`` and
``client`` for the tests, and their functions otherwise, so a test's parameter does not shadow the import.
"""

from __future__ import annotations

import io
import json
import tarfile
import typing as t
from pathlib import Path

import pytest
import requests

from conformance.client import RegistryClient
from conformance.client import error_codes
from conformance.data import Blob
from conformance.data import Manifest
from pax_registry_fixtures.factory import RegistryFactory
from pax_registry_fixtures.server import RegistryServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
#: What oras-py gives a file it pushes, and the config it writes (oras' defaults).
ORAS_LAYER = "application/vnd.oci.image.layer.v1.tar"
ORAS_CONFIG = "application/vnd.unknown.config.v1+json"
TITLE = "org.opencontainers.image.title"
REPOSITORY = "spectro-packs/archive/pax-demo"


@pytest.fixture(name="registry")
def registry_fixture(pax_registry_factory: RegistryFactory) -> RegistryServer:
    return pax_registry_factory(packs=True, delete=True)


@pytest.fixture(name="client")
def client_fixture(registry: RegistryServer) -> t.Iterator[RegistryClient]:
    client = RegistryClient(registry.url)
    yield client
    client.close()


def archive_of(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=folder.name)
    return buffer.getvalue()


def manifest_for(layers: t.Sequence[dict[str, t.Any]], config: Blob) -> Manifest:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers,
    }
    return Manifest(json.dumps(document).encode(), OCI_MANIFEST)


def push_archive(
    client: RegistryClient,
    repository: str,
    reference: str,
    data: bytes,
    *,
    title: str = "pax-demo-1.0.0.tar.gz",
) -> requests.Response:
    """Push ``data`` as ``oras push`` pushes a file: one titled layer and oras' empty config."""
    layer = Blob(data, ORAS_LAYER)
    config = Blob(b"{}", ORAS_CONFIG)
    for blob in (layer, config):
        assert client.push_blob(repository, blob).status_code == 201
    manifest = manifest_for([layer.descriptor(annotations={TITLE: title})], config)
    if reference == "@digest":
        reference = manifest.digest
    return client.push_manifest(repository, reference, manifest)


def problems_of(response: requests.Response) -> set[tuple[str, str]]:
    assert response.status_code == 400, response.text
    assert error_codes(response) == ["MANIFEST_INVALID"]
    error = response.json()["errors"][0]
    assert error["message"].startswith("invalid pack: ")
    return {(p["path"], p["rule"]) for p in error["detail"]["problems"]}


def assert_nothing_stored(
    registry: RegistryServer, client: RegistryClient, repository: str, tag: str
) -> None:
    assert client.get(f"/v2/{repository}/manifests/{tag}").status_code == 404
    assert registry.registry.manifests.digests(repository) == []
