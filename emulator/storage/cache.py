"""The blob-descriptor cache: a bounded LRU in front of the storage's stat calls."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from ..reference import Digest


@dataclass(frozen=True)
class Descriptor:
    digest: Digest
    size: int
    media_type: str = "application/octet-stream"


class BlobDescriptorCache:
    """Descriptors by digest, globally and per repository, evicting the least recently used.

    ``size`` 0 means unbounded, as in distribution's ``blobdescriptorsize``.
    """

    def __init__(self, size: int = 10000) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, Digest], Descriptor] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: Digest, repository: str = "") -> Descriptor | None:
        key = (repository, digest)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def set(self, descriptor: Descriptor, repository: str = "") -> None:
        key = (repository, descriptor.digest)
        with self._lock:
            self._entries[key] = descriptor
            self._entries.move_to_end(key)
            if self._size and len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def clear(self, digest: Digest, repository: str = "") -> None:
        with self._lock:
            self._entries.pop((repository, digest), None)

    def __len__(self) -> int:
        return len(self._entries)


class NoCache(BlobDescriptorCache):
    """Used when ``storage.cache.blobdescriptor`` is unset: every lookup goes to storage."""

    def __init__(self) -> None:
        super().__init__(0)

    def get(self, digest: Digest, repository: str = "") -> Descriptor | None:
        return None

    def set(self, descriptor: Descriptor, repository: str = "") -> None:
        return None
