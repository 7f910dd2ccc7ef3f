"""The storage facade of a pull-through cache: a :class:`~emulator.storage.registry.Registry` that
fetches from the remote what it does not hold, below the handlers.

Fills happen here, not in the handlers, so a pull through the cache is served (and reported) like any
other pull and a fill is no push. What each read does, and where it differs from distribution 2.8:

- A manifest by tag: the tag is re-resolved upstream (``HEAD`` with every manifest type) when the local
  tag was last resolved more than ``ttl`` ago, or is unknown; with ``ttl: 0`` (never expire), on every
  pull. 2.8 re-resolves on every pull. On any remote failure the local tag is used. The manifest is then
  fetched by digest if missing (2.8 fetches it by tag).
- A manifest by digest: local first, else fetched, checked against the digest, stored, and scheduled
  to expire.
- A blob: local first, else fetched once, streamed to the client while it is written through the normal
  upload path; the digest is verified before the upload is committed, and a remote that fails mid-blob
  leaves only a cancelled upload. 2.8 fetches twice (one stream for the client, one for storage, as 3.x
  does not). A request for a blob already being fetched streams from the remote without storing, as in 2.8.
  ``HEAD`` asks the remote for the size and caches nothing (2.8 starts caching). A ranged ``GET`` of a
  missing blob streams that range from the remote and caches nothing (2.8 sends the whole blob).
- Tag lists come from the remote, falling back to the local ones; the catalog is local only.

Errors follow 2.8: with the remote down, an uncached tag is 404 ``MANIFEST_UNKNOWN``, an uncached digest
or blob 500 ``UNKNOWN``; a digest missing upstream is 500 ``UNKNOWN`` for a manifest, 404 ``BLOB_UNKNOWN``
for a blob.
"""

from __future__ import annotations

import contextlib
import http.client
import queue
import threading
import time
import typing as t

from ..drivers.base import CHUNK_SIZE
from ..drivers.base import PathNotFound
from ..drivers.base import StorageDriver
from ..logs import log
from ..ociclient import Response
from ..reference import Digest
from ..reference import looks_like_digest
from ..storage import paths
from ..storage.blobs import BlobStore
from ..storage.cache import BlobDescriptorCache
from ..storage.cache import Descriptor
from ..storage.errors import BlobUnknown
from ..storage.errors import DigestInvalid
from ..storage.errors import ManifestInvalid
from ..storage.errors import ManifestUnknown
from ..storage.errors import RemoteFailed
from ..storage.manifests import ManifestStore
from ..storage.manifests import StoredManifest
from ..storage.manifests import parse
from ..storage.registry import Registry
from ..storage.tags import TagStore
from ..storage.uploads import UploadStore
from .expiry import BLOB
from .expiry import MANIFEST
from .expiry import Entry
from .expiry import Expiry
from .remote import Remote
from .remote import RemoteError
from .remote import RemoteNotFound

#: How many chunks may wait between the client's stream and the storage writer.
QUEUE_CHUNKS = 8
#: Seconds a finished stream waits for its blob to be committed before giving up on it.
COMMIT_WAIT = 300.0

Schedule = t.Callable[[str, Digest, int], None]


class ProxyRegistry(Registry):
    """A registry that fetches what it misses from ``remote`` and keeps it ``ttl`` seconds (``None``:
    for good). :attr:`services` are to be started and stopped with the app."""

    blobs: ProxyBlobStore
    manifests: ProxyManifestStore
    tags: ProxyTagStore

    def __init__(
        self,
        driver: StorageDriver,
        cache: BlobDescriptorCache,
        remote: Remote,
        *,
        ttl: float | None,
        delete_enabled: bool,
    ) -> None:
        super().__init__(driver, cache)
        self.remote = remote
        self.ttl = ttl
        self.delete_enabled = delete_enabled
        self.expiry = Expiry(driver, ttl, self._expire) if ttl is not None else None
        plain_blobs = self.blobs
        self.blobs = ProxyBlobStore(driver, cache, remote, self.uploads, self._schedule)
        self.manifests = ProxyManifestStore(driver, plain_blobs, remote, self._schedule)
        self.tags = ProxyTagStore(driver, remote)
        #: Background work, as :class:`emulator.app.Service` describes it.
        self.services: list[RemoteCheck | Expiry] = [RemoteCheck(remote)]
        if self.expiry is not None:
            self.services.append(self.expiry)

    def resolve(self, name: str, reference: str) -> Digest:
        if looks_like_digest(reference):
            return Digest.parse(reference)
        local = self._local_tag(name, reference)
        if local is not None and self.ttl is not None and time.time() - local[1] < self.ttl:
            return local[0]
        try:
            digest = self.remote.manifest_digest(name, reference)
            self.manifests.fill(name, digest)
        except RemoteError as e:
            if local is None:
                log.info("proxy: cannot resolve %s:%s upstream: %s", name, reference, e)
                raise ManifestUnknown({"Tag": reference}) from None
            log.info("proxy: serving the cached tag %s:%s: %s", name, reference, e)
            return local[0]
        # Written even when unchanged: its time says when it was last checked.
        self.tags.tag(name, reference, digest)
        return digest

    def _local_tag(self, name: str, tag: str) -> tuple[Digest, float] | None:
        try:
            modtime = self.driver.stat(paths.tag_current_link(name, tag)).modtime
            return self.tags.resolve(name, tag), modtime
        except (PathNotFound, ManifestUnknown):
            return None

    def _schedule(self, name: str, digest: Digest, kind: int) -> None:
        if self.expiry is not None:
            self.expiry.add(name, digest, kind)

    def _expire(self, entry: Entry) -> None:
        if not self.delete_enabled:
            # As distribution: expiry goes through the delete path, which is off.
            log.error("Scheduler error returned from OnExpire(%s): operation unsupported", entry.key)
            return
        if entry.kind == MANIFEST:
            # Only the revision link goes; the tag stays, so the next pull by tag fetches again.
            with contextlib.suppress(ManifestUnknown):
                self.manifests.delete(entry.name, entry.digest)
            return
        for path in (paths.layer_link(entry.name, entry.digest), paths.blob_dir(entry.digest)):
            with contextlib.suppress(PathNotFound):
                self.driver.delete(path)
        self.blobs.cache.clear(entry.digest)
        self.blobs.cache.clear(entry.digest, entry.name)


