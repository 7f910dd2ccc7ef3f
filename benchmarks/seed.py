"""Content for the read scenarios, written once in distribution's storage layout and copied to both roots.

Writing 10,000 tags or repositories through either server's API would take longer than the benchmark
itself; the emulator's storage layer writes the very files a push would (distribution reads them the same
way: see ``tests/test_distribution_compat.py``), and ``cp -a`` gives each server its own copy.
"""

from __future__ import annotations

import json
import subprocess
import typing as t
from pathlib import Path

from pax_registry_fixtures.seeding import OCI_MANIFEST
from pax_registry_fixtures.seeding import image_manifest

MANIFEST_REPOSITORY = "bench/manifest"
MANIFEST_TAG = "latest"
TAGS_REPOSITORY = "bench/tags"
CATALOG_PREFIX = "bench/catalog/repo-"
#: The tag that :func:`distinct_repository`'s manifests are filed under, before a five-digit number.
DISTINCT_TAG_PREFIX = "m-"


def tag_list_repository(size: int) -> str:
    """The repository of ``size`` tags that the rows of tag lists right after a push add to."""
    return f"bench/taglist-{size}"


def distinct_repository(count: int) -> str:
    """The repository of ``count`` distinct manifests, one per tag ``m-00000``, ``m-00001``, ..."""
    return f"bench/distinct-{count}"


def seed(
    root: Path,
    *,
    tags: int,
    repositories: int,
    tag_lists: t.Iterable[int] = (),
    distinct: t.Iterable[int] = (),
) -> str:
    """Write the manifest repository, ``tags`` tags in one repository and ``repositories`` more
    repositories under ``root``, a repository of each size in ``tag_lists`` (:func:`tag_list_repository`)
    and of each count in ``distinct`` (:func:`distinct_repository`); returns the manifest's digest."""
    from emulator.drivers.filesystem import FileSystemDriver
    from emulator.storage.cache import NoCache
    from emulator.storage.registry import Registry

    registry = Registry(FileSystemDriver(str(root)), NoCache())
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
    layer = b"benchmark layer\n" * 64
    config_digest = registry.blobs.put(config)
    layer_digest = registry.blobs.put(layer)
    manifest = image_manifest(config, [layer])

    def repository(name: str, tag_names: t.Iterable[str]) -> str:
        registry.blobs.link(name, config_digest)
        registry.blobs.link(name, layer_digest)
        digest, _ = registry.put_manifest(name, "latest", manifest, OCI_MANIFEST)
        for tag in tag_names:
            registry.tags.tag(name, tag, digest)
        return str(digest)

    digest = repository(MANIFEST_REPOSITORY, [MANIFEST_TAG])
    repository(TAGS_REPOSITORY, (f"tag-{n:05d}" for n in range(tags - 1)))  # plus "latest"
    for n in range(repositories - 2):  # the two above are in the catalog too
        repository(f"{CATALOG_PREFIX}{n:05d}", ())
    for size in tag_lists:
        repository(tag_list_repository(size), (f"tag-{n:05d}" for n in range(size - 1)))
    for count in distinct:
        name = distinct_repository(count)
        registry.blobs.link(name, config_digest)
        registry.blobs.link(name, layer_digest)
        for n in range(count):
            # An annotation apiece makes each manifest, and so its digest and its blob, its own.
            content = image_manifest(config, [layer], annotations={"bench.number": str(n)})
            registry.put_manifest(name, f"{DISTINCT_TAG_PREFIX}{n:05d}", content, OCI_MANIFEST)
    return digest


def copy_tree(source: Path, destination: Path) -> None:
    """``cp -a source/. destination``: far faster than :func:`shutil.copytree` for 100,000 small files."""
    destination.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", f"{source}/.", str(destination)], check=True)
