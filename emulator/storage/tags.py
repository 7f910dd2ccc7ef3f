"""Tags: names pointing at manifest digests, with the history distribution keeps in ``index/``.

On drivers with local files (:attr:`~emulator.drivers.base.StorageDriver.local_files`: the filesystem),
what was read is remembered and trusted while the file (or the tags directory) keeps its size and
modification time: one ``stat`` instead of reading a link on every manifest GET, and
no walk over every tag on every page of a tags list. Another process (docker-registry, a second emulator)
may write the same storage, so nothing is trusted on the word of this process alone; and nothing modified
within :data:`SETTLE_SECONDS` of being read is remembered, since two writes inside one tick of the
filesystem's clock leave the same modification time (git's "racy" index entries).
"""

from __future__ import annotations

import builtins
import threading
import time
import typing as t
from dataclasses import dataclass

from ..drivers.base import PathNotFound
from ..drivers.base import StorageDriver
from ..reference import Digest
from ..reference import InvalidDigest
from . import paths
from .errors import ManifestUnknown
from .errors import NameUnknown

#: Files and directories modified less than this long before they were read are not remembered.
SETTLE_SECONDS = 2.0
#: How many tag links and tag lists are remembered (all are forgotten when either is full).
MAX_ENTRIES = 65536


@dataclass(frozen=True)
class _Seen:
    """What a file or directory looked like (size and modification time) when its content was read."""

    size: int
    modtime: float

    def settled(self) -> bool:
        return time.time() - self.modtime > SETTLE_SECONDS


@dataclass(frozen=True)
class _TagList:
    seen: _Seen
    tags: tuple[str, ...]
    #: Tag directories that had no ``current/link`` yet (a tag being written): checked again each time.
    pending: tuple[str, ...]


class TagStore:
    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver
        self._remember = driver.local_files
        self._links: dict[tuple[str, str], tuple[_Seen, Digest]] = {}
        self._lists: dict[str, _TagList] = {}
        self._lock = threading.Lock()

    def resolve(self, name: str, tag: str) -> Digest:
        path = paths.tag_current_link(name, tag)
        seen = None
        if self._remember:
            try:
                info = self.driver.stat(path)
            except PathNotFound:
                raise ManifestUnknown({"tag": tag}) from None
            seen = _Seen(info.size, info.modtime)
            known = self._links.get((name, tag))
            if known is not None and known[0] == seen:
                return known[1]
        try:
            digest = Digest.parse(self.driver.get_content(path).decode())
        except (PathNotFound, InvalidDigest, UnicodeDecodeError):
            raise ManifestUnknown({"tag": tag}) from None
        if seen is not None and seen.settled():
            # The content read is at least as new as ``seen``: if it is newer, the next stat differs.
            with self._lock:
                if len(self._links) >= MAX_ENTRIES:
                    self._links.clear()
                self._links[(name, tag)] = (seen, digest)
        return digest

    def tag(self, name: str, tag: str, digest: Digest) -> None:
        link = str(digest).encode()
        self.driver.put_content(paths.tag_index_link(name, tag, digest), link)
        self.driver.put_content(paths.tag_current_link(name, tag), link)

    def untag(self, name: str, tag: str) -> None:
        try:
            self.driver.stat(paths.tag_current_link(name, tag))
        except PathNotFound:
            raise ManifestUnknown({"tag": tag}) from None
        self.driver.delete(paths.tag(name, tag))

    def list(self, name: str) -> list[str]:
        """Every tag of the repository, sorted.

        :class:`NameUnknown` unless the repository was ever tagged, as distribution answers: its tags
        directory is what makes a repository known here, not blobs, uploads or manifests pushed by
        digest, and a parent (``a`` of ``a/b``) has none. Once every tag is gone the list is empty
        where empty directories stay (filesystem, inmemory); on S3 the repository is unknown again.
        """
        seen = None
        if self._remember:
            # A tag is added or removed with its directory, which changes the tags directory's time.
            try:
                info = self.driver.stat(paths.tags(name))
            except PathNotFound:
                info = None
            if info is not None:
                seen = _Seen(info.size, info.modtime)
                known = self._lists.get(name)
                if known is not None and known.seen == seen and not self._any_current(name, known.pending):
                    return list(known.tags)
        try:
            entries = self.driver.list(paths.tags(name))
        except PathNotFound:
            raise NameUnknown({"name": name}) from None
        tags: builtins.list[str] = []
        pending: builtins.list[str] = []
        for tag in sorted(paths.tag_of(entry) for entry in entries):
            (tags if self.driver.exists(paths.tag_current_link(name, tag)) else pending).append(tag)
        if seen is not None and seen.settled():
            with self._lock:
                if len(self._lists) >= MAX_ENTRIES:
                    self._lists.clear()
                self._lists[name] = _TagList(seen, tuple(tags), tuple(pending))
        return tags

    def _any_current(self, name: str, tags: t.Iterable[str]) -> bool:
        return any(self.driver.exists(paths.tag_current_link(name, tag)) for tag in tags)

    def tags_for(self, name: str, digest: Digest) -> builtins.list[str]:
        found = []
        for tag in self.list(name):
            try:
                if self.resolve(name, tag) == digest:
                    found.append(tag)
            except ManifestUnknown:
                continue
        return found
