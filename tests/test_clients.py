"""Acceptance with real clients: skopeo and oras-py against ``python -m emulator serve``.

Every test runs once per storage driver (inmemory and filesystem). Images are built offline with umoci
and must come back byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import typing as t
from pathlib import Path

import pytest
import requests

from pax_registry_fixtures.process import RegistryProcess
from tests.clients import build_image
from tests.clients import needs_tools
from tests.clients import oras_client
from tests.clients import skopeo

pytestmark = [pytest.mark.peers, needs_tools]

LAYER_SIZE = 64 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
V2S2_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(params=["inmemory", "filesystem"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> t.Iterator[RegistryProcess]:
    driver: dict[str, t.Any] = (
        {"inmemory": {}}
        if request.param == "inmemory"
        else {"filesystem": {"rootdirectory": str(tmp_path / "storage")}}
    )
    config = {"log": {"level": "warn"}, "storage": {**driver, "delete": {"enabled": True}}}
    with RegistryProcess(config) as process:
        yield process


# -- helpers -----------------------------------------------------------------------------------------------


def remote(registry: RegistryProcess, repository: str, tag: str) -> str:
    return f"docker://{registry.host}/{repository}:{tag}"


def push(source: str, destination: str, *extra: str) -> None:
    skopeo("copy", "--dest-tls-verify=false", *extra, source, destination)


def pull(source: str, destination: str) -> None:
    skopeo("copy", "--src-tls-verify=false", source, destination)


def raw_manifest(reference: str) -> bytes:
    """The manifest exactly as stored (``skopeo inspect --raw``); skopeo prints it without changes."""
    return skopeo("inspect", "--tls-verify=false", "--raw", reference).stdout.encode()


def inspect(reference: str) -> dict[str, t.Any]:
    return t.cast(dict[str, t.Any], json.loads(skopeo("inspect", "--tls-verify=false", reference).stdout))


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def layout_blob(layout: Path, digest: str) -> bytes:
    algorithm, _, encoded = digest.partition(":")
    return (layout / "blobs" / algorithm / encoded).read_bytes()


def served_media_type(registry: RegistryProcess, repository: str, reference: str) -> str:
    response = requests.get(
        f"{registry.url}/v2/{repository}/manifests/{reference}",
        headers={"Accept": f"{OCI_MANIFEST}, {V2S2_MANIFEST}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.headers["Content-Type"]


def referenced_digests(manifest: bytes) -> list[str]:
    document = json.loads(manifest)
    return [document["config"]["digest"], *(layer["digest"] for layer in document["layers"])]


def layout_of(reference: str) -> Path:
    """``oci:<dir>:<tag>`` to ``<dir>``."""
    return Path(reference.removeprefix("oci:").rpartition(":")[0])


# -- skopeo ------------------------------------------------------------------------------------------------


def test_oci_image_round_trip_is_byte_identical(registry: RegistryProcess, tmp_path: Path) -> None:
    source = build_image(tmp_path / "src", layers=3, layer_size=LAYER_SIZE)
    push(source, remote(registry, "test/img", "1"))
    pull(remote(registry, "test/img", "1"), f"oci:{tmp_path / 'back'}:1")

    manifest = raw_manifest(source)
    assert raw_manifest(f"oci:{tmp_path / 'back'}:1") == manifest
    assert raw_manifest(remote(registry, "test/img", "1")) == manifest
    assert served_media_type(registry, "test/img", "1") == OCI_MANIFEST
    for digest in [sha256(manifest), *referenced_digests(manifest)]:
        assert layout_blob(tmp_path / "back", digest) == layout_blob(layout_of(source), digest)


def test_v2s2_image_round_trip_keeps_layers(registry: RegistryProcess, tmp_path: Path) -> None:
    source = build_image(tmp_path / "src", layers=2, layer_size=LAYER_SIZE)
    push(source, remote(registry, "test/img", "v2s2"), "--format", "v2s2")
    stored = raw_manifest(remote(registry, "test/img", "v2s2"))
    assert json.loads(stored)["mediaType"] == V2S2_MANIFEST
    assert served_media_type(registry, "test/img", "v2s2") == V2S2_MANIFEST

    # The dir: transport keeps the manifest as served and names blobs by their hex digest.
    pull(remote(registry, "test/img", "v2s2"), f"dir:{tmp_path / 'back'}")
    assert (tmp_path / "back" / "manifest.json").read_bytes() == stored
    source_layout = layout_of(source)
    source_layers = referenced_digests(raw_manifest(source))[1:]
    assert referenced_digests(stored)[1:] == source_layers
    for digest in source_layers:
        pulled = (tmp_path / "back" / digest.partition(":")[2]).read_bytes()
        assert pulled == layout_blob(source_layout, digest)
        assert sha256(pulled) == digest


def test_inspect_reports_digest_and_layers(registry: RegistryProcess, tmp_path: Path) -> None:
    source = build_image(tmp_path / "src", layers=2, layer_size=LAYER_SIZE)
    push(source, remote(registry, "test/inspect", "1"))

    info = inspect(remote(registry, "test/inspect", "1"))
    manifest = raw_manifest(source)
    assert info["Digest"] == sha256(manifest)
    assert info["Layers"] == referenced_digests(manifest)[1:]
    assert info["Os"] == "linux"
    assert info["Name"] == f"{registry.host}/test/inspect"
    assert "1" in info["RepoTags"]


def test_list_tags(registry: RegistryProcess, tmp_path: Path) -> None:
    source = build_image(tmp_path / "src")
    for tag in ("1", "2", "latest"):
        push(source, remote(registry, "test/tags", tag))

    listed = json.loads(
        skopeo("list-tags", "--tls-verify=false", f"docker://{registry.host}/test/tags").stdout
    )
    assert listed["Repository"] == f"{registry.host}/test/tags"
    assert sorted(listed["Tags"]) == ["1", "2", "latest"]


def test_delete_then_inspect_fails(registry: RegistryProcess, tmp_path: Path) -> None:
    source = build_image(tmp_path / "src")
    push(source, remote(registry, "test/delete", "1"))
    inspect(remote(registry, "test/delete", "1"))

    skopeo("delete", "--tls-verify=false", remote(registry, "test/delete", "1"))
    result = skopeo("inspect", "--tls-verify=false", remote(registry, "test/delete", "1"), check=False)
    assert result.returncode != 0
    assert "manifest unknown" in result.stderr.lower()


def test_pushes_to_two_repositories_share_nothing_visible(registry: RegistryProcess, tmp_path: Path) -> None:
    first = build_image(tmp_path / "first")
    second = build_image(tmp_path / "second")
    push(first, remote(registry, "team/a", "1"))
    push(second, remote(registry, "team/b", "1"))

    assert raw_manifest(remote(registry, "team/a", "1")) == raw_manifest(first)
    assert raw_manifest(remote(registry, "team/b", "1")) == raw_manifest(second)


# -- oras-py -------------------------------------------------------------------------------------------------


def write_random(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def test_oras_push_pull_files(
    registry: RegistryProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = tmp_path / "upload"
    upload.mkdir()
    files = [write_random(upload / "pack.tar.gz", 10_000), write_random(upload / "readme.txt", 17)]
    monkeypatch.chdir(upload)  # oras-py names layers by the paths it is given
    client = oras_client(registry.host)
    target = f"{registry.host}/spectro-packs/archive/demo:1.0.0"

    client.push(files=[f.name for f in files], target=target)
    pulled = client.pull(target=target, outdir=str(tmp_path / "out"))

    assert sorted(Path(p).name for p in pulled) == ["pack.tar.gz", "readme.txt"]
    for original in files:
        assert (tmp_path / "out" / original.name).read_bytes() == original.read_bytes()


def test_oras_chunked_push(
    registry: RegistryProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = write_random(tmp_path / "big.bin", 3 * (1 << 20) + 12_345)
    monkeypatch.chdir(tmp_path)
    client = oras_client(registry.host)
    target = f"{registry.host}/oras/art:chunked"

    client.push(files=[big.name], target=target, do_chunked=True, chunk_size=1 << 20)
    client.pull(target=target, outdir=str(tmp_path / "out"))

    assert (tmp_path / "out" / "big.bin").read_bytes() == big.read_bytes()


def test_oras_get_tags(registry: RegistryProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_random(tmp_path / "artifact.txt", 100)
    monkeypatch.chdir(tmp_path)
    client = oras_client(registry.host)
    for tag in ("v1", "v2"):
        client.push(files=["artifact.txt"], target=f"{registry.host}/oras/tags:{tag}")

    assert sorted(client.get_tags(f"{registry.host}/oras/tags")) == ["v1", "v2"]