class RemoteCheck:
    """Pings the remote when the registry starts, so the log says at once when it cannot be reached.

    distribution panics then; here the start goes on, and every pull tries again (what the cache holds
    is still served), so a registry started before its remote, as in a test session, works once the
    remote is up.
    """

    def __init__(self, remote: Remote) -> None:
        self.remote = remote

    def start(self) -> None:
        # In a thread of its own: the ping only writes a log line, and a remote that never answers
        # would hold up the start for the client's whole timeout (for ever, sending a byte at a time).
        threading.Thread(target=self._ping, name="proxy-remote-check", daemon=True).start()

    def _ping(self) -> None:
        try:
            self.remote.ping()
        except RemoteError as e:
            log.warning("proxy.remoteurl: %s cannot be reached, pulls will try again: %s", self.remote.url, e)

    def stop(self) -> None:
        return None


class ProxyManifestStore(ManifestStore):
    def __init__(self, driver: StorageDriver, blobs: BlobStore, remote: Remote, schedule: Schedule) -> None:
        super().__init__(driver, blobs)
        self.remote = remote
        self.schedule = schedule

    def get(self, name: str, digest: Digest) -> StoredManifest:
        if not self.exists(name, digest):
            try:
                self.fill(name, digest)
            except RemoteError as e:
                raise RemoteFailed({"reason": str(e)}) from None
        return super().get(name, digest)

    def fill(self, name: str, digest: Digest) -> None:
        """Fetch the manifest ``digest`` of ``name`` unless the repository holds it."""
        if self.exists(name, digest):
            return
        fetched = self.remote.manifest(name, str(digest))
        try:
            parse(fetched.content, fetched.media_type or None)
        except ManifestInvalid as e:
            raise RemoteError(f"the remote's manifest {name}@{digest} cannot be served: {e}") from None
        # Stored as ManifestStore.put stores, without its check that the blobs are in the repository:
        # they are fetched when a client asks for them.
        self.blobs.put(fetched.content, digest.algorithm)
        self.driver.put_content(paths.manifest_revision_link(name, digest), str(digest).encode())
        self.schedule(name, digest, MANIFEST)


class ProxyTagStore(TagStore):
    def __init__(self, driver: StorageDriver, remote: Remote) -> None:
        super().__init__(driver)
        self.remote = remote

    def list(self, name: str) -> list[str]:
        try:
            return self.remote.tags(name)
        except RemoteError as e:
            log.info("proxy: listing the cached tags of %s: %s", name, e)
            return super().list(name)


