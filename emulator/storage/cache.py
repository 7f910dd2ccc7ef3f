"""The in-memory caches of the storage layer: blob descriptors (a bounded LRU in front of the storage's
stat calls, sized in entries as distribution's ``blobdescriptorsize``), and :class:`SizedLRU`, an LRU
sized in bytes for content whose entries differ in size (manifests).

``functools.lru_cache`` counts entries, and an entry count says nothing of the memory held when one
manifest is 300 bytes and another 4 MiB: hence a small LRU of our own.
"""

from __future__ import annotations

import threading
import typing as t
from collections import OrderedDict
from dataclasses import dataclass

from ..reference import Digest

K = t.TypeVar("K", bound=t.Hashable)
V = t.TypeVar("V")


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


class SizedLRU(t.Generic[K, V]):
    """Values by key within a budget of bytes, least recently used first out.

    The caller says what each entry costs. An entry costing more than an eighth of the budget is not
    kept, so that one large value cannot flush everything else.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.size = 0
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            self._entries.move_to_end(key)
            return found[0]

    def put(self, key: K, value: V, cost: int) -> None:
        if cost > self.budget // 8:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (value, cost)
            self.size += cost
            while self.size > self.budget:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.size -= dropped

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.size = 0

    def __len__(self) -> int:
        return len(self._entries)
