"""The storage driver contract.

A driver stores opaque files under ``/``-separated absolute paths. It knows nothing of blobs, manifests
or repositories: :mod:`emulator.storage` builds those from these few operations. Every driver must
pass :mod:`emulator.drivers.contract`.
"""

from __future__ import annotations

import abc
import builtins
import datetime
import re
import typing as t
from dataclasses import dataclass

#: Paths are absolute, made of segments of the characters distribution allows in storage paths, and
#: no segment is ``.`` or ``..``: a path means what it says on every backend, and can never climb out of
#: the driver's root (a filesystem directory, an S3 prefix).
PATH_RE = re.compile(r"(?:/(?!\.\.?(?:/|\Z))[A-Za-z0-9._=+-]+)+")

#: Chunk size for streaming reads and copies: large enough to keep per-call overhead small.
CHUNK_SIZE = 1 << 20


class StorageError(Exception):
    """Base class of driver errors; each carries the path it concerns."""

    def __init__(self, path: str, message: str = "") -> None:
        super().__init__(f"{message or type(self).__name__}: {path}")
        self.path = path


class PathNotFound(StorageError):
    pass


class InvalidPath(StorageError):
    """A path outside the storage grammar; raised before the backend is touched."""

    def __init__(self, path: str, message: str = "") -> None:
        super().__init__(path, message)
        # The path may hold anything a caller passed, line breaks included: show it quoted.
        self.args = (f"{message or type(self).__name__}: {path!r}",)


class InvalidOffset(StorageError):
    pass


class StorageUnavailable(StorageError):
    """The backend is throttling, failing or unreachable: the request may succeed if retried."""


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    modtime: float
    is_dir: bool


class FileWriter(abc.ABC):
    """An open file being written; nothing is visible at its path until :meth:`commit`.

    For ``append`` writers the committed content is the earlier content plus what was written.
    """

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """Bytes in the file so far, earlier appends included."""

    @abc.abstractmethod
    def write(self, data: bytes) -> int: ...

    @abc.abstractmethod
    def commit(self) -> None:
        """Make what was written visible at the path, atomically."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Drop what this writer wrote; the path keeps its earlier content (if any)."""

    def __enter__(self) -> FileWriter:
        return self

    def __exit__(self, exc_type: object, *args: object) -> None:
        if exc_type is not None:
            self.cancel()


class StorageDriver(abc.ABC):
    """What every storage driver implements."""

    #: The name used in ``storage:`` configuration.
    name: t.ClassVar[str]
    #: Every operation is answered by this machine (its memory or a local disk), never after a round
    #: trip to a service: a request may hold the server's turn while it calls the driver.
    local: t.ClassVar[bool] = False
    #: Files are files of the local filesystem: a ``stat`` is cheaper than a read, and a file's size
    #: and modification time (the filesystem's own clock) change when its content does, so what was
    #: read may be remembered while they stay the same.
    local_files: t.ClassVar[bool] = False

    @abc.abstractmethod
    def get_content(self, path: str) -> bytes:
        """Return a small file's whole content (links, manifests, state)."""

    @abc.abstractmethod
    def put_content(self, path: str, content: bytes) -> None:
        """Replace a small file's content atomically, creating parents as needed."""

    @abc.abstractmethod
    def reader(self, path: str, offset: int = 0) -> t.BinaryIO:
        """Open a file for streaming reads from ``offset``."""

    @abc.abstractmethod
    def writer(self, path: str, append: bool = False) -> FileWriter:
        """Open a file for streaming writes; ``append`` continues an existing file."""

    @abc.abstractmethod
    def stat(self, path: str) -> FileInfo: ...

    @abc.abstractmethod
    def list(self, path: str) -> list[str]:
        """Full paths of the direct children of a directory, sorted."""

    @abc.abstractmethod
    def move(self, source: str, dest: str) -> None:
        """Move a file, replacing ``dest`` atomically."""

    @abc.abstractmethod
    def delete(self, path: str) -> None:
        """Delete a file or a whole directory tree."""

    def redirect_url(self, path: str, method: str) -> str | None:
        """A URL the client may fetch the file from directly, or ``None`` to serve it ourselves."""
        check_path(path)
        return None

    def walk(self, path: str) -> t.Iterator[FileInfo]:
        """Every file and directory below ``path``, depth first, in sorted order."""
        for child in self.list(path):
            info = self.stat(child)
            yield info
            if info.is_dir:
                yield from self.walk(child)

    def remove_orphans(self, older_than: datetime.datetime, *, dry_run: bool = False) -> builtins.list[str]:
        """Remove what writes killed mid-way left behind, last touched before ``older_than``; their
        paths. Only drivers that write aside and rename (filesystem) leave any."""
        return []

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except PathNotFound:
            return False
        return True


def check_path(path: str) -> str:
    """``path`` itself if it is a valid storage path, else :class:`InvalidPath`: a path is refused,
    never normalised (``/a/../b`` does not become ``/b``)."""
    if path != "/" and PATH_RE.fullmatch(path) is None:
        raise InvalidPath(path)
    return path


def check_deletable(path: str) -> str:
    """:func:`check_path`, and never the root: nothing in a registry deletes its whole storage."""
    if path == "/":
        raise InvalidPath(path, "the root cannot be deleted")
    return check_path(path)


def listable(name: str) -> bool:
    """Whether a name found in a directory (or under a key prefix) can be a path segment. Names that
    something else wrote there and that no path could reach are left out of listings: a walk would
    otherwise hand them to calls that refuse them."""
    return PATH_RE.fullmatch("/" + name) is not None


def parent_of(path: str) -> str:
    parent = path.rsplit("/", 1)[0]
    return parent or "/"