class ProxyBlobStore(BlobStore):
    def __init__(
        self,
        driver: StorageDriver,
        cache: BlobDescriptorCache,
        remote: Remote,
        uploads: UploadStore,
        schedule: Schedule,
    ) -> None:
        super().__init__(driver, cache)
        self.remote = remote
        self.uploads = uploads
        self.schedule = schedule
        self._fetching: set[Digest] = set()
        self._lock = threading.Lock()

    def stat(self, name: str, digest: Digest) -> Descriptor:
        try:
            return super().stat(name, digest)
        except BlobUnknown:
            pass
        try:
            return Descriptor(digest, self.remote.blob_size(name, digest))
        except RemoteNotFound:
            raise BlobUnknown({"digest": str(digest)}) from None
        except RemoteError as e:
            raise RemoteFailed({"reason": str(e)}) from None

    def redirect_url(self, digest: Digest, method: str) -> str | None:
        # A blob not stored yet has no storage URL to send the client to.
        if self.stat_global(digest) is None:
            return None
        return super().redirect_url(digest, method)

    def open(self, name: str, digest: Digest, offset: int = 0) -> t.BinaryIO:
        if self.is_linked(name, digest):
            try:
                return super().open(name, digest, offset)
            except BlobUnknown:
                pass  # its data went meanwhile: fetch it again
        with self._lock:
            store = offset == 0 and digest not in self._fetching
            if store:
                self._fetching.add(digest)
        try:
            response = self.remote.open_blob(name, digest, offset)
        except RemoteError as e:
            if store:
                self._done(digest)
            if isinstance(e, RemoteNotFound):
                raise BlobUnknown({"digest": str(digest)}) from None
            raise RemoteFailed({"reason": str(e)}) from None
        length = response.headers.get("Content-Length", "")
        if not store or not length.isdigit():
            if store:
                self._done(digest)
            return t.cast(t.BinaryIO, _Stream(response))
        try:
            return t.cast(t.BinaryIO, _Fill(self, response, int(length), name, digest))
        except BaseException:
            response.close()
            self._done(digest)
            raise

    def _done(self, digest: Digest) -> None:
        with self._lock:
            self._fetching.discard(digest)


class _Stream:
    """A remote response as the file the blob handler serves; no ``fileno``, so it is read, not sent
    with ``sendfile``."""

    def __init__(self, response: Response) -> None:
        self._response = response

    def read(self, size: int = -1) -> bytes:
        try:
            return self._response.read(size if size > 0 else CHUNK_SIZE)
        except (OSError, http.client.HTTPException) as e:
            raise OSError(f"the remote failed mid-blob: {e}") from None

    def close(self) -> None:
        self._response.close()


class _End:
    """Put on the queue after the last chunk."""


class _Abort(Exception):
    """The stream failed: the upload is cancelled, never committed."""


class _Fill(_Stream):
    """The remote's blob as the client reads it, written to storage through an upload on the way.

    A writer thread runs :meth:`UploadStore.finish` over the chunks the client's reads hand it, so the
    bytes are fetched once and held only in a short queue. The read that delivers the last byte waits
    for the commit (digest verified, blob moved into place), so a client that got the whole blob finds
    it stored on its next request. A failure of the remote, the client or the digest cancels the upload,
    and the client's connection is broken rather than ended cleanly; a failure of the storage only
    leaves the blob uncached.
    """

    def __init__(
        self, store: ProxyBlobStore, response: Response, size: int, name: str, digest: Digest
    ) -> None:
        super().__init__(response)
        self._store = store
        self._left = size
        self._name = name
        self._digest = digest
        self._queue: queue.Queue[bytes | _End | _Abort] = queue.Queue(QUEUE_CHUNKS)
        self._error: BaseException | None = None
        self._finished = False
        upload = store.uploads.start(name)
        self._upload_id = upload.id
        self._writer = threading.Thread(target=self._write, name=f"proxy-fill-{digest.hex[:12]}", daemon=True)
        self._writer.start()

    def read(self, size: int = -1) -> bytes:
        if self._left == 0:
            return b""
        wanted = min(size if size > 0 else CHUNK_SIZE, self._left)
        try:
            data = super().read(wanted)
            if not data:
                raise OSError(f"the remote ended the blob {self._digest} {self._left} bytes short")
        except OSError:
            self._give_up()
            raise
        self._left -= len(data)
        self._hand(data)
        if self._left == 0:
            self._hand(_End())
            self._writer.join(COMMIT_WAIT)
            self._finished = True
            if isinstance(self._error, DigestInvalid):
                # The client must not take these bytes for the blob: its connection is broken instead.
                raise OSError(f"the remote sent other bytes for {self._digest}: {self._error}")
            # A storage failure leaves the blob uncached; the client still gets the remote's good bytes.
        return data

    def close(self) -> None:
        try:
            if not self._finished:
                self._give_up()
        finally:
            super().close()

    def _give_up(self) -> None:
        self._finished = True
        self._hand(_Abort())
        self._writer.join(COMMIT_WAIT)

    def _hand(self, item: bytes | _End | _Abort) -> None:
        # The writer may have died (storage failed): then nobody takes the queue, and the client
        # goes on without it.
        while self._writer.is_alive():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _chunks(self) -> t.Iterator[bytes]:
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                return
            if isinstance(item, _Abort):
                raise item
            yield item

    def _write(self) -> None:
        store = self._store
        try:
            store.uploads.finish(self._name, self._upload_id, self._digest, self._chunks())
            store.schedule(self._name, self._digest, BLOB)
        except _Abort:
            log.info("proxy: the fetch of %s@%s was abandoned", self._name, self._digest)
            self._error = _Abort("abandoned")
        except BaseException as e:
            log.warning("proxy: storing %s@%s failed: %s", self._name, self._digest, e)
            self._error = e
        finally:
            store._done(self._digest)
