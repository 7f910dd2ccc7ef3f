"""Parent tags (``validation.packs.floatingtags``): version tags, their order, and the registry moving
``1.28.x`` and ``1.x`` as versions are pushed and deleted over HTTP."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from conformance.client import RegistryClient
from conformance.client import error_codes
from emulator.packs import is_parent_tag
from emulator.packs import parent_tags
from emulator.packs import parse_tag
from emulator.packs.parenttags import choose
from pax_registry_fixtures.factory import RegistryFactory
from pax_registry_fixtures.packs import pack_dir
from pax_registry_fixtures.server import RegistryServer
from tests.packhelpers import REPOSITORY
from tests.packhelpers import client_fixture  # noqa: F401 - a fixture
from tests.packhelpers import registry_fixture  # noqa: F401 - a fixture

# -- versions ---------------------------------------------------------------------------------------


def test_parse_tag() -> None:
    version = parse_tag("lts__14.4.3")
    assert version is not None
    assert (version.group, version.major, version.minor, version.patch, version.label) == (
        "lts",
        14,
        4,
        3,
        "14.4.3",
    )
    pre = parse_tag("1.29.0-rc.1")
    assert pre is not None and pre.prerelease == ("rc", "1") and not pre.is_release
    for not_a_version in ("latest", "1.28.x", "1.x", "1.28", "v1.2.3", "1.2.3.4", "lts__", "1.2.3-"):
        assert parse_tag(not_a_version) is None, not_a_version


def test_parent_tags() -> None:
    assert parent_tags("14.4.3") == ("14.4.x", "14.x")
    assert parent_tags("lts__14.4.3") == ("lts__14.4.x", "lts__14.x")
    assert parent_tags("22.04.1") == ("22.4.x", "22.x")  # as the docs' LTS__22.4.x reads
    assert parent_tags("1.29.0-rc.1") == ()
    assert parent_tags("latest") == ()


def test_is_parent_tag() -> None:
    for parent in ("1.x", "1.28.x", "lts__14.x", "LTS__22.4.x"):
        assert is_parent_tag(parent), parent
    for other in ("1.28.3", "latest", "x", "1.28.3.x", "lts__x"):
        assert not is_parent_tag(other), other


def test_semantic_version_order() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
    ]
    ordered += ["1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0"]
    versions = [parse_tag(tag) for tag in reversed(ordered)]
    assert [v.tag for v in sorted((v for v in versions if v), key=lambda v: v.sort_key())] == ordered


def test_choose_takes_the_highest_release_per_parent_and_group() -> None:
    tags = ["1.27.1", "1.28.0", "1.28.3", "1.29.0-rc.1", "1.28.x", "latest", "lts__1.28.0", "lts__1.9.9"]
    assert choose(tags) == {
        "1.27.x": "1.27.1",
        "1.28.x": "1.28.3",
        "1.x": "1.28.3",
        "lts__1.28.x": "lts__1.28.0",
        "lts__1.9.x": "lts__1.9.9",
        "lts__1.x": "lts__1.28.0",
    }


# -- over HTTP --------------------------------------------------------------------------------------


class Packs:
    """Pushes versions of one pack and reads its tags back."""

    def __init__(self, registry: RegistryServer, client: RegistryClient, workdir: Path) -> None:
        self.registry = registry
        self.client = client
        self.workdir = workdir
        self.digests: dict[str, str] = {}

    def push(self, version: str, *, force: bool = False) -> str:
        folder = pack_dir(self.workdir / version / str(len(self.digests)), version=version)
        self.digests[version] = self.registry.push_pack(folder, force=force).digest
        return self.digests[version]

    def tags(self) -> list[str]:
        response = self.client.get(f"/v2/{REPOSITORY}/tags/list")
        assert response.status_code == 200, response.text
        return sorted(response.json()["tags"] or [])

    def target(self, tag: str) -> str | None:
        response = self.client.head(
            f"/v2/{REPOSITORY}/manifests/{tag}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        return response.headers["Docker-Content-Digest"] if response.status_code == 200 else None

    def delete(self, reference: str) -> None:
        response = self.client.delete_manifest(REPOSITORY, reference)
        assert response.status_code == 202, response.text


@pytest.fixture
def packs(registry: RegistryServer, client: RegistryClient, tmp_path: Path) -> Packs:
    return Packs(registry, client, tmp_path)


@pytest.mark.parametrize("storage", ["inmemory", "filesystem", "s3"])
def test_the_issues_sequence(pax_registry_factory: RegistryFactory, tmp_path: Path, storage: str) -> None:
    registry = pax_registry_factory(storage=storage, packs=True, delete=True)
    client = RegistryClient(registry.url)
    packs = Packs(registry, client, tmp_path)
    for version in ("1.27.1", "1.28.0", "1.28.3", "1.29.0-rc.1"):
        packs.push(version)

    assert packs.tags() == ["1.27.1", "1.27.x", "1.28.0", "1.28.3", "1.28.x", "1.29.0-rc.1", "1.x"]
    assert packs.target("1.27.x") == packs.digests["1.27.1"]
    assert packs.target("1.28.x") == packs.digests["1.28.3"]
    assert packs.target("1.x") == packs.digests["1.28.3"]  # not the pre-release

    packs.delete(packs.digests["1.28.3"])  # the version, by digest

    assert packs.target("1.28.x") == packs.digests["1.28.0"]
    assert packs.target("1.x") == packs.digests["1.28.0"]
    assert packs.tags() == ["1.27.1", "1.27.x", "1.28.0", "1.28.x", "1.29.0-rc.1", "1.x"]

    packs.delete("1.28.0")  # a version tag

    assert packs.target("1.28.x") is None
    assert packs.target("1.x") == packs.digests["1.27.1"]

    packs.delete(packs.digests["1.27.1"])

    assert packs.tags() == ["1.29.0-rc.1"]  # no release left, no parent
    client.close()


def test_an_older_version_pushed_later_leaves_the_parent(packs: Packs) -> None:
    packs.push("2.1.5")
    packs.push("2.1.2")
    assert packs.target("2.1.x") == packs.digests["2.1.5"]
    assert packs.target("2.x") == packs.digests["2.1.5"]


def test_replacing_a_version_moves_its_parents(packs: Packs) -> None:
    first = packs.push("3.0.0")
    second = packs.push("3.0.0", force=True)
    assert first != second
    assert packs.target("3.0.x") == second


def test_a_pre_release_alone_gets_no_parent(packs: Packs) -> None:
    packs.push("4.0.0-rc.1")
    assert packs.tags() == ["4.0.0-rc.1"]


def test_group_tags_have_their_own_parents(packs: Packs, client: RegistryClient) -> None:
    packs.push("14.4.5")
    packs.push("14.4.3")
    # `spectro pack tag add pax-demo:14.4.3 14.4.3 -g lts`, over the registry API: the same manifest.
    manifest = client.get(
        f"/v2/{REPOSITORY}/manifests/14.4.3", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
    )
    response = client.put(
        f"/v2/{REPOSITORY}/manifests/lts__14.4.3",
        headers={"Content-Type": manifest.headers["Content-Type"]},
        data=manifest.content,
    )
    assert response.status_code == 201, response.text

    assert packs.target("lts__14.4.x") == packs.digests["14.4.3"]
    assert packs.target("lts__14.x") == packs.digests["14.4.3"]
    assert packs.target("14.4.x") == packs.digests["14.4.5"]


@pytest.mark.parametrize("parent", ["1.28.x", "1.x", "lts__1.x"])
def test_a_client_cannot_push_or_delete_a_parent_tag(
    packs: Packs, client: RegistryClient, parent: str
) -> None:
    packs.push("1.28.3")
    manifest = client.get(
        f"/v2/{REPOSITORY}/manifests/1.28.3", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
    )

    pushed = client.put(
        f"/v2/{REPOSITORY}/manifests/{parent}",
        headers={"Content-Type": manifest.headers["Content-Type"]},
        data=manifest.content,
    )
    deleted = client.delete_manifest(REPOSITORY, parent)

    assert (pushed.status_code, error_codes(pushed)) == (400, ["TAG_INVALID"])
    assert (deleted.status_code, error_codes(deleted)) == (400, ["TAG_INVALID"])
    assert "parent tag" in pushed.json()["errors"][0]["message"]
    assert packs.target("1.28.x") == packs.digests["1.28.3"]


def test_concurrent_pushes_leave_the_parent_at_the_highest(packs: Packs, tmp_path: Path) -> None:
    versions = [f"5.0.{n}" for n in range(8)]
    folders = {v: pack_dir(tmp_path / "concurrent" / v, version=v) for v in versions}
    with concurrent.futures.ThreadPoolExecutor(len(versions)) as pool:
        pushed = dict(
            zip(
                versions,
                pool.map(lambda v: packs.registry.push_pack(folders[v]).digest, versions),
                strict=True,
            )
        )
    assert packs.target("5.0.x") == pushed["5.0.7"]
    assert packs.target("5.x") == pushed["5.0.7"]


def test_without_floating_tags_no_parent_is_made(
    pax_registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    registry = pax_registry_factory({"validation": {"packs": {"enabled": True}}})
    registry.push_pack(pack_dir(tmp_path, version="6.1.0"))
    client = RegistryClient(registry.url)
    assert client.get(f"/v2/{REPOSITORY}/tags/list").json()["tags"] == ["6.1.0"]
    client.close()
