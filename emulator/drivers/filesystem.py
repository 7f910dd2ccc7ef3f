"""A driver on a local directory, laid out exactly as distribution lays it out.

Every write goes to a temporary file beside its target and is renamed into place, so a crash never
leaves a partial file visible at a real path. Appends (an upload's private data file) are written in
place and cut back to where they started if cancelled.

Data is fsynced before a commit returns: before the rename of a new file (blob data written whole,
links, manifests, every ``put_content``), and after the last write of an append. A blob's data reaches
its place by a rename of the upload's data file, whose every append was synced. distribution's
filesystem driver syncs on commit too. Directories are not synced: after an operating system crash or
a power cut a rename may be lost (the client pushes again), but no blob, link or manifest is found half
written; only an upload's private data file can end in an append that was never committed. The
cost is nothing on tmpfs and one device flush per write on a disk: about 0.6 ms each on the ext4
volume this was measured on, so a tagged manifest PUT (four small files) pays about 2.5 ms, and a large
blob the time its data takes to reach the device.

The root is created when the driver is made, so a root that cannot be a directory stops the start
(:class:`RootUnusable`). Should the operating system refuse an operation later (the root replaced by a
file, made unwritable, the disk full), the driver raises :class:`StorageFailure`, whose text is one line
naming the file and the error.

A process killed while writing leaves its temporary file behind (hidden from :meth:`list`, so nothing
above the driver sees it); :meth:`FileSystemDriver.remove_orphans` removes those older than a cutoff,
and upload purging calls it.
"""

from __future__ import annotations

import bisect
import builtins
import contextlib
import datetime
import functools
import os
import shutil
import stat
import string
import typing as t
import uuid

from .base import FileInfo
from .base import FileWriter
from .base import InvalidOffset
from .base import PathNotFound
from .base import StorageDriver
from .base import StorageError
from .base import check_deletable
from .base import check_path
from .base import listable

#: Temporary files carry this prefix; listings skip them so half-written files are never seen.
_TEMP_PREFIX = ".tmp-"
#: The first string sorting after every name that starts with :data:`_TEMP_PREFIX` ("." follows "-").
_AFTER_TEMP = ".tmp."
#: Deletes every character a listable name may hold: a listing whose joined names it leaves empty needs
#: no check per name. ``os.listdir`` never returns "", "." or "..", so the characters are all there is
#: to check; a call of :func:`listable` per name cost as much again as ``os.listdir`` on 10,000 tags.
_PLAIN_CHARACTERS = str.maketrans(dict.fromkeys(string.ascii_letters + string.digits + "._=+-"))

_P = t.ParamSpec("_P")
_R = t.TypeVar("_R")


class StorageFailure(StorageError):
    """The operating system refused an operation on a file under the root; ``str(error)`` is one line,
    ``'<file>: <error>'``, for the log (a traceback would only repeat it)."""

    def __init__(self, path: str, error: OSError) -> None:
        super().__init__(path)
        self.error = error
        self.problem = error.strerror or str(error)
        self.filename = str(error.filename) if error.filename is not None else path
        self.args = (f"{self.filename}: {self.problem}",)


class RootUnusable(StorageFailure):
    """The root directory does not exist and cannot be created, or is not a directory."""

    def __init__(self, root: str, error: OSError) -> None:
        super().__init__("/", error)
        self.root = root
        self.args = (f"cannot create {root}: {self.problem}",)


@contextlib.contextmanager
def _failing_as(path: str) -> t.Iterator[None]:
    """Turn an ``OSError`` nobody expected into :class:`StorageFailure` about ``path``."""
    try:
        yield
    except OSError as e:
        raise StorageFailure(path, e) from e


