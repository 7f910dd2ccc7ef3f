"""The pack fixtures: ``pack_archive``/``pack_dir``, the ``pax_pack_archive`` fixture, ``push_pack`` on the
registry handles, and ``pax_registry_factory(packs=True)``."""

from __future__ import annotations

import json
import struct
import tarfile
import typing as t
import zlib
from pathlib import Path

import pytest

from emulator.ociclient import RegistryError
from emulator.packcli import PackError
from emulator.packs import check
from pax_registry_fixtures import LiveRegistry
from pax_registry_fixtures import RegistryFactory
from pax_registry_fixtures import pack_archive
from pax_registry_fixtures import pack_dir
from pax_registry_fixtures.distribution import DistributionServer
from pax_registry_fixtures.packs import logo_png
from tests.clients import oras_client

REPOSITORY = "spectro-packs/archive/nginx"


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The chunks of a PNG, each checked against its CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append((kind, body))
        offset += 12 + length
    return chunks


def test_the_logo_is_a_real_png() -> None:
    chunks = png_chunks(logo_png(4))

    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (width, height, depth, colour) == (4, 4, 8, 2)
    # Four scanlines: a filter byte and four RGB pixels each.
    assert len(zlib.decompress(chunks[1][1])) == 4 * (1 + 4 * 3)


def test_pack_archive_is_a_valid_pack_under_one_top_directory(tmp_path: Path) -> None:
    archive = pack_archive(tmp_path, name="nginx", version="1.28.3")

    assert archive == tmp_path / "nginx-1.28.3.tar.gz"
    assert check(archive) == []
    with tarfile.open(archive, "r:gz") as opened:
        files = sorted(member.name for member in opened.getmembers() if member.isfile())
        document = json.load(t.cast("t.IO[bytes]", opened.extractfile("nginx-1.28.3/pack.json")))
    assert files == [
        f"nginx-1.28.3/{name}"
        for name in ("README.md", "logo.png", "manifests/x.yaml", "pack.json", "values.yaml")
    ]
    assert (document["name"], document["version"], document["layer"]) == ("nginx", "1.28.3", "addon")
    assert document["kubeManifests"] == ["manifests/x.yaml"]


def test_overrides_set_and_remove_pack_json_fields(tmp_path: Path) -> None:
    folder = pack_dir(tmp_path, name="os-pack", layer="os", displayName=None, eol="2030-01-01")

    document = json.loads((folder / "pack.json").read_text())

    assert folder.name == "os-pack-1.0.0"
    assert "displayName" not in document
    assert (document["layer"], document["eol"]) == ("os", "2030-01-01")
    assert [(problem.path, problem.rule) for problem in check(folder)] == [("$.displayName", "required")]


def test_the_fixture_makes_a_new_archive_per_call(pax_pack_archive: t.Callable[..., Path]) -> None:
    first = pax_pack_archive(version="1.0.0")
    second = pax_pack_archive(version="1.0.0")

    assert first != second
    assert first.name == second.name == "pax-demo-1.0.0.tar.gz"
    assert check(first) == check(second) == []


def test_packs_true_turns_on_validation_and_parent_tags(pax_registry_factory: RegistryFactory) -> None:
    plain = pax_registry_factory()
    packs = pax_registry_factory(packs=True)

    assert not plain.config.validation.packs.enabled
    assert (packs.config.validation.packs.enabled, packs.config.validation.packs.floatingtags) == (True, True)


def test_push_pack_returns_the_digests_and_the_registry_keeps_parent_tags(
    pax_registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    registry = pax_registry_factory(packs=True)
    archive = pack_archive(tmp_path, name="nginx", version="1.28.3")

    pushed = registry.push_pack(archive, prefix="team")

    repository = f"team/{REPOSITORY}"
    assert (pushed.repository, pushed.version, pushed.reference) == (
        repository,
        "1.28.3",
        f"{repository}:1.28.3",
    )
    stored = registry.registry.get_manifest(repository, "1.28.3")
    assert str(stored.digest) == pushed.digest
    document = json.loads(stored.content)
    assert document["config"]["digest"] == pushed.config
    assert [layer["digest"] for layer in document["layers"]] == [pushed.layer]
    for parent in ("1.28.x", "1.x"):
        assert str(registry.registry.get_manifest(repository, parent).digest) == pushed.digest
    registry.assert_request_made("PUT", f"/v2/{repository}/manifests/1.28.3", status=201)


def test_push_pack_pushes_a_directory_and_oras_pulls_it(
    pax_registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    registry = pax_registry_factory(packs=True)
    folder = pack_dir(tmp_path / "src", name="nginx", version="2.0.0")

    pushed = registry.push_pack(folder)

    pulled = oras_client(registry.host).pull(
        target=f"{registry.host}/{pushed.reference}", outdir=str(tmp_path / "out")
    )
    assert [Path(path).name for path in pulled] == ["nginx-2.0.0.tar.gz"]
    with tarfile.open(pulled[0], "r:gz") as opened:
        logo = opened.extractfile("nginx-2.0.0/logo.png")
        assert logo is not None
        assert logo.read() == (folder / "logo.png").read_bytes()


def test_a_bad_pack_is_refused_and_a_version_is_not_replaced_without_force(
    pax_registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    registry = pax_registry_factory(packs=True)
    bad = pack_archive(tmp_path / "bad", name="nginx", version="1.0.0", layer="database")

    with pytest.raises(RegistryError) as refused:
        registry.push_pack(bad)

    assert (refused.value.status, refused.value.codes) == (400, ("MANIFEST_INVALID",))
    assert not registry.registry.manifest_exists(REPOSITORY, "1.0.0")
    good = registry.push_pack(pack_archive(tmp_path / "good", name="nginx", version="1.0.0"))
    changed = pack_archive(tmp_path / "changed", name="nginx", version="1.0.0", displayName="Changed")
    with pytest.raises(PackError, match="exists already"):
        registry.push_pack(changed)
    assert registry.push_pack(changed, force=True).digest != good.digest


def test_push_pack_uses_the_handles_credentials_and_ca(
    pax_registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    registry = pax_registry_factory(packs=True, auth=True, tls=True)

    pushed = registry.push_pack(pack_archive(tmp_path, name="nginx", version="1.0.0"))

    assert registry.registry.manifest_exists(REPOSITORY, pushed.digest)


@pytest.mark.needs("docker-registry")
def test_push_pack_on_a_live_registry(tmp_path: Path) -> None:
    archive = pack_archive(tmp_path, name="nginx", version="1.0.0")
    with DistributionServer() as server:
        live = LiveRegistry(server.url)

        pushed = live.push_pack(archive)

        pulled = oras_client(server.host).pull(
            target=f"{server.host}/{pushed.reference}", outdir=str(tmp_path / "out")
        )
        assert Path(pulled[0]).read_bytes() == archive.read_bytes()
