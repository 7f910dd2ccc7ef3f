"""Blob uploads: data written aside under ``_uploads/<id>`` and moved into place once verified."""

from __future__ import annotations

import datetime
import hashlib
import threading
import typing as t
import uuid
from dataclasses import dataclass

from ..drivers.base import CHUNK_SIZE
from ..drivers.base import PathNotFound
from ..drivers.base import StorageDriver
from ..errors import BlobUploadUnknown
from ..errors import DigestInvalid
from ..errors import RangeInvalid
from ..errors import SizeInvalid
from ..reference import Digest
from . import paths
from .blobs import BlobStore
from .cache import Descriptor


@dataclass(frozen=True)
class UploadStatus:
    id: str
    size: int
    started_at: datetime.datetime


class _HashState:
    """The running sha256 of an upload, valid while it matches the stored size."""

    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        self.offset = 0
        self.lock = threading.Lock()


class UploadStore:
    def __init__(self, driver: StorageDriver, blobs: BlobStore) -> None:
        self.driver = driver
        self.blobs = blobs
        # Hash states live in memory: Python's hashlib cannot serialise them. When one is missing
        # (a restart, or another process took the upload) the data is re-read at commit time.
        self._states: dict[str, _HashState] = {}
        self._states_lock = threading.Lock()

    def start(self, name: str) -> UploadStatus:
        upload_id = str(uuid.uuid4())
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        self.driver.put_content(paths.upload_started_at(name, upload_id), _rfc3339(now).encode())
        self.driver.put_content(paths.upload_data(name, upload_id), b"")
        with self._states_lock:
            self._states[upload_id] = _HashState()
        return UploadStatus(upload_id, 0, now)

    def status(self, name: str, upload_id: str) -> UploadStatus:
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
        """
        state = self._state(upload_id)
        with state.lock:
            status = self.status(name, upload_id)
            if start is not None and start != status.size:
                raise RangeInvalid(
                    {"size": status.size, "start": start},
                    message=f"chunk starts at {start}, upload is at {status.size}",
                    headers=_range_headers(status.size),
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
            if hasher is not None:
                state.hasher, state.offset = hasher, status.size + written
            return UploadStatus(upload_id, status.size + written, status.started_at)

    def finish(self, name: str, upload_id: str, digest: Digest, body: t.Iterable[bytes]) -> Descriptor:
        """Append the last bytes, verify ``digest`` and move the data into place as a blob.

        On any failure the upload is cancelled, so nothing partial stays behind.
        """
        try:
            status = self.append(name, upload_id, body)
            actual = self._digest_of(name, upload_id, status.size, digest.algorithm)
            if actual != digest:
                raise DigestInvalid({"digest": str(digest), "actual": str(actual)})
            descriptor = self.blobs.adopt(paths.upload_data(name, upload_id), digest)
            self.blobs.link(name, digest)
        except BlobUploadUnknown:
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
        """Delete uploads started before ``older_than``; returns the upload paths concerned."""
        purged: list[str] = []
        if not self.driver.exists(paths.REPOSITORIES):
            return purged  # nothing was ever pushed
        for info in self.driver.walk(paths.REPOSITORIES):
            if not (info.is_dir and info.path.rsplit("/", 2)[-2] == paths.UPLOADS):
                continue
            try:
                started = _parse_rfc3339(self.driver.get_content(f"{info.path}/startedat").decode())
            except (PathNotFound, ValueError):
                started = datetime.datetime.fromtimestamp(info.modtime, datetime.UTC)
            if started < older_than:
                purged.append(info.path)
        if not dry_run:
            for path in purged:
                self.driver.delete(path)
        return purged

    def _state(self, upload_id: str) -> _HashState:
        with self._states_lock:
            state = self._states.get(upload_id)
            if state is None:
                state = self._states[upload_id] = _HashState()
                state.offset = -1  # unknown: forces a re-read at commit
            return state

    def _digest_of(self, name: str, upload_id: str, size: int, algorithm: str) -> Digest:
        state = self._state(upload_id)
        if algorithm == "sha256" and state.offset == size:
            return Digest("sha256", state.hasher.hexdigest())
        hasher = hashlib.new(algorithm)
        with self.driver.reader(paths.upload_data(name, upload_id)) as reader:
            while chunk := reader.read(CHUNK_SIZE):
                hasher.update(chunk)
        return Digest(algorithm, hasher.hexdigest())


def range_header(size: int) -> str:
    """The ``Range`` an upload reports: the inclusive last byte, ``0-0`` when empty."""
    return f"0-{max(size - 1, 0)}"


def _range_headers(size: int) -> dict[str, str]:
    return {"Range": range_header(size)}


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_rfc3339(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
