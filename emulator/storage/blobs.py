"""Blobs: content-addressed data shared by all repositories, linked into each that may read it."""

from __future__ import annotations

import typing as t

from ..drivers.base import PathNotFound
from ..drivers.base import StorageDriver
from ..reference import Digest
from . import paths
from .cache import BlobDescriptorCache
from .cache import Descriptor
from .errors import BlobUnknown


class BlobStore:
    def __init__(self, driver: StorageDriver, cache: BlobDescriptorCache) -> None:
        self.driver = driver
        self.cache = cache

    def stat_global(self, digest: Digest) -> Descriptor | None:
        """The blob's descriptor if its data exists anywhere in the registry."""
        found = self.cache.get(digest)
        if found is not None:
            return found
        try:
            info = self.driver.stat(paths.blob_data(digest))
        except PathNotFound:
            return None
        descriptor = Descriptor(digest, info.size)
        self.cache.set(descriptor)
        return descriptor

    def stat(self, name: str, digest: Digest) -> Descriptor:
        """The blob's descriptor if ``name`` may read it; :class:`BlobUnknown` otherwise."""
        found = self.cache.get(digest, name)
        if found is not None:
            return found
        if not self.is_linked(name, digest):
            raise BlobUnknown({"digest": str(digest)})
        descriptor = self.stat_global(digest)
        if descriptor is None:
            raise BlobUnknown({"digest": str(digest)})
        self.cache.set(descriptor, name)
        return descriptor

    def is_linked(self, name: str, digest: Digest) -> bool:
        try:
            return self.driver.get_content(paths.layer_link(name, digest)).decode() == str(digest)
        except PathNotFound:
            return False

    def open(self, name: str, digest: Digest, offset: int = 0) -> t.BinaryIO:
        self.stat(name, digest)
        try:
            return self.driver.reader(paths.blob_data(digest), offset)
        except PathNotFound:
            raise BlobUnknown({"digest": str(digest)}) from None

    def redirect_url(self, digest: Digest, method: str) -> str | None:
        return self.driver.redirect_url(paths.blob_data(digest), method)

    def link(self, name: str, digest: Digest) -> None:
        self.driver.put_content(paths.layer_link(name, digest), str(digest).encode())

    def unlink(self, name: str, digest: Digest) -> None:
        self.stat(name, digest)
        try:
            self.driver.delete(paths.layer_link(name, digest))
        except PathNotFound:
            raise BlobUnknown({"digest": str(digest)}) from None
        self.cache.clear(digest, name)

    def put(self, content: bytes, algorithm: str = "sha256") -> Digest:
        """Store a small blob (a manifest) and return its digest."""
        digest = Digest.of(content, algorithm)
        if not self.driver.exists(paths.blob_data(digest)):
            self.driver.put_content(paths.blob_data(digest), content)
        return digest

    def get(self, digest: Digest) -> bytes:
        return self.driver.get_content(paths.blob_data(digest))

    def adopt(self, source: str, digest: Digest) -> Descriptor:
        """Move finished upload data at ``source`` into place as the blob ``digest``."""
        # Storage itself is asked, not the cache: the data may have been collected since it was cached.
        try:
            info = self.driver.stat(paths.blob_data(digest))
        except PathNotFound:
            pass
        else:
            # Identical content is already stored; the upload's copy is simply dropped.
            self.driver.delete(source)
            descriptor = Descriptor(digest, info.size)
            self.cache.set(descriptor)
            return descriptor
        self.driver.move(source, paths.blob_data(digest))
        info = self.driver.stat(paths.blob_data(digest))
        descriptor = Descriptor(digest, info.size)
        self.cache.set(descriptor)
        return descriptor