def _os_failures(method: t.Callable[_P, _R]) -> t.Callable[_P, _R]:
    """What :func:`_failing_as` does, around a driver method; the storage path is its argument after
    ``self``. A plain ``try`` rather than the context manager: a manifest GET makes two ``stat`` calls,
    and entering a generator-based context manager cost more than the system call."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except OSError as e:
            raise StorageFailure(str(args[1]) if len(args) > 1 else "/", e) from e

    return wrapper


class _FileSystemWriter(FileWriter):
    def __init__(self, target: str, append: bool) -> None:
        self._target = target
        self._temp = os.path.join(os.path.dirname(target), f"{_TEMP_PREFIX}{uuid.uuid4().hex}")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        self._size = 0
        if append and os.path.exists(target):
            # Appending writes in place: the target is an upload's private data file, which
            # only becomes visible as a blob by a later move.
            self._file = open(target, "ab")  # noqa: SIM115 - closed by commit or cancel
            self._size = self._file.tell()
            self._start = self._size
            self._in_place = True
        else:
            self._file = open(self._temp, "wb")  # noqa: SIM115
            self._start = 0
            self._in_place = False

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> int:
        with _failing_as(self._target):
            written = self._file.write(data)
        self._size += written
        return written

    def commit(self) -> None:
        if self._file.closed:
            return
        with _failing_as(self._target):
            self._commit()

    def _commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if not self._in_place:
            os.replace(self._temp, self._target)

    def cancel(self) -> None:
        if self._file.closed:
            return
        with _failing_as(self._target):
            self._cancel()

    def _cancel(self) -> None:
        if self._in_place:
            self._file.truncate(self._start)
            self._file.close()
        else:
            self._file.close()
            os.unlink(self._temp)


class FileSystemDriver(StorageDriver):
    name = "filesystem"
    local = True
    local_files = True

    def __init__(self, rootdirectory: str) -> None:
        self.root = os.path.abspath(rootdirectory)
        try:
            # Created now rather than at the first write, so that a root that can never be a directory
            # (a path through a file, a read-only place) is reported before anything is served.
            os.makedirs(self.root, exist_ok=True)
        except OSError as e:
            raise RootUnusable(self.root, e) from None

    def _full(self, path: str) -> str:
        return self.root + check_path(path) if path != "/" else self.root

    @_os_failures
    def get_content(self, path: str) -> bytes:
        try:
            with open(self._full(path), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFound(path) from None

    @_os_failures
    def put_content(self, path: str, content: bytes) -> None:
        with self.writer(path) as w:
            w.write(content)
            w.commit()

    @_os_failures
    def reader(self, path: str, offset: int = 0) -> t.BinaryIO:
        try:
            f = open(self._full(path), "rb")  # noqa: SIM115 - the caller closes it
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFound(path) from None
        if offset:
            if offset < 0 or offset > os.fstat(f.fileno()).st_size:
                f.close()
                raise InvalidOffset(path)
            f.seek(offset)
        return f

    @_os_failures
    def writer(self, path: str, append: bool = False) -> FileWriter:
        full = self._full(path)
        if os.path.isdir(full):
            raise PathNotFound(path)
        return _FileSystemWriter(full, append)

    @_os_failures
    def stat(self, path: str) -> FileInfo:
        try:
            st = os.stat(self._full(path))
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFound(path) from None
        is_dir = stat.S_ISDIR(st.st_mode)
        return FileInfo(path, 0 if is_dir else st.st_size, st.st_mtime, is_dir)

    def list(self, path: str) -> builtins.list[str]:
        prefix = "" if path == "/" else path
        return [f"{prefix}/{n}" for n in self._names(path)]

    def names(self, path: str) -> builtins.list[str]:
        """The names :meth:`list` lists in ``path``, sorted, without the path before each: a caller that
        wants only names (a repository's tags) is spared making 10,000 paths and cutting them back."""
        # Both call _names rather than each other, so that each is timed once as a listing (metrics).
        return self._names(path)

    @_os_failures
    def _names(self, path: str) -> builtins.list[str]:
        try:
            names = os.listdir(self._full(path))
        except (FileNotFoundError, NotADirectoryError):
            if path == "/":
                return []
            raise PathNotFound(path) from None
        names.sort()
        # Temporary files are one run of the sorted names.
        first = bisect.bisect_left(names, _TEMP_PREFIX)
        end = bisect.bisect_left(names, _AFTER_TEMP, first)
        if first < end:
            del names[first:end]
        if "".join(names).translate(_PLAIN_CHARACTERS):
            names = [n for n in names if listable(n)]
        return names

    @_os_failures
    def move(self, source: str, dest: str) -> None:
        src, dst = self._full(source), self._full(dest)
        if not os.path.exists(src):
            raise PathNotFound(source)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.replace(src, dst)

    @_os_failures
    def delete(self, path: str) -> None:
        full = self._full(check_deletable(path))
        try:
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.unlink(full)
        except FileNotFoundError:
            raise PathNotFound(path) from None

    def remove_orphans(self, older_than: datetime.datetime, *, dry_run: bool = False) -> builtins.list[str]:
        """Remove temporary files last written before ``older_than`` (left by a killed process).

        Returns their paths; with ``dry_run`` nothing is removed. A writer still in progress keeps
        writing to its file, so only one idle for longer than the cutoff could be taken for an orphan.
        """
        cutoff = older_than.timestamp()
        found: builtins.list[str] = []
        for directory, _, files in os.walk(self.root):
            for name in files:
                if not name.startswith(_TEMP_PREFIX):
                    continue
                full = os.path.join(directory, name)
                try:
                    if os.lstat(full).st_mtime >= cutoff:
                        continue
                    if not dry_run:
                        os.unlink(full)
                except FileNotFoundError:
                    continue  # committed or cancelled meanwhile
                found.append(full[len(self.root) :])
        return sorted(found)
