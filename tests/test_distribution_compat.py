"""A storage directory is interchangeable between Debian's ``docker-registry`` 2.8.2 and the emulator.

One registry is started on a filesystem root, images are pushed with skopeo, it is stopped, and the other
registry is started on the same root: every tag must come back byte for byte. Both directions.
"""

from __future__ import annotations

import hashlib
import json
import typing as t
from pathlib import Path

import pytest

from pax_registry_fixtures.distribution import DistributionServer
from pax_registry_fixtures.process import RegistryProcess
from tests.clients import build_image
from tests.clients import needs_tools
from tests.clients import skopeo

pytestmark = [
    pytest.mark.peers,
    needs_tools,
    pytest.mark.needs("docker-registry"),
]

REPOSITORY = "compat/team/img"
OCI_TAGS = ("1", "2", "latest")
V2S2_TAG = "v2s2"
ALL_TAGS = sorted([*OCI_TAGS, V2S2_TAG])


class Registry(t.Protocol):
    @property
    def host(self) -> str: ...


def start(kind: str, root: Path) -> DistributionServer | RegistryProcess:
    """``distribution`` or ``emulator``, serving ``root`` with deletes enabled and quiet logs."""
    storage = {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}}
    config = {"log": {"level": "error", "accesslog": {"disabled": True}}, "storage": storage}
    server: DistributionServer | RegistryProcess = (
        DistributionServer(config) if kind == "distribution" else RegistryProcess(config)
    )
    return server.start()


def remote(registry: Registry, tag: str) -> str:
    return f"docker://{registry.host}/{REPOSITORY}:{tag}"


def raw_manifest(reference: str) -> bytes:
    return skopeo("inspect", "--tls-verify=false", "--raw", reference).stdout.encode()


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def referenced(manifest: bytes) -> list[str]:
    document = json.loads(manifest)
    return [document["config"]["digest"], *(layer["digest"] for layer in document["layers"])]


def list_tags(registry: Registry) -> list[str]:
    listing = skopeo("list-tags", "--tls-verify=false", f"docker://{registry.host}/{REPOSITORY}").stdout
    return sorted(json.loads(listing)["Tags"])


def push_images(registry: Registry, workdir: Path) -> dict[str, bytes]:
    """Push an OCI image under several tags and a v2s2 image; return each tag's manifest as served."""
    oci = build_image(workdir / "oci", layers=2, layer_size=32 * 1024)
    v2s2 = build_image(workdir / "v2s2", layers=2, layer_size=32 * 1024)
    for tag in OCI_TAGS:
        skopeo("copy", "--dest-tls-verify=false", oci, remote(registry, tag))
    skopeo("copy", "--dest-tls-verify=false", "--format", "v2s2", v2s2, remote(registry, V2S2_TAG))
    return {tag: raw_manifest(remote(registry, tag)) for tag in ALL_TAGS}


def pull_and_compare(registry: Registry, manifests: dict[str, bytes], workdir: Path) -> None:
    """Every tag pulls (``dir:`` keeps manifests and blobs as served) with the same bytes."""
    assert list_tags(registry) == ALL_TAGS
    for tag, manifest in manifests.items():
        out = workdir / f"pulled-{tag}"
        skopeo("copy", "--src-tls-verify=false", remote(registry, tag), f"dir:{out}")
        assert (out / "manifest.json").read_bytes() == manifest, tag
        for digest in referenced(manifest):
            blob = (out / digest.partition(":")[2]).read_bytes()
            assert digest_of(blob) == digest


def assert_distribution_layout(root: Path, manifests: dict[str, bytes]) -> None:
    """The paths of distribution's ``registry/storage/paths.go`` for every tag, manifest and blob."""
    v2 = root / "docker" / "registry" / "v2"
    repository = v2 / "repositories" / REPOSITORY
    for tag, manifest in manifests.items():
        manifest_digest = digest_of(manifest)
        link = repository / "_manifests" / "tags" / tag / "current" / "link"
        assert link.read_text() == manifest_digest, tag
        tag_index = (
            repository / "_manifests" / "tags" / tag / "index" / "sha256" / manifest_digest[7:] / "link"
        )
        assert tag_index.read_text() == manifest_digest, tag
        revision = repository / "_manifests" / "revisions" / "sha256" / manifest_digest[7:] / "link"
        assert revision.read_text() == manifest_digest, tag
        assert _blob_data(v2, manifest_digest).read_bytes() == manifest, tag
        for digest in referenced(manifest):
            assert digest_of(_blob_data(v2, digest).read_bytes()) == digest
            layer_link = repository / "_layers" / "sha256" / digest.partition(":")[2] / "link"
            assert layer_link.read_text() == digest


def _blob_data(v2: Path, digest: str) -> Path:
    encoded = digest.partition(":")[2]
    return v2 / "blobs" / "sha256" / encoded[:2] / encoded / "data"


@pytest.mark.parametrize(
    ("writer", "reader"),
    [("distribution", "emulator"), ("emulator", "distribution")],
    ids=["distribution-to-emulator", "emulator-to-distribution"],
)
def test_storage_written_by_one_is_served_by_the_other(writer: str, reader: str, tmp_path: Path) -> None:
    root = tmp_path / "storage"
    first = start(writer, root)
    try:
        manifests = push_images(first, tmp_path)
    finally:
        first.stop()
    assert_distribution_layout(root, manifests)

    second = start(reader, root)
    try:
        pull_and_compare(second, manifests, tmp_path)
    finally:
        second.stop()


def test_image_deleted_by_emulator_is_gone_for_distribution(tmp_path: Path) -> None:
    root = tmp_path / "storage"
    emulator = start("emulator", root)
    try:
        manifests = push_images(emulator, tmp_path)
        skopeo("delete", "--tls-verify=false", remote(emulator, V2S2_TAG))
    finally:
        emulator.stop()

    distribution = start("distribution", root)
    try:
        gone = skopeo("inspect", "--tls-verify=false", "--raw", remote(distribution, V2S2_TAG), check=False)
        assert gone.returncode != 0
        assert raw_manifest(remote(distribution, "1")) == manifests["1"]
    finally:
        distribution.stop()
