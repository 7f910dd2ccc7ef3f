"""Validation on push (``validation.packs.enabled``): packs pushed over HTTP under
``spectro-packs/archive/<name>:<version>``, good ones with oras-py, bad ones refused with
``MANIFEST_INVALID`` before anything of the manifest is stored."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import typing as t
from pathlib import Path

import pytest

from conformance.client import RegistryClient
from conformance.client import error_codes
from conformance.data import Blob
from conformance.data import Manifest
from emulator.packs import Limits
from emulator.packs import hooks
from pax_registry_fixtures.factory import RegistryFactory
from pax_registry_fixtures.packs import pack_archive
from pax_registry_fixtures.packs import pack_dir
from pax_registry_fixtures.server import RegistryServer
from tests.clients import oras_client
from tests.packhelpers import OCI_MANIFEST
from tests.packhelpers import ORAS_CONFIG
from tests.packhelpers import ORAS_LAYER
from tests.packhelpers import REPOSITORY
from tests.packhelpers import TITLE
from tests.packhelpers import archive_of
from tests.packhelpers import assert_nothing_stored
from tests.packhelpers import client_fixture  # noqa: F401 - a fixture
from tests.packhelpers import manifest_for
from tests.packhelpers import problems_of
from tests.packhelpers import push_archive
from tests.packhelpers import registry_fixture  # noqa: F401 - a fixture
from tests.test_pack_model import SCHEMA_CASES

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


# -- good packs -------------------------------------------------------------------------------------


def test_oras_pushes_a_valid_pack_and_pulls_it_back(
    registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = pack_archive(tmp_path, version="1.28.3")
    monkeypatch.chdir(archive.parent)  # oras-py titles layers with the paths it is given
    oras = oras_client(registry.host)
    target = f"{registry.host}/{REPOSITORY}:1.28.3"

    oras.push(files=[archive.name], target=target)
    pulled = oras.pull(target=target, outdir=str(tmp_path / "out"))

    assert [Path(p).name for p in pulled] == [archive.name]
    assert (tmp_path / "out" / archive.name).read_bytes() == archive.read_bytes()
    assert set(oras.get_tags(f"{registry.host}/{REPOSITORY}")) == {"1.28.3", "1.28.x", "1.x"}


def test_oras_push_of_a_bad_pack_fails_and_leaves_no_tag(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = pack_archive(tmp_path, layer="database")
    monkeypatch.chdir(archive.parent)

    with pytest.raises(ValueError):
        oras_client(registry.host).push(files=[archive.name], target=f"{registry.host}/{REPOSITORY}:1.0.0")

    assert_nothing_stored(registry, client, REPOSITORY, "1.0.0")


def test_a_group_tag_carries_the_packs_version(client: RegistryClient, tmp_path: Path) -> None:
    data = archive_of(pack_dir(tmp_path, version="14.4.3"))
    assert push_archive(client, REPOSITORY, "lts__14.4.3", data).status_code == 201


def test_a_prefix_before_spectro_packs_is_fine(client: RegistryClient, tmp_path: Path) -> None:
    data = archive_of(pack_dir(tmp_path))
    assert push_archive(client, f"team/base/{REPOSITORY}", "1.0.0", data).status_code == 201
    bad = archive_of(pack_dir(tmp_path / "bad", layer="db"))
    assert problems_of(push_archive(client, f"team/base/{REPOSITORY}", "1.0.0", bad)) == {("$.layer", "enum")}


def test_an_untitled_single_layer_is_the_archive(client: RegistryClient, tmp_path: Path) -> None:
    layer = Blob(archive_of(pack_dir(tmp_path, layer="db")), "application/vnd.oci.image.layer.v1.tar+gzip")
    config = Blob(b"{}", ORAS_CONFIG)
    for blob in (layer, config):
        client.push_blob(REPOSITORY, blob)
    response = client.push_manifest(REPOSITORY, "1.0.0", manifest_for([layer.descriptor()], config))
    assert problems_of(response) == {("$.layer", "enum")}


# -- what is refused --------------------------------------------------------------------------------


def with_members(folder: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=folder.name)
        for member, data in members:
            if data is not None:
                member.size = len(data)
            archive.addfile(member, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def without(folder: Path, name: str) -> Path:
    (folder / name).unlink()
    return folder


def overridden(folder: Path, **fields: t.Any) -> Path:
    document = {**json.loads((folder / "pack.json").read_text()), **fields}
    (folder / "pack.json").write_text(json.dumps(document))
    return folder


BadCase = tuple[t.Callable[[Path], bytes], set[tuple[str, str]]]
TOP = "pax-demo-1.0.0"

BAD_PACKS: dict[str, BadCase] = {
    "layer not in the enum": (lambda f: archive_of(overridden(f, layer="database")), {("$.layer", "enum")}),
    "name empty": (lambda f: archive_of(overridden(f, name="")), {("$.name", "minLength")}),
    "cloud type unknown": (
        lambda f: archive_of(overridden(f, cloudTypes=["mars"])),
        {("$.cloudTypes[0]", "enum")},
    ),
    "dependency type unknown": (
        lambda f: archive_of(
            overridden(f, constraints={"dependencies": [{"packName": "x", "type": "maybe"}]})
        ),
        {("$.constraints.dependencies[0].type", "enum")},
    ),
    "manifest named but absent": (
        lambda f: archive_of(overridden(f, kubeManifests=["manifests/gone.yaml"])),
        {("$.kubeManifests[0]", "exists")},
    ),
    "no pack.json": (lambda f: archive_of(without(f, "pack.json")), {("pack.json", "missing-file")}),
    "no values.yaml": (lambda f: archive_of(without(f, "values.yaml")), {("values.yaml", "missing-file")}),
    "no logo.png": (lambda f: archive_of(without(f, "logo.png")), {("logo.png", "missing-file")}),
    "not gzip": (lambda f: b"plain bytes, not an archive" * 40, {("archive", "gzip")}),
    "not tar": (lambda f: gzip.compress(b"gzipped text, not a tar" * 40), {("archive", "tar")}),
    "cut short": (lambda f: archive_of(f)[:200], {("archive", "gzip")}),
    "absolute path": (
        lambda f: with_members(f, (member("/tmp/pax-escaped.txt"), b"x")),
        {("/tmp/pax-escaped.txt", "absolute-path")},
    ),
    "parent path": (
        lambda f: with_members(f, (member(f"{TOP}/../../escaped.txt"), b"x")),
        {(f"{TOP}/../../escaped.txt", "parent-path")},
    ),
    "symlink out": (
        lambda f: with_members(f, (member(f"{TOP}/leak", tarfile.SYMTYPE, "../../etc/passwd"), None)),
        {("leak", "link-outside")},
    ),
    "hard link out": (
        lambda f: with_members(f, (member(f"{TOP}/leak", tarfile.LNKTYPE, "etc/passwd"), None)),
        {("leak", "link-outside")},
    ),
    "device file": (
        lambda f: with_members(f, (member(f"{TOP}/sda", tarfile.BLKTYPE), None)),
        {("sda", "special-file")},
    ),
    "over the size cap": (
        lambda f: with_members(f, (member(f"{TOP}/noise.bin"), os.urandom(96 * 1024))),
        {("archive", "size")},
    ),
    "zip bomb": (
        lambda f: with_members(f, *[(member(f"{TOP}/zeros{n}.bin"), bytes(512 * 1024)) for n in range(8)]),
        {("archive", "uncompressed-size")},
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_PACKS))
def test_a_bad_pack_is_refused_and_nothing_is_tagged(
    registry: RegistryServer,
    client: RegistryClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    # Small caps, so the size cases need no large uploads; the server runs in this process.
    monkeypatch.setattr(hooks, "LIMITS", Limits(compressed=64 * 1024, uncompressed=2 * 1024 * 1024))
    build, expected = BAD_PACKS[case]
    response = push_archive(client, REPOSITORY, "1.0.0", build(pack_dir(tmp_path)))
    assert problems_of(response) == expected
    assert_nothing_stored(registry, client, REPOSITORY, "1.0.0")
    assert not Path("/tmp/pax-escaped.txt").exists()


@pytest.mark.parametrize(("overrides", "expected"), SCHEMA_CASES, ids=[str(c[1]) for c in SCHEMA_CASES])
def test_each_schema_rule_refuses_the_push_and_nothing_is_tagged(
    registry: RegistryServer,
    client: RegistryClient,
    tmp_path: Path,
    overrides: dict[str, t.Any],
    expected: tuple[str, str],
) -> None:
    folder = pack_dir(tmp_path)
    document = {**json.loads((folder / "pack.json").read_text()), **overrides}
    (folder / "pack.json").write_text(json.dumps({k: v for k, v in document.items() if v is not None}))
    response = push_archive(client, REPOSITORY, "1.0.0", archive_of(folder))
    # A missing or empty name or version also breaks the repository and tag rules: the rule under test
    # must be among the problems.
    assert expected in problems_of(response)
    assert_nothing_stored(registry, client, REPOSITORY, "1.0.0")


def test_every_problem_is_in_the_detail(client: RegistryClient, tmp_path: Path) -> None:
    folder = overridden(pack_dir(tmp_path), name="", layer="db", cloudTypes=["mars"])
    (folder / "logo.png").unlink()
    problems = problems_of(push_archive(client, REPOSITORY, "1.0.0", archive_of(folder)))
    assert problems == {
        ("$.name", "minLength"),
        ("$.layer", "enum"),
        ("$.cloudTypes[0]", "enum"),
        ("logo.png", "missing-file"),
    }


def test_the_repository_must_be_the_packs_name(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path
) -> None:
    data = archive_of(pack_dir(tmp_path, name="other"))
    assert problems_of(push_archive(client, REPOSITORY, "1.0.0", data)) == {("$.name", "repository")}
    assert_nothing_stored(registry, client, REPOSITORY, "1.0.0")


def test_the_tag_must_be_the_packs_version(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path
) -> None:
    data = archive_of(pack_dir(tmp_path, version="1.0.0"))
    assert problems_of(push_archive(client, REPOSITORY, "2.0.0", data)) == {("$.version", "tag")}
    assert problems_of(push_archive(client, REPOSITORY, "lts__2.0.0", data)) == {("$.version", "tag")}
    assert_nothing_stored(registry, client, REPOSITORY, "2.0.0")


def test_a_bad_pack_pushed_by_digest_is_refused_too(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path
) -> None:
    data = archive_of(pack_dir(tmp_path, layer="db"))
    assert problems_of(push_archive(client, REPOSITORY, "@digest", data)) == {("$.layer", "enum")}
    assert registry.registry.manifests.digests(REPOSITORY) == []


def test_a_pack_manifest_has_one_archive_layer(client: RegistryClient, tmp_path: Path) -> None:
    config = Blob(b"{}", ORAS_CONFIG)
    layers = [Blob(b"one", ORAS_LAYER), Blob(b"two", ORAS_LAYER)]
    for blob in (config, *layers):
        client.push_blob(REPOSITORY, blob)
    manifest = manifest_for([b.descriptor(annotations={TITLE: "x.txt"}) for b in layers], config)
    assert problems_of(client.push_manifest(REPOSITORY, "1.0.0", manifest)) == {("manifest", "pack-manifest")}


def test_an_index_is_not_a_pack(client: RegistryClient, tmp_path: Path) -> None:
    child = Manifest(
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode(), OCI_INDEX
    )
    assert problems_of(client.push_manifest(REPOSITORY, "1.0.0", child)) == {("manifest", "pack-manifest")}


def test_a_missing_layer_gets_storages_own_error(client: RegistryClient, tmp_path: Path) -> None:
    config = Blob(b"{}", ORAS_CONFIG)
    client.push_blob(REPOSITORY, config)
    layer = Blob(archive_of(pack_dir(tmp_path)), ORAS_LAYER)  # never uploaded
    response = client.push_manifest(REPOSITORY, "1.0.0", manifest_for([layer.descriptor()], config))
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]


# -- where validation does not apply ----------------------------------------------------------------


def test_an_artifact_attached_to_a_pack_is_not_a_pack(client: RegistryClient, tmp_path: Path) -> None:
    good = archive_of(pack_dir(tmp_path))
    assert push_archive(client, REPOSITORY, "1.0.0", good).status_code == 201
    subject = client.head(f"/v2/{REPOSITORY}/manifests/1.0.0", headers={"Accept": OCI_MANIFEST})
    config = Blob(b"{}", ORAS_CONFIG)
    signature = Blob(b"a signature, not a pack", ORAS_LAYER)
    for blob in (config, signature):
        client.push_blob(REPOSITORY, blob)
    document = json.loads(manifest_for([signature.descriptor()], config).content)
    document["subject"] = {
        "mediaType": OCI_MANIFEST,
        "digest": subject.headers["Docker-Content-Digest"],
        "size": int(subject.headers["Content-Length"]),
    }
    referrer = Manifest(json.dumps(document).encode(), OCI_MANIFEST)
    assert client.push_manifest(REPOSITORY, referrer.digest, referrer).status_code == 201


@pytest.mark.parametrize("storage", ["filesystem", "s3"])
def test_the_archive_is_read_from_any_driver(
    pax_registry_factory: RegistryFactory, tmp_path: Path, storage: str
) -> None:
    registry = pax_registry_factory(storage=storage, packs=True)
    client = RegistryClient(registry.url)
    good = archive_of(pack_dir(tmp_path / "good"))
    bad = archive_of(pack_dir(tmp_path / "bad", layer="db", version="1.0.1"))
    assert push_archive(client, REPOSITORY, "1.0.0", good).status_code == 201
    assert problems_of(push_archive(client, REPOSITORY, "1.0.1", bad)) == {("$.layer", "enum")}
    client.close()


def test_outside_spectro_packs_archive_nothing_is_checked(client: RegistryClient, tmp_path: Path) -> None:
    data = archive_of(pack_dir(tmp_path, layer="db"))
    assert push_archive(client, "plain/pax-demo", "1.0.0", data).status_code == 201


def test_with_validation_off_a_bad_pack_is_stored(
    pax_registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    registry = pax_registry_factory()
    client = RegistryClient(registry.url)
    data = archive_of(pack_dir(tmp_path, layer="db"))
    assert push_archive(client, REPOSITORY, "1.0.0", data).status_code == 201
    client.close()
