"""Tags: names pointing at manifest digests, with the history distribution keeps in ``index/``."""

from __future__ import annotations

import builtins

from ..drivers.base import PathNotFound
from ..drivers.base import StorageDriver
from ..errors import ManifestUnknown
from ..errors import NameUnknown
from ..reference import Digest
from ..reference import InvalidDigest
from . import paths


class TagStore:
    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver

    def resolve(self, name: str, tag: str) -> Digest:
        try:
            return Digest.parse(self.driver.get_content(paths.tag_current_link(name, tag)).decode())
        except (PathNotFound, InvalidDigest, UnicodeDecodeError):
            raise ManifestUnknown({"tag": tag}) from None

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
        """Every tag of the repository, sorted; :class:`NameUnknown` for a repository never pushed."""
        try:
            entries = self.driver.list(paths.tags(name))
        except PathNotFound:
            if self.driver.exists(paths.repository(name)):
                return []
            raise NameUnknown({"name": name}) from None
        tags = [entry.rsplit("/", 1)[-1] for entry in entries]
        return sorted(t for t in tags if self.driver.exists(paths.tag_current_link(name, t)))

    def tags_for(self, name: str, digest: Digest) -> builtins.list[str]:
        found = []
        for tag in self.list(name):
            try:
                if self.resolve(name, tag) == digest:
                    found.append(tag)
            except ManifestUnknown:
                continue
        return found
