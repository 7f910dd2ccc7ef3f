"""Parent tags (``1.28.x``, ``1.x``, ``lts__14.x``): kept pointing at the highest release below them.

After every version pushed or deleted in a pack repository, :func:`relink` recomputes all the
repository's parent tags from its version tags: each points at the manifest of the highest release
it covers (see :mod:`~emulator.packs.versions` for the order), and one that covers no release any more
is deleted. Recomputing everything, rather than moving the one parent a push touches, makes the result
depend only on the tags present, so a missed or failed update is repaired by the next one.

Within one process, updates of a repository are serialised by a lock, so two concurrent pushes
cannot leave a parent at the lower version: each recomputation starts after the previous one ended
and sees every version tag written before it. Across processes (two emulators on one storage) there is
no lock: two recomputations may interleave and the last writer wins, possibly with a stale choice;
the next push or delete in that repository puts it right.
"""

from __future__ import annotations

import contextlib
import threading
import typing as t
import zlib

from ..reference import Digest
from ..storage.errors import ManifestUnknown
from ..storage.errors import NameUnknown
from .versions import TagVersion
from .versions import is_parent_tag
from .versions import parse_tag

if t.TYPE_CHECKING:
    from ..storage.registry import Registry

#: Repositories share this many locks (by a hash of their name): bounded memory for any number.
_STRIPES = tuple(threading.Lock() for _ in range(64))


def repository_lock(name: str) -> threading.Lock:
    """The lock serialising parent-tag updates of the repository ``name`` in this process."""
    return _STRIPES[zlib.crc32(name.encode()) % len(_STRIPES)]


def choose(tags: t.Iterable[str]) -> dict[str, str]:
    """Each parent tag the given tags call for, with the version tag it points at."""
    best: dict[str, TagVersion] = {}
    for tag in tags:
        if is_parent_tag(tag):
            continue
        version = parse_tag(tag)
        if version is None:
            continue
        for parent in version.parents():
            known = best.get(parent)
            # Equal versions (1.02.0 and 1.2.0) are told apart by the tag, so the choice is stable.
            if known is None or (version.sort_key(), version.tag) > (known.sort_key(), known.tag):
                best[parent] = version
    return {parent: version.tag for parent, version in best.items()}


def relink(registry: Registry, name: str) -> None:
    """Bring the parent tags of repository ``name`` in line with its version tags."""
    with repository_lock(name):
        try:
            tags = registry.tags.list(name)
        except NameUnknown:
            return
        wanted = choose(tags)
        for parent, tag in sorted(wanted.items()):
            try:
                digest = registry.tags.resolve(name, tag)
            except ManifestUnknown:
                continue  # deleted since it was listed (by another process)
            if _current(registry, name, parent) != digest:
                registry.tags.tag(name, parent, digest)
        for parent in tags:
            if is_parent_tag(parent) and parent not in wanted:
                with contextlib.suppress(ManifestUnknown):
                    registry.tags.untag(name, parent)


def _current(registry: Registry, name: str, tag: str) -> Digest | None:
    try:
        return registry.tags.resolve(name, tag)
    except ManifestUnknown:
        return None
