"""The registry: one object holding every store, which the HTTP handlers talk to.

It is the backend state of a running registry (the handlers are its HTTP face), so tests and the
pytest plugin can seed or inspect it directly.
"""

from __future__ import annotations

import typing as t

from ..drivers.base import StorageDriver
from ..reference import Digest
from ..reference import is_valid_tag
from ..reference import looks_like_digest
from . import catalog
from .blobs import BlobStore
from .cache import BlobDescriptorCache
from .cache import Descriptor
from .errors import DigestInvalid
from .errors import ManifestUnknown
from .errors import TagInvalid
from .foreign import URLRules
from .manifests import ManifestStore
from .manifests import ParsedManifest
from .manifests import StoredManifest
from .referrers import referrers
from .tags import TagStore
from .uploads import UploadStore


class Registry:
    def __init__(
        self, driver: StorageDriver, cache: BlobDescriptorCache, url_rules: URLRules | None = None
    ) -> None:
        self.driver = driver
        self.blobs = BlobStore(driver, cache)
        self.uploads = UploadStore(driver, self.blobs)
        self.manifests = ManifestStore(driver, self.blobs, url_rules)
        self.tags = TagStore(driver)

    def mount(self, name: str, digest: Digest, source: str | None) -> Descriptor | None:
        """Link a blob from ``source`` (or, without one, from anywhere) into ``name``.

        Returns ``None`` when the blob cannot be mounted, and the client should upload it instead.
        """
        if source is not None:
            if not self.blobs.is_linked(source, digest):
                return None
            descriptor = self.blobs.stat_global(digest)
        else:
            descriptor = self.blobs.stat_global(digest)
        if descriptor is None:
            return None
        self.blobs.link(name, digest)
        return descriptor

    def resolve(self, name: str, reference: str) -> Digest:
        if looks_like_digest(reference):
            return Digest.parse(reference)
        return self.tags.resolve(name, reference)

    def get_manifest(self, name: str, reference: str) -> StoredManifest:
        return self.manifests.get(name, self.resolve(name, reference))

    def put_blob(self, name: str, content: bytes) -> Digest:
        """Store a small blob whole and link it into ``name`` (seeding: clients upload through
        :attr:`uploads`)."""
        digest = self.blobs.put(content)
        self.blobs.link(name, digest)
        return digest

    def clear(self) -> None:
        """Remove everything stored: blobs, repositories, uploads."""
        for child in self.driver.list("/"):
            self.driver.delete(child)

    def put_manifest(
        self, name: str, reference: str, content: bytes, content_type: str | None
    ) -> tuple[Digest, ParsedManifest]:
        is_tag = not looks_like_digest(reference)
        if is_tag and not is_valid_tag(reference):
            raise TagInvalid({"tag": reference})
        algorithm = "sha256" if is_tag else Digest.parse(reference).algorithm
        if not is_tag and str(Digest.of(content, algorithm)) != reference:
            # Checked before anything is stored: a mismatch must leave no trace.
            raise DigestInvalid({"digest": reference, "actual": str(Digest.of(content, algorithm))})
        digest, parsed = self.manifests.put(name, content, content_type, algorithm)
        if is_tag:
            self.tags.tag(name, reference, digest)
        return digest, parsed

    def delete_manifest(self, name: str, reference: str) -> None:
        if not looks_like_digest(reference):
            self.tags.untag(name, reference)
            return
        digest = Digest.parse(reference)
        self.manifests.delete(name, digest)
        # Deleting a manifest also removes every tag that pointed at it, as distribution does.
        for tag in self.tags.tags_for(name, digest):
            self.tags.untag(name, tag)

    def delete_blob(self, name: str, digest: Digest) -> None:
        self.blobs.unlink(name, digest)

    def catalog(self) -> list[str]:
        return catalog.repositories(self.driver)

    def referrers(self, name: str, subject: Digest) -> list[dict[str, t.Any]]:
        return referrers(self.manifests, name, subject)

    def manifest_exists(self, name: str, reference: str) -> bool:
        try:
            self.get_manifest(name, reference)
        except ManifestUnknown:
            return False
        return True
