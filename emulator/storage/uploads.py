"""Blob uploads: data written aside under ``_uploads/<id>`` and moved into place once verified.

One request at a time writes an upload, and a request never waits for another to finish writing it:
the writer may be a client that sends part of its body and goes silent for minutes. A PATCH or PUT
that finds the upload being written is answered at once with 416 RANGE_INVALID, the ``Range`` of the
bytes committed so far and a message saying so. The spec answers 416 to a chunk that does not continue
the upload, which is what a chunk racing another one is; the client can ask for the upload's status and
resume from there. distribution takes no lock at all and would interleave both bodies in the upload.
Exclusivity is per process: two registries on one storage behave as two distribution instances do.

Upload purging also removes what a killed process left behind: uploads killed while starting (no
``startedat``, dated by their directory) and, on drivers that keep them, orphan temporary files.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import threading
import typing as t
import uuid
from dataclasses import dataclass

from ..drivers.base import CHUNK_SIZE
from ..drivers.base import PathNotFound
from ..drivers.base import StorageDriver
from ..logs import log
from ..reference import Digest
from . import paths
from .blobs import BlobStore
from .cache import Descriptor
from .errors import BlobUploadUnknown
from .errors import DigestInvalid
from .errors import RangeInvalid
from .errors import SizeInvalid


@dataclass(frozen=True)
class UploadStatus:
    id: str
    size: int
    started_at: datetime.datetime


class _UploadState:
    """What this process knows of an upload: whether a request is writing it, and its running sha256."""

    def __init__(self, offset: int = 0) -> None:
        self.hasher = hashlib.sha256()
        #: Bytes the hasher has seen; it is valid only while that equals the stored size (-1: unknown).
        self.offset = offset
        #: The size before the write in progress, so that a refused request can report it while
        #: the writer appends in place (``None`` until this process has read it).
        self.committed: int | None = offset if offset >= 0 else None
        self.busy = threading.Lock()


class UploadStore:
    def __init__(self, driver: StorageDriver, blobs: BlobStore) -> None:
        self.driver = driver
        self.blobs = blobs
        # Hash states live in memory: Python's hashlib cannot serialise them. When one is missing
        # (a restart, or another process took the upload) the data is re-read at commit time.
        self._states: dict[str, _UploadState] = {}
        self._states_lock = threading.Lock()

    def start(self, name: str) -> UploadStatus:
        upload_id = str(uuid.uuid4())
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        self.driver.put_content(paths.upload_started_at(name, upload_id), _rfc3339(now).encode())
        self.driver.put_content(paths.upload_data(name, upload_id), b"")
        with self._states_lock:
            self._states[upload_id] = _UploadState()
        return UploadStatus(upload_id, 0, now)

    def status(self, name: str, upload_id: str) -> UploadStatus:
        """The upload's committed size: while a request of this process appends (in place, on some
        drivers), the size before that request, since its bytes are dropped if it fails."""
        status = self._stored_status(name, upload_id)
        with self._states_lock:
            state = self._states.get(upload_id)
        if state is not None and state.busy.locked() and state.committed is not None:
            return UploadStatus(upload_id, state.committed, status.started_at)
        return status

    def _stored_status(self, name: str, upload_id: str) -> UploadStatus:
        try:
            started = self.driver.get_content(paths.upload_started_at(name, upload_id)).decode()
            size = self.driver.stat(paths.upload_data(name, upload_id)).size
        except (PathNotFound, UnicodeDecodeError):
            raise BlobUploadUnknown({"uuid": upload_id}) from None
        return UploadStatus(upload_id, size, _parse_rfc3339(started))

    def append(
        self,
        name: str,
        upload_id: str,
        body: t.Iterable[bytes],
        *,
        start: int | None = None,
        length: int | None = None,
    ) -> UploadStatus:
        """Append ``body`` to the upload.

        :param start: where the client says the chunk begins; it must equal the current size.
        :param length: how many bytes the client promised; fewer or more is an error and
            nothing of this chunk is kept.
        :raises RangeInvalid: also when another request is writing the upload (see the module).
        """
        with self._exclusive(name, upload_id) as state:
            return self._append(name, upload_id, state, body, start, length)

    def finish(
        self,
        name: str,
        upload_id: str,
        digest: Digest,
        body: t.Iterable[bytes],
        *,
        start: int | None = None,
        length: int | None = None,
    ) -> Descriptor:
        """Append the last bytes, verify ``digest`` and move the data into place as a blob. A blob that is
        already stored, sent whole in this request, is only verified (see :meth:`_check_only`).

        The upload is held from the first byte to the move, so no other request's bytes can slip in
        between. On a failure the upload is cancelled, so nothing partial stays behind, except when
        the last chunk is refused as a PATCH would refuse it (``start`` or ``length`` wrong, or another
        request writing the upload): then the upload stays as it was, for the client to resume.
        """
        with self._exclusive(name, upload_id) as state:
            try:
                if self._holds_nothing(name, upload_id, start) and self._is_stored(digest):
                    descriptor = self._check_only(name, digest, body, length)
                    self.cancel(name, upload_id, missing_ok=True)
                    return descriptor
                status = self._append(name, upload_id, state, body, start, length)
                actual = self._digest_of(name, upload_id, state, status.size, digest.algorithm)
                if actual != digest:
                    raise DigestInvalid({"digest": str(digest), "actual": str(actual)})
                descriptor = self.blobs.adopt(paths.upload_data(name, upload_id), digest)
                self.blobs.link(name, digest)
            except (BlobUploadUnknown, RangeInvalid, SizeInvalid):
                raise
            except BaseException:
                self.cancel(name, upload_id, missing_ok=True)
                raise
            self.cancel(name, upload_id, missing_ok=True)
            return descriptor

    def cancel(self, name: str, upload_id: str, *, missing_ok: bool = False) -> None:
        with self._states_lock:
            self._states.pop(upload_id, None)
        try:
            self.driver.delete(paths.upload(name, upload_id))
        except PathNotFound:
            if not missing_ok:
                raise BlobUploadUnknown({"uuid": upload_id}) from None

    def purge(self, older_than: datetime.datetime, *, dry_run: bool = False) -> list[str]:
        """Delete uploads started before ``older_than``; returns the upload paths concerned.

        An upload this process is writing is spared whatever its age. Orphan temporary files last
        written before ``older_than`` are removed too (and logged), where the driver keeps any.
        """
        purged: list[str] = []
        if self.driver.exists(paths.REPOSITORIES):  # else nothing was ever pushed
            purged = [path for path in self._uploads_started_before(older_than) if not self._busy(path)]
        if not dry_run:
            for path in purged:
                with self._states_lock:
                    self._states.pop(paths.upload_id_of(path), None)
                with contextlib.suppress(PathNotFound):  # finished or cancelled meanwhile
                    self.driver.delete(path)
        orphans = self.driver.remove_orphans(older_than, dry_run=dry_run)
        if orphans:
            log.info("removed %d orphan temporary file(s)%s", len(orphans), " (dry run)" if dry_run else "")
        return purged

    def _uploads_started_before(self, older_than: datetime.datetime) -> t.Iterator[str]:
        for info in self.driver.walk(paths.REPOSITORIES):
            if not (info.is_dir and paths.is_upload(info.path)):
                continue
            started_at = paths.upload_started_at_in(info.path)
            try:
                started = _parse_rfc3339(self.driver.get_content(started_at).decode())
            except (PathNotFound, ValueError):
                # Killed inside ``start``, or written by something else: the directory's time will do.
                started = datetime.datetime.fromtimestamp(info.modtime, datetime.UTC)
            if started < older_than:
                yield info.path

    def _busy(self, path: str) -> bool:
        with self._states_lock:
            state = self._states.get(paths.upload_id_of(path))
        return state is not None and state.busy.locked()

    @contextlib.contextmanager
    def _exclusive(self, name: str, upload_id: str) -> t.Iterator[_UploadState]:
        """Hold the upload for one request, or refuse at once if another holds it."""
        state = self._state(upload_id)
        if not state.busy.acquire(blocking=False):
            raise self._refusal(name, upload_id, state)
        try:
            yield state
        except BlobUploadUnknown:
            # Nothing to remember of an upload that does not exist: ids from clients are not kept.
            with self._states_lock:
                if self._states.get(upload_id) is state:
                    del self._states[upload_id]
            raise
        finally:
            state.busy.release()

    def _refusal(self, name: str, upload_id: str, state: _UploadState) -> RangeInvalid:
        size = state.committed
        if size is None:
            size = self._stored_status(name, upload_id).size
        return RangeInvalid(
            {"uuid": upload_id, "size": size},
            committed=size,
            message="upload is being written by another request; resume from its Range when that ends",
        )

    def _append(
        self,
        name: str,
        upload_id: str,
        state: _UploadState,
        body: t.Iterable[bytes],
        start: int | None,
        length: int | None,
    ) -> UploadStatus:
        status = self._stored_status(name, upload_id)
        state.committed = status.size
        if start is not None and start != status.size:
            raise RangeInvalid(
                {"size": status.size, "start": start},
                committed=status.size,
                message=f"chunk starts at {start}, upload is at {status.size}",
            )
        hasher = state.hasher.copy() if state.offset == status.size else None
        written = 0
        with self.driver.writer(paths.upload_data(name, upload_id), append=True) as writer:
            for chunk in body:
                writer.write(chunk)
                if hasher is not None:
                    hasher.update(chunk)
                written += len(chunk)
            if length is not None and written != length:
                writer.cancel()
                raise SizeInvalid({"expected": length, "received": written})
            writer.commit()
        state.committed = status.size + written
        if hasher is not None:
            state.hasher, state.offset = hasher, status.size + written
        return UploadStatus(upload_id, status.size + written, status.started_at)

    def _holds_nothing(self, name: str, upload_id: str, start: int | None) -> bool:
        return start in (None, 0) and self._stored_status(name, upload_id).size == 0

    def _is_stored(self, digest: Digest) -> bool:
        # Storage itself is asked, as adopt() does: the cache may remember data collected since.
        return self.driver.exists(paths.blob_data(digest))

    def _check_only(
        self, name: str, digest: Digest, body: t.Iterable[bytes], length: int | None
    ) -> Descriptor:
        """Finish a whole-body upload of a blob already stored: its bytes are hashed, never written.

        Written first, they would be dropped at the move as a duplicate, after holding a second copy of
        the blob: on in-memory storage a second push of a 1 GiB blob peaked at twice its size.
        """
        hasher = hashlib.new(digest.algorithm)
        received = 0
        for chunk in body:
            hasher.update(chunk)
            received += len(chunk)
        if length is not None and received != length:
            raise SizeInvalid({"expected": length, "received": received})
        actual = Digest(digest.algorithm, hasher.hexdigest())
        if actual != digest:
            raise DigestInvalid({"digest": str(digest), "actual": str(actual)})
        self.blobs.link(name, digest)
        descriptor = Descriptor(digest, received)
        self.blobs.cache.set(descriptor)
        return descriptor

    def _state(self, upload_id: str) -> _UploadState:
        with self._states_lock:
            state = self._states.get(upload_id)
            if state is None:
                # Unknown here (a restart, or another process started it): re-read at commit.
                state = self._states[upload_id] = _UploadState(offset=-1)
            return state

    def _digest_of(self, name: str, upload_id: str, state: _UploadState, size: int, algorithm: str) -> Digest:
        if algorithm == "sha256" and state.offset == size:
            return Digest("sha256", state.hasher.hexdigest())
        hasher = hashlib.new(algorithm)
        with self.driver.reader(paths.upload_data(name, upload_id)) as reader:
            while chunk := reader.read(CHUNK_SIZE):
                hasher.update(chunk)
        return Digest(algorithm, hasher.hexdigest())


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_rfc3339(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
