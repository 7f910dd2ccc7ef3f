"""Manifests: parsed, checked against what the repository holds, stored as blobs and linked."""

from __future__ import annotations

import functools
import json
import threading
import typing as t
from collections import OrderedDict
from dataclasses import dataclass

from ..drivers.base import PathNotFound
from ..drivers.base import StorageDriver
from ..reference import Digest
from ..reference import InvalidDigest
from . import paths
from .blobs import BlobStore
from .errors import ManifestBlobUnknown
from .errors import ManifestInvalid
from .errors import ManifestUnknown
from .foreign import URLReference
from .foreign import URLRules
from .foreign import checks_urls
from .foreign import needs_blob

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
IMAGE_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = IMAGE_TYPES + INDEX_TYPES

#: Manifests above this size are refused, as distribution refuses them.
MAX_MANIFEST_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True)
class ParsedManifest:
    media_type: str
    #: Blobs (config and layers) an image manifest needs in the repository.
    blobs: tuple[Digest, ...]
    #: Manifests an index needs in the repository.
    children: tuple[Digest, ...]
    subject: Digest | None
    artifact_type: str | None
    annotations: dict[str, str] | None
    #: Children of a Docker manifest list by platform, for Accept fallback.
    platforms: tuple[tuple[str, str, Digest], ...] = ()
    config_media_type: str | None = None
    #: References whose URLs stand in for their presence (:mod:`.foreign`).
    foreign: tuple[URLReference, ...] = ()


@dataclass(frozen=True)
class StoredManifest:
    digest: Digest
    content: bytes
    media_type: str


def parse(content: bytes, content_type: str | None = None) -> ParsedManifest:
    """Parse and check a manifest's shape; :class:`ManifestInvalid` says what is wrong."""
    try:
        document = json.loads(content)
    except (ValueError, UnicodeDecodeError) as e:
        raise ManifestInvalid({"reason": f"invalid JSON: {e}"}) from None
    if not isinstance(document, dict):
        raise ManifestInvalid({"reason": "a manifest is a JSON object"})
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestInvalid({"reason": "mediaType must be a string"})
    media_type = _media_type(document, declared, content_type)
    if media_type in DOCKER_SCHEMA1 or document.get("schemaVersion") == 1:
        raise ManifestInvalid({"reason": "schema1 manifests are not supported"})
    if document.get("schemaVersion") != 2:
        raise ManifestInvalid({"reason": "schemaVersion must be 2"})
    subject = _descriptor_digest(document["subject"], "subject") if "subject" in document else None
    artifact_type = document.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid({"reason": "artifactType must be a string"})
    annotations = document.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise ManifestInvalid({"reason": "annotations must be an object"})
    if media_type in INDEX_TYPES:
        entries = document.get("manifests")
        if not isinstance(entries, list):
            raise ManifestInvalid({"reason": "an index needs a manifests list"})
        children = tuple(_descriptor_digest(e, "manifests[]") for e in entries)
        platforms = tuple(
            (str(e["platform"].get("os")), str(e["platform"].get("architecture")), child)
            for e, child in zip(entries, children, strict=True)
            if isinstance(e.get("platform"), dict)
        )
        return ParsedManifest(media_type, (), children, subject, artifact_type, annotations, platforms)
    config = document.get("config")
    layers = document.get("layers")
    if not isinstance(config, dict):
        raise ManifestInvalid({"reason": "an image manifest needs a config descriptor"})
    if not isinstance(layers, list):
        raise ManifestInvalid({"reason": "an image manifest needs a layers list"})
    # Which references must be in the repository, and which have their URLs checked instead, follow
    # distribution 2.8 (see .foreign); the config is a reference like the layers.
    schema2 = media_type == DOCKER_MANIFEST
    needed: list[Digest] = []
    foreign: list[URLReference] = []
    for descriptor, where in [(config, "config"), *((layer, "layers[]") for layer in layers)]:
        digest = _descriptor_digest(descriptor, where)
        descriptor_type = descriptor.get("mediaType")
        descriptor_type = descriptor_type if isinstance(descriptor_type, str) else ""
        urls = _descriptor_urls(descriptor, where)
        if needs_blob(descriptor_type, urls, schema2=schema2):
            needed.append(digest)
        if checks_urls(descriptor_type, schema2=schema2):
            foreign.append(URLReference(digest, descriptor_type, urls))
    config_type = config.get("mediaType")
    return ParsedManifest(
        media_type,
        tuple(needed),
        (),
        subject,
        artifact_type,
        annotations,
        config_media_type=config_type if isinstance(config_type, str) else None,
        foreign=tuple(foreign),
    )


def _media_type(document: dict[str, t.Any], declared: str | None, content_type: str | None) -> str:
    header = (content_type or "").split(";")[0].strip()
    if header in MANIFEST_TYPES or header in DOCKER_SCHEMA1:
        if declared is not None and declared != header:
            raise ManifestInvalid(
                {"reason": f"mediaType {declared!r} does not match Content-Type {header!r}"}
            )
        return header
    if declared is not None:
        if declared not in MANIFEST_TYPES and declared not in DOCKER_SCHEMA1:
            raise ManifestInvalid({"reason": f"unsupported manifest mediaType {declared!r}"})
        return declared
    # The OCI spec lets mediaType be absent: the shape tells an index from an image manifest.
    return OCI_INDEX if "manifests" in document else OCI_MANIFEST


