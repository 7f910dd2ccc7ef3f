"""The storage layer below the API: the on-disk layout and the descriptor cache."""

from __future__ import annotations

import pathlib

import pytest

from emulator.reference import Digest
from emulator.storage import paths
from emulator.storage.cache import BlobDescriptorCache
from emulator.storage.cache import Descriptor

HEX = "ab" + "0" * 62
DIGEST = Digest("sha256", HEX)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (paths.blob_data(DIGEST), f"/docker/registry/v2/blobs/sha256/ab/{HEX}/data"),
        (
            paths.layer_link("team/app", DIGEST),
            f"/docker/registry/v2/repositories/team/app/_layers/sha256/{HEX}/link",
        ),
        (
            paths.manifest_revision_link("team/app", DIGEST),
            f"/docker/registry/v2/repositories/team/app/_manifests/revisions/sha256/{HEX}/link",
        ),
        (
            paths.tag_current_link("app", "v1"),
            "/docker/registry/v2/repositories/app/_manifests/tags/v1/current/link",
        ),
        (
            paths.tag_index_link("app", "v1", DIGEST),
            f"/docker/registry/v2/repositories/app/_manifests/tags/v1/index/sha256/{HEX}/link",
        ),
        (paths.upload_data("app", "u-1"), "/docker/registry/v2/repositories/app/_uploads/u-1/data"),
        (
            paths.upload_started_at("app", "u-1"),
            "/docker/registry/v2/repositories/app/_uploads/u-1/startedat",
        ),
    ],
)
def test_paths_are_distributions_layout(path: str, expected: str) -> None:
    assert path == expected


def test_only_paths_knows_the_layout() -> None:
    package = pathlib.Path(__file__).resolve().parents[1] / "emulator"
    offenders = [
        str(source.relative_to(package))
        for source in package.rglob("*.py")
        if source.name != "paths.py"
        and any(
            name in source.read_text() for name in ('"_manifests', '"_uploads', '"_layers', "/_manifests/")
        )
    ]
    assert offenders == []


def test_descriptor_cache_is_a_bounded_lru() -> None:
    cache = BlobDescriptorCache(size=2)
    first, second, third = (Digest("sha256", f"{n:064x}") for n in range(3))
    cache.set(Descriptor(first, 1))
    cache.set(Descriptor(second, 2))
    assert cache.get(first) is not None  # now the most recently used
    cache.set(Descriptor(third, 3))
    assert len(cache) == 2
    assert cache.get(second) is None
    assert cache.get(first) == Descriptor(first, 1)
    assert cache.get(third) == Descriptor(third, 3)


def test_descriptor_cache_keeps_repositories_apart() -> None:
    cache = BlobDescriptorCache()
    cache.set(Descriptor(DIGEST, 5), "team/app")
    assert cache.get(DIGEST, "team/app") == Descriptor(DIGEST, 5)
    assert cache.get(DIGEST, "other") is None
    assert cache.get(DIGEST) is None
    cache.clear(DIGEST, "team/app")
    assert cache.get(DIGEST, "team/app") is None
