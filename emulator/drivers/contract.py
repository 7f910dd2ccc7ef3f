"""The storage driver contract as a pytest suite every driver must pass, shipped so that any driver can.

A driver's test module subclasses :class:`DriverContract` and provides the ``driver`` fixture::

    class TestInMemory(DriverContract):
        @pytest.fixture
        def driver(self) -> StorageDriver:
            return InMemoryDriver()

Each test works below a top directory of its own (the ``top`` fixture) and removes it afterwards; an
autouse check then fails the test if anything is left under ``/``, so a driver whose ``delete`` leaves
debris is caught. The cases are distribution's (``registry/storage/driver/testsuites``): paths, content,
streams with offsets, the upload pattern of appending across writers, invisibility before commit,
moves that overwrite, deletes that spare siblings, listing, stat, walk, the typed errors, concurrency
and a stream of several MiB.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import typing as t
import uuid

import pytest

from .base import FileWriter
from .base import InvalidOffset
from .base import InvalidPath
from .base import PathNotFound
from .base import StorageDriver

MiB = 1 << 20

#: Paths every driver must refuse, never normalise: relative ones, empty segments, a trailing slash,
#: ``.`` and ``..`` segments anywhere, and characters outside distribution's path alphabet (NUL,
#: backslash, line breaks, non-ASCII among them).
INVALID_PATHS = (
    "",
    "relative/path",
    "relative",
    ".",
    "..",
    "./file",
    "../file",
    "/double//slash",
    "//",
    "/trailing/",
    "/.",
    "/..",
    "/dir/.",
    "/dir/..",
    "/dir/./file",
    "/dir/../file",
    "/../etc/passwd",
    "/dir/../../escape",
    "/nul\x00byte",
    "/nul/\x00",
    "/back\\slash",
    "/dir\\..\\file",
    "/line\nbreak",
    "/carriage\r\nreturn",
    "/trailing-newline\n",
    "/tab\there",
    "/non-ascii-\xe9",
    "/percent%2e%2e",
    "/with space",
    "/star*",
    "/semi;colon",
    "/colon:x",
)

#: Each path-taking operation of the contract, by name, applied to one path.
PATH_OPERATIONS: dict[str, t.Callable[[StorageDriver, str], object]] = {
    "get_content": lambda driver, path: driver.get_content(path),
    "put_content": lambda driver, path: driver.put_content(path, b"x"),
    "reader": lambda driver, path: driver.reader(path),
    "reader at an offset": lambda driver, path: driver.reader(path, 1),
    "writer": lambda driver, path: driver.writer(path),
    "writer appending": lambda driver, path: driver.writer(path, append=True),
    "stat": lambda driver, path: driver.stat(path),
    "exists": lambda driver, path: driver.exists(path),
    "list": lambda driver, path: driver.list(path),
    "walk": lambda driver, path: list(driver.walk(path)),
    "delete": lambda driver, path: driver.delete(path),
    "move from": lambda driver, path: driver.move(path, "/valid"),
    "move to": lambda driver, path: driver.move("/valid", path),
    "redirect_url": lambda driver, path: driver.redirect_url(path, "GET"),
}

#: Unusual but valid names: every character distribution's path regexp allows.
ODD_NAMES = ("a.b", "a-b", "a_b", "a=b", "a+b", "...", "-", "Z9")


def _random(size: int) -> bytes:
    return os.urandom(size)


def _read_all(driver: StorageDriver, path: str, offset: int = 0) -> bytes:
    with driver.reader(path, offset) as reader:
        chunks = []
        while chunk := reader.read(256 * 1024):
            chunks.append(chunk)
    return b"".join(chunks)


def _write(driver: StorageDriver, path: str, *pieces: bytes, append: bool = False) -> FileWriter:
    writer = driver.writer(path, append=append)
    for piece in pieces:
        assert writer.write(piece) == len(piece)
    writer.commit()
    return writer


class DriverContract:
    """The tests; subclasses provide a fresh, empty ``driver`` per test."""

    @pytest.fixture
    def driver(self) -> StorageDriver:
        raise NotImplementedError("a DriverContract subclass must provide the driver fixture")

    @pytest.fixture(autouse=True)
    def _nothing_left(self, driver: StorageDriver) -> t.Iterator[None]:
        yield
        assert driver.list("/") == [], "the test (or the driver's delete) left files behind"

    @pytest.fixture
    def top(self, driver: StorageDriver) -> t.Iterator[str]:
        """A top-level directory for this test, deleted (with everything below) afterwards."""
        path = f"/contract-{uuid.uuid4().hex[:12]}"
        yield path
        if driver.exists(path):
            driver.delete(path)

    # -- paths -----------------------------------------------------------------------------------------

    @pytest.mark.parametrize("path", INVALID_PATHS)
    def test_invalid_paths_are_refused(self, driver: StorageDriver, path: str) -> None:
        # "/valid" exists, so that "move to" gets as far as its destination.
        driver.put_content("/valid", b"kept")
        accepted = []
        for name, operation in PATH_OPERATIONS.items():
            try:
                operation(driver, path)
            except InvalidPath:
                continue
            except Exception as e:  # reported below with the operations that raised nothing
                accepted.append(f"{name}: raised {type(e).__name__}: {e}")
            else:
                accepted.append(f"{name}: accepted")
        assert driver.list("/") == ["/valid"]
        assert driver.get_content("/valid") == b"kept"
        driver.delete("/valid")
        assert accepted == [], f"{path!r} was not refused with InvalidPath by: {accepted}"

    def test_dot_segments_never_reach_what_they_point_at(self, driver: StorageDriver, top: str) -> None:
        """``..`` and ``.`` are refused, not resolved: deleting, overwriting or moving through them
        leaves the directories they would have named untouched."""
        driver.put_content(f"{top}/repo/_uploads/id/data", b"upload")
        driver.put_content(f"{top}/repo/_layers/link", b"layer")
        driver.put_content(f"{top}/other/file", b"other")
        before = {info.path: (info.size, info.is_dir) for info in driver.walk(top)}
        uploads = f"{top}/repo/_uploads"
        operations: list[t.Callable[[str], object]] = [
            driver.delete,
            lambda path: driver.put_content(path, b"x"),
            driver.writer,
            lambda path: driver.move(path, f"{top}/moved"),
            lambda path: driver.move(f"{top}/other/file", path),
        ]
        for path in (f"{uploads}/..", f"{uploads}/.", f"{uploads}/id/../..", f"{top}/repo/../other"):
            for operation in operations:
                with pytest.raises(InvalidPath):
                    operation(path)
        assert {info.path: (info.size, info.is_dir) for info in driver.walk(top)} == before
        assert driver.get_content(f"{top}/repo/_layers/link") == b"layer"
        assert driver.get_content(f"{top}/other/file") == b"other"

    def test_move_to_an_invalid_path_is_refused(self, driver: StorageDriver, top: str) -> None:
        driver.put_content(f"{top}/file", b"x")
        with pytest.raises(InvalidPath):
            driver.move(f"{top}/file", f"{top}/bad path")
        assert driver.get_content(f"{top}/file") == b"x"

    def test_valid_odd_names(self, driver: StorageDriver, top: str) -> None:
        for name in ODD_NAMES:
            driver.put_content(f"{top}/{name}/{name}", name.encode())
        for name in ODD_NAMES:
            assert driver.get_content(f"{top}/{name}/{name}") == name.encode()
        assert driver.list(top) == sorted(f"{top}/{name}" for name in ODD_NAMES)

    def test_deep_path(self, driver: StorageDriver, top: str) -> None:
        path = top + "".join(f"/level{n}" for n in range(20)) + "/file"
        driver.put_content(path, b"deep")
        assert driver.get_content(path) == b"deep"

    # -- whole content ---------------------------------------------------------------------------------

    def test_put_then_get(self, driver: StorageDriver, top: str) -> None:
        content = _random(4096)
        driver.put_content(f"{top}/a/b/file", content)
        assert driver.get_content(f"{top}/a/b/file") == content

    def test_put_replaces(self, driver: StorageDriver, top: str) -> None:
        driver.put_content(f"{top}/file", b"first version, longer")
        driver.put_content(f"{top}/file", b"second")
        assert driver.get_content(f"{top}/file") == b"second"
        assert driver.stat(f"{top}/file").size == 6

    def test_empty_content(self, driver: StorageDriver, top: str) -> None:
        driver.put_content(f"{top}/empty", b"")
        assert driver.get_content(f"{top}/empty") == b""
        info = driver.stat(f"{top}/empty")
        assert (info.size, info.is_dir) == (0, False)

    def test_binary_content_is_kept_exactly(self, driver: StorageDriver, top: str) -> None:
        content = bytes(range(256)) * 16 + b"\r\n\x00\n"
        driver.put_content(f"{top}/binary", content)
        assert driver.get_content(f"{top}/binary") == content

    def test_get_missing(self, driver: StorageDriver, top: str) -> None:
        with pytest.raises(PathNotFound):
            driver.get_content(f"{top}/missing")
        driver.put_content(f"{top}/dir/file", b"x")
        with pytest.raises(PathNotFound):
            driver.get_content(f"{top}/dir/other")

    # -- streaming reads -------------------------------------------------------------------------------

    def test_reader_from_offsets(self, driver: StorageDriver, top: str) -> None:
        content = _random(100_000)
        driver.put_content(f"{top}/file", content)
        for offset in (0, 1, 4095, 65536, 99_999, 100_000):
            assert _read_all(driver, f"{top}/file", offset) == content[offset:], offset

    def test_reader_of_empty_file(self, driver: StorageDriver, top: str) -> None:
        driver.put_content(f"{top}/empty", b"")
        assert _read_all(driver, f"{top}/empty") == b""

    def test_reader_offset_past_the_end(self, driver: StorageDriver, top: str) -> None:
        driver.put_content(f"{top}/file", b"0123456789")
        with pytest.raises(InvalidOffset):
            driver.reader(f"{top}/file", 11)
        with pytest.raises(InvalidOffset):
            driver.reader(f"{top}/file", -1)

    def test_reader_of_missing_file(self, driver: StorageDriver, top: str) -> None:
        with pytest.raises(PathNotFound):
            driver.reader(f"{top}/missing")
        with pytest.raises(PathNotFound):
            driver.reader(f"{top}/missing", 10)

    def test_reader_in_small_reads(self, driver: StorageDriver, top: str) -> None:
        content = _random(10_000)
        driver.put_content(f"{top}/file", content)
        pieces = []
        with driver.reader(f"{top}/file", 5) as reader:
            while piece := reader.read(7):
                assert len(piece) <= 7
                pieces.append(piece)
        assert b"".join(pieces) == content[5:]

    # -- writers ---------------------------------------------------------------------------------------

    def test_writer_streams_pieces(self, driver: StorageDriver, top: str) -> None:
        pieces = [_random(n) for n in (1, 1000, 65536, 3, 200_000)]
        writer = _write(driver, f"{top}/file", *pieces)
        assert writer.size == sum(map(len, pieces))
        assert driver.get_content(f"{top}/file") == b"".join(pieces)

    def test_nothing_visible_before_commit(self, driver: StorageDriver, top: str) -> None:
        writer = driver.writer(f"{top}/dir/file")
        writer.write(b"not yet")
        assert writer.size == 7
        with pytest.raises(PathNotFound):
            driver.stat(f"{top}/dir/file")
        with pytest.raises(PathNotFound):
            driver.get_content(f"{top}/dir/file")
        writer.commit()
        assert driver.get_content(f"{top}/dir/file") == b"not yet"

    def test_overwrite_is_invisible_before_commit(self, driver: StorageDriver, top: str) -> None:
        driver.put_content(f"{top}/file", b"old content")
        writer = driver.writer(f"{top}/file")
        writer.write(b"new")
        assert driver.get_content(f"{top}/file") == b"old content"
        writer.commit()
        assert driver.get_content(f"{top}/file") == b"new"

    def test_cancelled_new_file_leaves_nothing(self, driver: StorageDriver, top: str) -> None:
        driver.put_content(f"{top}/keep", b"k")
        writer = driver.writer(f"{top}/file")
        writer.write(b"discarded")
        writer.cancel()
        with pytest.raises(PathNotFound):
            driver.stat(f"{top}/file")
        assert driver.list(top) == [f"{top}/keep"]

    def test_writer_context_cancels_on_error(self, driver: StorageDriver, top: str) -> None:
        with pytest.raises(RuntimeError), driver.writer(f"{top}/file") as writer:
            writer.write(b"discarded")
            raise RuntimeError("the client went away")
        with pytest.raises(PathNotFound):
            driver.stat(f"{top}/file")

    def test_commit_of_empty_writer_creates_an_empty_file(self, driver: StorageDriver, top: str) -> None:
        _write(driver, f"{top}/empty")
        assert driver.get_content(f"{top}/empty") == b""

    # -- appends: the upload pattern, one writer per request -------------------------------------------

    def test_append_across_writers(self, driver: StorageDriver, top: str) -> None:
        path = f"{top}/_uploads/id/data"
        driver.put_content(path, b"")
        pieces = [_random(n) for n in (1000, 1, 70_000, 12)]
        expected = b""
        for piece in pieces:
            writer = driver.writer(path, append=True)
            assert writer.size == len(expected)
            writer.write(piece)
            writer.commit()
            expected += piece
            assert writer.size == len(expected)
            assert driver.stat(path).size == len(expected)
        assert driver.get_content(path) == expected
        assert _read_all(driver, path, 1001) == expected[1001:]

    def test_append_to_missing_file_creates_it(self, driver: StorageDriver, top: str) -> None:
        writer = _write(driver, f"{top}/file", b"abc", append=True)
        assert writer.size == 3
        assert driver.get_content(f"{top}/file") == b"abc"

    def test_append_after_zero_byte_commit(self, driver: StorageDriver, top: str) -> None:
        _write(driver, f"{top}/file")
        _write(driver, f"{top}/file", append=True)
        _write(driver, f"{top}/file", b"after nothing", append=True)
        assert driver.get_content(f"{top}/file") == b"after nothing"

    def test_append_that_writes_nothing_keeps_content(self, driver: StorageDriver, top: str) -> None:
        driver.put_content(f"{top}/file", b"kept")
        writer = _write(driver, f"{top}/file", append=True)
        assert writer.size == 4
        assert driver.get_content(f"{top}/file") == b"kept"

    def test_cancelled_append_keeps_earlier_content(self, driver: StorageDriver, top: str) -> None:
        _write(driver, f"{top}/file", b"earlier")
        writer = driver.writer(f"{top}/file", append=True)
        writer.write(b" and dropped")
        writer.cancel()
        assert driver.get_content(f"{top}/file") == b"earlier"
        _write(driver, f"{top}/file", b" then kept", append=True)
        assert driver.get_content(f"{top}/file") == b"earlier then kept"

    def test_writer_without_append_truncates(self, driver: StorageDriver, top: str) -> None:
        driver.put_content(f"{top}/file", b"a long earlier content")
        writer = _write(driver, f"{top}/file", b"short")
        assert writer.size == 5
        assert driver.get_content(f"{top}/file") == b"short"

    def test_commit_and_cancel_twice_are_harmless(self, driver: StorageDriver, top: str) -> None:
        writer = driver.writer(f"{top}/file")
        writer.write(b"once")
        writer.commit()
        writer.commit()
        writer.cancel()
        assert driver.get_content(f"{top}/file") == b"once"

    # -- large streams ---------------------------------------------------------------------------------

    def test_large_file_streamed_through_appends(self, driver: StorageDriver, top: str) -> None:
        """Several MiB, written in pieces across writers of every size class (a large first piece, a
        tiny one, a large one after it), then read back in a stream and from offsets."""
        path = f"{top}/big"
        digest = hashlib.sha256()
        sizes = [(6 * MiB, MiB), (100, 100), (7 * MiB + 3, MiB), (5, 5)]
        written = 0
        for total, piece in sizes:
            writer = driver.writer(path, append=True)
            left = total
            while left:
                data = _random(min(piece, left))
                writer.write(data)
                digest.update(data)
                left -= len(data)
            writer.commit()
            written += total
            assert writer.size == written
        assert driver.stat(path).size == written
        check = hashlib.sha256()
        with driver.reader(path) as reader:
            while chunk := reader.read(MiB):
                check.update(chunk)
        assert check.hexdigest() == digest.hexdigest()
        tail = _read_all(driver, path, written - 10)
        assert len(tail) == 10

    def test_large_file_in_one_writer(self, driver: StorageDriver, top: str) -> None:
        content = _random(11 * MiB + 17)
        writer = driver.writer(f"{top}/big")
        for start in range(0, len(content), 300_000):
            writer.write(content[start : start + 300_000])
        assert driver.exists(f"{top}/big") is False
        writer.commit()
        assert driver.stat(f"{top}/big").size == len(content)
        assert _read_all(driver, f"{top}/big", 5 * MiB) == content[5 * MiB :]

    # -- move ------------------------------------------------------------------------------------------

    def test_move(self, driver: StorageDriver, top: str) -> None:
        content = _random(5000)
        driver.put_content(f"{top}/source", content)
        driver.move(f"{top}/source", f"{top}/new/dir/dest")
        assert driver.get_content(f"{top}/new/dir/dest") == content
        with pytest.raises(PathNotFound):
            driver.stat(f"{top}/source")

    def test_move_overwrites(self, driver: StorageDriver, top: str) -> None:
        driver.put_content(f"{top}/source", b"new content")
        driver.put_content(f"{top}/dest", b"old content that is longer")
        driver.move(f"{top}/source", f"{top}/dest")
        assert driver.get_content(f"{top}/dest") == b"new content"
        assert driver.list(top) == [f"{top}/dest"]

    def test_move_of_missing_source(self, driver: StorageDriver, top: str) -> None:
        driver.put_content(f"{top}/dest", b"untouched")
        with pytest.raises(PathNotFound):
            driver.move(f"{top}/missing", f"{top}/dest")
        assert driver.get_content(f"{top}/dest") == b"untouched"

    def test_move_of_large_file(self, driver: StorageDriver, top: str) -> None:
        content = _random(9 * MiB + 1)
        _write(driver, f"{top}/upload/data", content)
        driver.move(f"{top}/upload/data", f"{top}/blobs/data")
        assert driver.stat(f"{top}/blobs/data").size == len(content)
        assert (
            hashlib.sha256(_read_all(driver, f"{top}/blobs/data")).digest()
            == hashlib.sha256(content).digest()
        )

    # -- delete ----------------------------------------------------------------------------------------

    def test_delete_file(self, driver: StorageDriver, top: str) -> None:
        driver.put_content(f"{top}/file", b"x")
        driver.put_content(f"{top}/other", b"y")
        driver.delete(f"{top}/file")
        with pytest.raises(PathNotFound):
            driver.get_content(f"{top}/file")
        assert driver.get_content(f"{top}/other") == b"y"

    def test_delete_only_the_subtree(self, driver: StorageDriver, top: str) -> None:
        """Siblings that share the deleted name as a prefix survive (a bug distribution's s3 driver had)."""
        for path in ("a/b/c", "a/b/d", "a/e", "a-sibling/x", "ab/x", "a.b", "b/a/x"):
            driver.put_content(f"{top}/{path}", path.encode())
        driver.delete(f"{top}/a")
        for gone in ("a", "a/b", "a/b/c", "a/e"):
            with pytest.raises(PathNotFound):
                driver.stat(f"{top}/{gone}")
        for kept in ("a-sibling/x", "ab/x", "a.b", "b/a/x"):
            assert driver.get_content(f"{top}/{kept}") == kept.encode()

    def test_the_root_cannot_be_deleted(self, driver: StorageDriver, top: str) -> None:
        driver.put_content(f"{top}/file", b"x")
        with pytest.raises(InvalidPath):
            driver.delete("/")
        assert driver.get_content(f"{top}/file") == b"x"

    def test_delete_missing(self, driver: StorageDriver, top: str) -> None:
        with pytest.raises(PathNotFound):
            driver.delete(f"{top}/missing")
        driver.put_content(f"{top}/dir/file", b"x")
        with pytest.raises(PathNotFound):
            driver.delete(f"{top}/dir/fil")

    def test_delete_many_files(self, driver: StorageDriver, top: str) -> None:
        for n in range(120):
            driver.put_content(f"{top}/many/{n % 7}/file{n}", b"")
        driver.delete(f"{top}/many")
        with pytest.raises(PathNotFound):
            driver.list(f"{top}/many")

    # -- list ------------------------------------------------------------------------------------------

    def test_list_nested_directories(self, driver: StorageDriver, top: str) -> None:
        for path in ("x/1", "x/2/deep/file", "x/3/file", "y", "x-z/file"):
            driver.put_content(f"{top}/{path}", b".")
        assert driver.list(top) == [f"{top}/x", f"{top}/x-z", f"{top}/y"]
        assert driver.list(f"{top}/x") == [f"{top}/x/1", f"{top}/x/2", f"{top}/x/3"]
        assert driver.list(f"{top}/x/2") == [f"{top}/x/2/deep"]
        assert driver.list(f"{top}/x/2/deep") == [f"{top}/x/2/deep/file"]
        assert top in driver.list("/")

    def test_list_is_sorted(self, driver: StorageDriver, top: str) -> None:
        names = ["b", "a", "C", "a-1", "a.1", "a_1", "10", "9"]
        for name in names:
            driver.put_content(f"{top}/{name}", b"")
        assert driver.list(top) == sorted(f"{top}/{name}" for name in names)

    def test_list_missing_or_file(self, driver: StorageDriver, top: str) -> None:
        with pytest.raises(PathNotFound):
            driver.list(f"{top}/missing")
        driver.put_content(f"{top}/file", b"x")
        with pytest.raises(PathNotFound):
            driver.list(f"{top}/file")

    # -- stat ------------------------------------------------------------------------------------------

    def test_stat_file_and_directory(self, driver: StorageDriver, top: str) -> None:
        before = time.time()
        driver.put_content(f"{top}/dir/file", b"12345")
        info = driver.stat(f"{top}/dir/file")
        assert (info.path, info.size, info.is_dir) == (f"{top}/dir/file", 5, False)
        # Backends stamp times with their own clock, to the second: allow for both.
        assert before - 5 <= info.modtime <= time.time() + 5
        directory = driver.stat(f"{top}/dir")
        assert (directory.path, directory.is_dir) == (f"{top}/dir", True)
        assert driver.stat(top).is_dir

    def test_stat_missing(self, driver: StorageDriver, top: str) -> None:
        with pytest.raises(PathNotFound):
            driver.stat(f"{top}/missing")
        driver.put_content(f"{top}/dir/file", b"x")
        for missing in (f"{top}/di", f"{top}/dir/fil", f"{top}/dir/file/below"):
            with pytest.raises(PathNotFound):
                driver.stat(missing)
        assert driver.exists(f"{top}/dir/file")
        assert not driver.exists(f"{top}/dir/fil")

    # -- walk ------------------------------------------------------------------------------------------

    def test_walk(self, driver: StorageDriver, top: str) -> None:
        files = {"a/1": b"1", "a/b/2": b"22", "a/b/c/3": b"333", "a-b/4": b"4444", "z": b""}
        for path, content in files.items():
            driver.put_content(f"{top}/{path}", content)
        walked = list(driver.walk(top))
        expected = ["a", "a/1", "a/b", "a/b/2", "a/b/c", "a/b/c/3", "a-b", "a-b/4", "z"]
        assert [info.path for info in walked] == [f"{top}/{p}" for p in expected]
        for info in walked:
            relative = info.path[len(top) + 1 :]
            assert info.is_dir == (relative not in files)
            if not info.is_dir:
                assert info.size == len(files[relative])
        assert [info.path for info in driver.walk(f"{top}/a/b")] == [
            f"{top}/a/b/2",
            f"{top}/a/b/c",
            f"{top}/a/b/c/3",
        ]

    def test_walk_missing(self, driver: StorageDriver, top: str) -> None:
        with pytest.raises(PathNotFound):
            list(driver.walk(f"{top}/missing"))

    # -- concurrency -----------------------------------------------------------------------------------

    def test_concurrent_writers_to_different_paths(self, driver: StorageDriver, top: str) -> None:
        contents = {f"{top}/shared/dir/file{n}": [_random(1000 + n) for _ in range(5)] for n in range(8)}
        errors: list[BaseException] = []
        start = threading.Barrier(len(contents))

        def write(path: str, pieces: list[bytes]) -> None:
            try:
                start.wait()
                for number, piece in enumerate(pieces):
                    _write(driver, path, piece, append=number > 0)
            except BaseException as e:  # reported to the test thread below
                errors.append(e)

        threads = [threading.Thread(target=write, args=item) for item in contents.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        for path, pieces in contents.items():
            assert driver.get_content(path) == b"".join(pieces)
        assert len(driver.list(f"{top}/shared/dir")) == len(contents)

    def test_concurrent_readers(self, driver: StorageDriver, top: str) -> None:
        content = _random(300_000)
        driver.put_content(f"{top}/file", content)
        results: list[bytes] = []
        threads = [
            threading.Thread(target=lambda: results.append(_read_all(driver, f"{top}/file")))
            for _ in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert results == [content] * 6