def _descriptor_digest(descriptor: t.Any, where: str) -> Digest:
    if not isinstance(descriptor, dict):
        raise ManifestInvalid({"reason": f"{where} must be a descriptor object"})
    if not isinstance(descriptor.get("size", 0), int):
        raise ManifestInvalid({"reason": f"{where}.size must be an integer"})
    try:
        return Digest.parse(str(descriptor.get("digest", "")))
    except InvalidDigest as e:
        raise ManifestInvalid({"reason": f"{where}.digest: {e}"}) from None


def _descriptor_urls(descriptor: dict[str, t.Any], where: str) -> tuple[str, ...]:
    urls = descriptor.get("urls")
    if urls is None:
        return ()
    if not isinstance(urls, list) or not all(isinstance(url, str) for url in urls):
        raise ManifestInvalid({"reason": f"{where}.urls must be a list of strings"})
    return tuple(urls)


@functools.lru_cache(maxsize=4096)
def parse_stored(content: bytes) -> ParsedManifest:
    """Parse a manifest read back from storage (content is immutable, so results are cached)."""
    return parse(content)


class _Contents:
    """Manifest bytes by digest, least recently used first out, within a byte budget.

    A digest names its content for good, so an entry is never stale; whether a repository still holds
    the manifest is asked of storage on every request, so deletes (by any process) are seen at once.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.size = 0
        self._entries: OrderedDict[Digest, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: Digest) -> bytes | None:
        with self._lock:
            content = self._entries.get(digest)
            if content is not None:
                self._entries.move_to_end(digest)
            return content

    def put(self, digest: Digest, content: bytes) -> None:
        if len(content) > self.budget // 8:
            return
        with self._lock:
            if digest in self._entries:
                return
            self._entries[digest] = content
            self.size += len(content)
            while self.size > self.budget:
                _, dropped = self._entries.popitem(last=False)
                self.size -= len(dropped)


#: Bytes of manifest content kept in memory.
CONTENT_CACHE_BYTES = 16 * 1024 * 1024


class ManifestStore:
    def __init__(self, driver: StorageDriver, blobs: BlobStore, url_rules: URLRules | None = None) -> None:
        self.driver = driver
        self.blobs = blobs
        self.url_rules = url_rules if url_rules is not None else URLRules.default()
        self._contents = _Contents(CONTENT_CACHE_BYTES)

    def exists(self, name: str, digest: Digest) -> bool:
        try:
            self.driver.stat(paths.manifest_revision_link(name, digest))
        except PathNotFound:
            return False
        return True

    def get(self, name: str, digest: Digest) -> StoredManifest:
        if not self.exists(name, digest):
            raise ManifestUnknown({"digest": str(digest)})
        content = self._contents.get(digest)
        if content is None:
            try:
                content = self.blobs.get(digest)
            except PathNotFound:
                raise ManifestUnknown({"digest": str(digest)}) from None
            if Digest.of(content, digest.algorithm) == digest:
                self._contents.put(digest, content)  # only what storage holds intact is remembered
        return StoredManifest(digest, content, parse_stored(content).media_type)

    def put(
        self, name: str, content: bytes, content_type: str | None, algorithm: str = "sha256"
    ) -> tuple[Digest, ParsedManifest]:
        parsed = parse(content, content_type)
        refused = self.url_rules.refusals(parsed.foreign, schema2=parsed.media_type == DOCKER_MANIFEST)
        if refused:
            first = refused[0]
            where = f"URL {first.url!r}" if first.url is not None else "layer"
            raise ManifestBlobUnknown(
                [refusal.detail() for refusal in refused],
                message=f"blob unknown to registry: {first.digest}: {where} refused: {first.reason}",
            )
        unknown = [d for d in parsed.blobs if not self.blobs.is_linked(name, d)]
        unknown += [d for d in parsed.children if not self.exists(name, d)]
        if unknown:
            raise ManifestBlobUnknown([{"digest": str(d)} for d in unknown])
        digest = self.blobs.put(content, algorithm)
        self._contents.put(digest, content)
        # Like distribution, a manifest is linked as a revision only, not as a layer.
        self.driver.put_content(paths.manifest_revision_link(name, digest), str(digest).encode())
        return digest, parsed

    def delete(self, name: str, digest: Digest) -> None:
        if not self.exists(name, digest):
            raise ManifestUnknown({"digest": str(digest)})
        self.driver.delete(paths.manifest_revision(name, digest))

    def digests(self, name: str) -> list[Digest]:
        found = []
        try:
            algorithms = self.driver.list(paths.manifest_revisions(name))
        except PathNotFound:
            return []
        for algorithm_dir in algorithms:
            for entry in self.driver.list(algorithm_dir):
                if self.driver.exists(paths.revision_link(entry)):
                    found.append(paths.revision_digest_of(entry))
        return found
