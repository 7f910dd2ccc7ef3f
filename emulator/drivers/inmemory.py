"""A driver that keeps files in process memory; nothing survives a restart.

Files are lists of chunks rather than one ``bytes`` so that appending never copies what is stored.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
import typing as t

from .base import CHUNK_SIZE
from .base import FileInfo
from .base import FileWriter
from .base import InvalidOffset
from .base import PathNotFound
from .base import StorageDriver
from .base import check_deletable
from .base import check_path


class _File:
    __slots__ = ("chunks", "modtime", "size")

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.size = sum(len(c) for c in chunks)
        self.modtime = time.time()


class _ChunkReader(io.RawIOBase):
    """Reads a snapshot of a file's chunks without joining them."""

    def __init__(self, chunks: list[bytes], offset: int) -> None:
        self._chunks = chunks
        self._index = 0
        self._pos = offset
        while self._index < len(chunks) and offset >= len(chunks[self._index]):
            offset -= len(chunks[self._index])
            self._index += 1
        self._within = offset

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._index >= len(self._chunks):
            return b""
        chunk = self._chunks[self._index]
        limit = len(chunk) - self._within if size is None or size < 0 else size
        piece = chunk[self._within : self._within + min(limit, CHUNK_SIZE * 4)]
        self._within += len(piece)
        if self._within >= len(chunk):
            self._index += 1
            self._within = 0
        return piece

    def readinto(self, buffer: t.Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _MemoryWriter(FileWriter):
    def __init__(self, driver: InMemoryDriver, path: str, base: list[bytes]) -> None:
        self._driver = driver
        self._path = path
        self._chunks = list(base)
        self._size = sum(len(c) for c in base)
        self._done = False

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> int:
        if data:
            self._chunks.append(bytes(data))
            self._size += len(data)
        return len(data)

    def commit(self) -> None:
        if not self._done:
            self._done = True
            self._driver._store(self._path, self._chunks)

    def cancel(self) -> None:
        self._done = True
        self._chunks = []


class InMemoryDriver(StorageDriver):
    name = "inmemory"
    local = True
    local_files = False

    def __init__(self) -> None:
        # A tree of dicts: directories map names to children, leaves are files. Lookups cost the
        # path's depth, not the number of files, so large catalogs stay fast.
        self._root: dict[str, t.Any] = {}
        self._lock = threading.Lock()

    def _walk_to(self, path: str) -> _File | dict[str, t.Any]:
        node: t.Any = self._root
        for part in filter(None, check_path(path).split("/")):
            if not isinstance(node, dict) or part not in node:
                raise PathNotFound(path)
            node = node[part]
        return t.cast("_File | dict[str, t.Any]", node)

    def _store(self, path: str, chunks: list[bytes]) -> None:
        *parents, leaf = path.split("/")[1:]
        with self._lock:
            node = self._root
            for part in parents:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    # A file stands where a directory is needed: replace it, as a filesystem can't.
                    child = node[part] = {}
                node = child
            node[leaf] = _File(chunks)

    def _file(self, path: str) -> _File:
        node = self._walk_to(path)
        if not isinstance(node, _File):
            raise PathNotFound(path)
        return node

    def get_content(self, path: str) -> bytes:
        return b"".join(self._file(path).chunks)

    def put_content(self, path: str, content: bytes) -> None:
        check_path(path)
        self._store(path, [bytes(content)])

    def reader(self, path: str, offset: int = 0) -> t.BinaryIO:
        file = self._file(path)
        if offset < 0 or offset > file.size:
            raise InvalidOffset(path)
        return t.cast(t.BinaryIO, io.BufferedReader(_ChunkReader(file.chunks, offset), CHUNK_SIZE))

    def writer(self, path: str, append: bool = False) -> FileWriter:
        check_path(path)
        base: list[bytes] = []
        if append:
            with contextlib.suppress(PathNotFound):
                base = self._file(path).chunks
        return _MemoryWriter(self, path, base)

    def stat(self, path: str) -> FileInfo:
        node = self._walk_to(path)
        if isinstance(node, _File):
            return FileInfo(path, node.size, node.modtime, False)
        return FileInfo(path, 0, _latest(node), True)

    def list(self, path: str) -> list[str]:
        node = self._walk_to(path)
        if not isinstance(node, dict):
            raise PathNotFound(path)
        prefix = "" if path == "/" else path
        with self._lock:
            names = sorted(node)
        return [f"{prefix}/{name}" for name in names]

    def move(self, source: str, dest: str) -> None:
        file = self._file(source)
        check_path(dest)
        self._store(dest, file.chunks)
        self._remove(source)

    def delete(self, path: str) -> None:
        self._walk_to(check_deletable(path))
        self._remove(path)

    def _remove(self, path: str) -> None:
        parts = path.split("/")[1:]
        with self._lock:
            node = self._root
            for part in parts[:-1]:
                node = node[part]
            # Empty parents stay, as directories do on a filesystem, so both drivers list alike.
            node.pop(parts[-1], None)


def _latest(node: dict[str, t.Any]) -> float:
    times = [c.modtime if isinstance(c, _File) else _latest(c) for c in list(node.values())]
    return max(times, default=0.0)
