"""Manifests: parsed, checked against what the repository holds, stored as blobs and linked.

A manifest GET costs two ``stat`` calls once its content has been read: the revision link is asked of
storage every time (a delete by any process is seen at once), and the content comes from memory by
digest. Content read from storage is not hashed again to check it against its digest: a blob's data is
complete whenever a revision link makes it reachable, on every driver. The driver contract makes
``put_content`` atomic (the filesystem writes aside, syncs and renames; inmemory swaps whole chunk
lists; an S3 object is visible only once complete), both registries store a blob's data before linking
it and never rewrite data that exists (distribution's filesystem driver writes in place, but only a
path no link reaches yet). What is left, a file changed on disk behind the registry's back, is not
checked by distribution on reads either.

The caches are sized in bytes (:class:`~emulator.storage.cache.SizedLRU`), not entries: the 16 MiB of
content (with each media type, all a GET needs) hold some 20,000 manifests of typical size, or a few of
4 MiB; parsed manifests (for referrers and manifest lists) get 16 MiB of their own.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass

from ..drivers.base import PathNotFound
from ..drivers.base import StorageDriver
from ..reference import Digest
from ..reference import InvalidDigest
from . import paths
from .blobs import BlobStore
from .cache import SizedLRU
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


#: Bytes of parsed manifests kept by :func:`parse_stored` (estimated: see :func:`_parsed_cost`).
PARSED_CACHE_BYTES = 16 * 1024 * 1024
_parsed: SizedLRU[bytes, ParsedManifest] = SizedLRU(PARSED_CACHE_BYTES)


def parse_stored(content: bytes) -> ParsedManifest:
    """Parse a manifest read back from storage (content is immutable, so results are cached)."""
    parsed = _parsed.get(content)
    if parsed is None:
        parsed = parse(content)
        _parsed.put(content, parsed, _parsed_cost(content))
    return parsed


def _parsed_cost(content: bytes) -> int:
    # The key is the content itself; the parsed manifest holds at most its digests and annotations,
    # less than the text they came from, plus the objects' fixed overhead.
    return 2 * len(content) + 1024


#: Bytes of manifest content kept in memory, by digest, with their media types.
CONTENT_CACHE_BYTES = 16 * 1024 * 1024
#: What an entry of the content cache holds beside the content: its key, tuple and media type.
CONTENT_ENTRY_COST = 256


class ManifestStore:
    def __init__(self, driver: StorageDriver, blobs: BlobStore, url_rules: URLRules | None = None) -> None:
        self.driver = driver
        self.blobs = blobs
        self.url_rules = url_rules if url_rules is not None else URLRules.default()
        #: A digest names its content for good, so an entry is never stale; whether a repository still
        #: holds the manifest is asked of storage on every request, so deletes (by any process) are seen.
        self._contents: SizedLRU[Digest, tuple[bytes, str]] = SizedLRU(CONTENT_CACHE_BYTES)

    def exists(self, name: str, digest: Digest) -> bool:
        try:
            self.driver.stat(paths.manifest_revision_link(name, digest))
        except PathNotFound:
            return False
        return True

    def get(self, name: str, digest: Digest) -> StoredManifest:
        if not self.exists(name, digest):
            raise ManifestUnknown({"digest": str(digest)})
        known = self._contents.get(digest)
        if known is not None:
            return StoredManifest(digest, *known)
        try:
            content = self.blobs.get(digest)
        except PathNotFound:
            raise ManifestUnknown({"digest": str(digest)}) from None
        # Not hashed again: what storage holds under a digest's path is that digest's content (see
        # the module's docstring).
        media_type = parse_stored(content).media_type
        self._contents.put(digest, (content, media_type), len(content) + CONTENT_ENTRY_COST)
        return StoredManifest(digest, content, media_type)

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
        self._contents.put(digest, (content, parsed.media_type), len(content) + CONTENT_ENTRY_COST)
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
