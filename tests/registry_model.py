"""A registry as plain data, for the stateful test: what every API call should answer.

It knows nothing of HTTP or storage. Each method takes one call's arguments, updates the model as the
registry should update itself, and returns the :class:`Answer` the registry should give. The rules are the
emulator's documented ones (README "Where the emulator differs from distribution", tests/test_api.py):

- a blob is readable in a repository once linked there (pushed or mounted), until deleted there;
- a manifest PUT needs its config and layers linked in the repository, else 400 MANIFEST_BLOB_UNKNOWN;
- deleting a manifest by digest removes every tag that pointed at it; deleting a tag keeps the manifest;
- the catalog lists repositories that ever held a blob, pushed or mounted (their ``_layers`` directory
  stays when the blobs are deleted); an upload alone lists none;
- a tags list answers 404 NAME_UNKNOWN for a repository never tagged (blobs, uploads and manifests pushed
  by digest do not count), else its tags, paged by ``n`` and ``last`` with a ``Link`` to the next page,
  and ``null`` once every tag is gone.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import typing as t
from dataclasses import dataclass
from dataclasses import field
from urllib.parse import urlencode

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"

#: Page size of ``_catalog`` without ``n``, and the registry's ``catalog.maxentries`` / ``tags.maxtags``.
CATALOG_DEFAULT_ENTRIES = 100
MAX_ENTRIES = 1000


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload_range(size: int) -> str:
    """The ``Range`` header of an upload holding ``size`` bytes (``0-0`` when empty, as distribution says)."""
    return f"0-{max(size - 1, 0)}"


def image_manifest(config: str, layers: t.Sequence[str], salt: int) -> bytes:
    """An OCI image manifest over these blobs; ``salt`` tells apart manifests over the same blobs."""
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 1},
        "layers": [{"mediaType": OCI_LAYER, "digest": digest, "size": 1} for digest in layers],
        "annotations": {"salt": str(salt)},
    }
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Answer:
    """What the registry should answer; ``None`` fields are not checked."""

    status: int
    #: The error code of an error body.
    code: str | None = None
    #: ``Docker-Content-Digest``.
    digest: str | None = None
    body: bytes | None = None
    #: The JSON document of a tags list or catalog.
    document: t.Any = None
    #: An upload's ``Range``.
    range: str | None = None
    #: ``Link`` to the next page of a list; ``""`` means no such header.
    link: str | None = None
    #: The digests an error's detail names (MANIFEST_BLOB_UNKNOWN).
    detail_digests: frozenset[str] | None = None
    #: The path of ``Location``.
    location: str | None = None


@dataclass
class Repository:
    layers: set[str] = field(default_factory=set)
    manifests: dict[str, bytes] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    #: Ever held a blob: listed in the catalog from then on.
    catalogued: bool = False
    #: Ever tagged: its tags list answers 200 from then on.
    tagged: bool = False


@dataclass
class Upload:
    name: str
    data: bytes = b""
    open: bool = True


class RegistryModel:
    def __init__(self) -> None:
        #: Repositories pushed to (an upload started or a blob mounted there), by name.
        self.repositories: dict[str, Repository] = {}
        self.uploads: dict[str, Upload] = {}
        #: Every blob's content by digest: data is never collected, only unlinked.
        self.contents: dict[str, bytes] = {}

    def _repository(self, name: str) -> Repository:
        return self.repositories.setdefault(name, Repository())

    def _link(self, name: str, digest: str) -> None:
        repository = self._repository(name)
        repository.layers.add(digest)
        repository.catalogued = True

    def _linked(self, name: str, digest: str) -> bool:
        repository = self.repositories.get(name)
        return repository is not None and digest in repository.layers

    # -- blob uploads ------------------------------------------------------------------------------

    def push_blob(self, name: str, data: bytes) -> Answer:
        """A monolithic ``POST ?digest=`` with the right digest."""
        digest = sha256(data)
        self.contents[digest] = data
        self._link(name, digest)
        return Answer(201, digest=digest, location=f"/v2/{name}/blobs/{digest}")

    def push_blob_with_wrong_digest(self, name: str) -> Answer:
        """A monolithic ``POST ?digest=`` whose digest is not the body's: nothing is linked."""
        self._repository(name)  # the upload was opened (and removed) there
        return Answer(400, code="DIGEST_INVALID")

    def start_upload(self, name: str) -> Answer:
        self._repository(name)
        return Answer(202, range=upload_range(0))

    def opened(self, upload_id: str, name: str) -> None:
        """Record the upload the registry opened (its id is the registry's choice)."""
        self.uploads[upload_id] = Upload(name)

    def mount(self, name: str, digest: str, source: str) -> Answer:
        """``POST ?mount=&from=``: 201 when ``source`` holds the blob, else a new upload (202)."""
        if self._linked(source, digest):
            self._link(name, digest)
            return Answer(201, digest=digest, location=f"/v2/{name}/blobs/{digest}")
        return self.start_upload(name)

    def _closed(self, upload_id: str) -> Answer | None:
        if not self.uploads[upload_id].open:
            return Answer(404, code="BLOB_UPLOAD_UNKNOWN")
        return None

    def upload_status(self, upload_id: str) -> Answer:
        closed = self._closed(upload_id)
        if closed is not None:
            return closed
        return Answer(204, range=upload_range(len(self.uploads[upload_id].data)))

    def patch(self, upload_id: str, chunk: bytes, start: int | None) -> Answer:
        """A PATCH of ``chunk``, with ``Content-Range`` from ``start`` unless ``start`` is ``None``."""
        closed = self._closed(upload_id)
        if closed is not None:
            return closed
        upload = self.uploads[upload_id]
        if start is not None and start != len(upload.data):
            return Answer(416, code="RANGE_INVALID", range=upload_range(len(upload.data)))
        upload.data += chunk
        return Answer(202, range=upload_range(len(upload.data)))

    def patch_at(self, upload_id: str, chunk: bytes, offset: int) -> Answer:
        """A PATCH of ``chunk`` without ``Content-Range`` sent to a ``Location`` issued at ``offset``."""
        closed = self._closed(upload_id)
        if closed is not None:
            return closed
        size = len(self.uploads[upload_id].data)
        if offset != size:
            return Answer(416, code="RANGE_INVALID", range=upload_range(size))
        return self.patch(upload_id, chunk, None)

    def finish(self, upload_id: str, last: bytes, digest: str) -> Answer:
        """The closing PUT with ``last`` as its body and ``?digest=``."""
        closed = self._closed(upload_id)
        if closed is not None:
            return closed
        upload = self.uploads[upload_id]
        upload.open = False
        data = upload.data + last
        if sha256(data) != digest:
            return Answer(400, code="DIGEST_INVALID")
        self.contents[digest] = data
        self._link(upload.name, digest)
        return Answer(201, digest=digest, location=f"/v2/{upload.name}/blobs/{digest}")

    def cancel(self, upload_id: str) -> Answer:
        closed = self._closed(upload_id)
        if closed is not None:
            return closed
        self.uploads[upload_id].open = False
        return Answer(204)

    # -- blobs ------------------------------------------------------------------------------------

    def get_blob(self, name: str, digest: str) -> Answer:
        if not self._linked(name, digest):
            return Answer(404, code="BLOB_UNKNOWN")
        return Answer(200, digest=digest, body=self.contents[digest])

    def delete_blob(self, name: str, digest: str) -> Answer:
        if not self._linked(name, digest):
            return Answer(404, code="BLOB_UNKNOWN")
        self.repositories[name].layers.discard(digest)
        return Answer(202)

    # -- manifests --------------------------------------------------------------------------------

    def put_manifest(self, name: str, reference: str, content: bytes, needs: t.Iterable[str]) -> Answer:
        """PUT ``content`` (which needs the blobs ``needs``) by tag, or by digest when ``reference`` is
        its digest."""
        unknown = frozenset(d for d in needs if not self._linked(name, d))
        if unknown:
            return Answer(400, code="MANIFEST_BLOB_UNKNOWN", detail_digests=unknown)
        digest = sha256(content)
        repository = self.repositories[name]
        repository.manifests[digest] = content
        if reference != digest:
            repository.tags[reference] = digest
            repository.tagged = True
        return Answer(201, digest=digest, location=f"/v2/{name}/manifests/{digest}")

    def get_manifest(self, name: str, reference: str) -> Answer:
        repository = self.repositories.get(name)
        digest = reference
        if repository is not None and reference in repository.tags:
            digest = repository.tags[reference]
        if repository is None or digest not in repository.manifests:
            return Answer(404, code="MANIFEST_UNKNOWN")
        return Answer(200, digest=digest, body=repository.manifests[digest])

    def delete_manifest(self, name: str, digest: str) -> Answer:
        repository = self.repositories.get(name)
        if repository is None or digest not in repository.manifests:
            return Answer(404, code="MANIFEST_UNKNOWN")
        del repository.manifests[digest]
        for tag in [tag for tag, target in repository.tags.items() if target == digest]:
            del repository.tags[tag]
        return Answer(202)

    def delete_tag(self, name: str, tag: str) -> Answer:
        repository = self.repositories.get(name)
        if repository is None or tag not in repository.tags:
            return Answer(404, code="MANIFEST_UNKNOWN")
        del repository.tags[tag]
        return Answer(202)

    # -- lists ------------------------------------------------------------------------------------

    def tags_list(self, name: str, n: int | None, last: str | None) -> Answer:
        repository = self.repositories.get(name)
        if repository is None or not repository.tagged:
            return Answer(404, code="NAME_UNKNOWN")
        tags = sorted(repository.tags)
        size = len(tags) if n is None else min(n, MAX_ENTRIES)
        page, link = _page(tags, last, size, f"/v2/{name}/tags/list")
        return Answer(200, document={"name": name, "tags": page if tags else None}, link=link)

    def catalog(self, n: int | None, last: str | None) -> Answer:
        names = sorted(name for name, repository in self.repositories.items() if repository.catalogued)
        size = CATALOG_DEFAULT_ENTRIES if n is None else n
        page, link = _page(names, last, size, "/v2/_catalog")
        return Answer(200, document={"repositories": page}, link=link)


def _page(items: list[str], last: str | None, n: int, path: str) -> tuple[list[str], str]:
    """The page after ``last`` of at most ``n`` items, and the ``Link`` to the next page (or ``""``)."""
    start = bisect.bisect_right(items, last) if last else 0
    page = items[start : start + n]
    more = start + n < len(items)
    link = f'<{path}?{urlencode({"last": page[-1], "n": n})}>; rel="next"' if more and page else ""
    return page, link
