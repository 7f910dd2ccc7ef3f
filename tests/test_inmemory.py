"""What the in-memory driver promises beyond the shared contract: each blob held once, reads that hand
out stored chunks without copying them, changes made in one step, and lookups that let other threads run;
and uploads of a blob already stored, which are verified without being written (on every driver).
"""

from __future__ import annotations

import io
import os
import sys
import threading
import typing as t
from pathlib import Path

import pytest

from emulator.drivers.base import FileWriter
from emulator.drivers.base import PathNotFound
from emulator.drivers.base import parent_of
from emulator.drivers.filesystem import FileSystemDriver
from emulator.drivers.inmemory import InMemoryDriver
from emulator.reference import Digest
from emulator.storage import paths
from emulator.storage.blobs import BlobStore
from emulator.storage.cache import BlobDescriptorCache
from emulator.storage.errors import BlobUnknown
from emulator.storage.errors import DigestInvalid
from emulator.storage.errors import SizeInvalid
from emulator.storage.uploads import UploadStore
from pax_registry_fixtures.client import Client
from pax_registry_fixtures.server import RegistryServer

MiB = 1 << 20


@pytest.fixture
def driver() -> InMemoryDriver:
    return InMemoryDriver()


def stored_chunks(driver: InMemoryDriver, path: str) -> tuple[bytes, ...]:
    return driver._file(path).chunks


def test_a_committed_upload_holds_the_very_chunks_written(driver: InMemoryDriver) -> None:
    chunks = [os.urandom(MiB) for _ in range(3)]
    with driver.writer("/uploads/u/data") as writer:
        for chunk in chunks:
            writer.write(chunk)
        writer.commit()
    with driver.writer("/uploads/u/data", append=True) as writer:
        writer.write(last := os.urandom(1000))
        writer.commit()
    driver.move("/uploads/u/data", "/blobs/b/data")

    kept = stored_chunks(driver, "/blobs/b/data")
    assert all(a is b for a, b in zip(kept, [*chunks, last], strict=True))
    assert not driver.exists("/uploads/u/data")


def test_a_mutable_buffer_is_copied_once_written(driver: InMemoryDriver) -> None:
    buffer = bytearray(b"before")
    with driver.writer("/file") as writer:
        writer.write(t.cast(bytes, buffer))
        writer.commit()
    buffer[:] = b"after!"
    assert driver.get_content("/file") == b"before"


def test_whole_chunks_are_read_without_a_copy(driver: InMemoryDriver) -> None:
    chunks = [os.urandom(MiB), os.urandom(MiB), os.urandom(12345)]
    with driver.writer("/blob") as writer:
        for chunk in chunks:
            writer.write(chunk)
        writer.commit()
    with driver.reader("/blob") as reader:
        pieces = [reader.read(MiB), reader.read(MiB), reader.read(MiB), reader.read(MiB)]
    assert pieces[0] is chunks[0] and pieces[1] is chunks[1] and pieces[2] is chunks[2]
    assert pieces[3] == b""
    driver.put_content("/small", content := b"a manifest")
    assert driver.get_content("/small") is content


@pytest.mark.parametrize("offset", [0, 1, MiB - 1, MiB, MiB + 7, 2 * MiB + 12344, 2 * MiB + 12345])
@pytest.mark.parametrize("size", [1, 1000, MiB, MiB + 1, 3 * MiB])
def test_reads_across_chunks_return_what_was_asked(driver: InMemoryDriver, offset: int, size: int) -> None:
    chunks = [os.urandom(MiB), os.urandom(MiB), os.urandom(12345)]
    content = b"".join(chunks)
    with driver.writer("/blob") as writer:
        for chunk in chunks:
            writer.write(chunk)
        writer.commit()
    with driver.reader("/blob", offset) as reader:
        first = reader.read(size)
        rest = reader.read()
    assert first == content[offset : offset + size]
    assert rest == content[offset + size :]

    buffer = bytearray(size)
    with driver.reader("/blob", offset) as reader:
        assert isinstance(reader, io.BufferedIOBase)
        filled = reader.readinto(buffer)
    assert buffer[:filled] == content[offset : offset + size]


def test_a_reader_keeps_reading_what_it_opened(driver: InMemoryDriver) -> None:
    driver.put_content("/file", b"old content")
    reader = driver.reader("/file")
    assert reader.read(4) == b"old "
    driver.put_content("/file", b"new content, longer")
    with driver.writer("/file", append=True) as writer:
        writer.write(b" and more")
        writer.commit()
    assert reader.read() == b"content"
    reader.close()
    with pytest.raises(ValueError):
        reader.read(1)


def test_of_two_moves_of_one_file_one_succeeds(driver: InMemoryDriver) -> None:
    driver.put_content("/uploads/one/data", b"x")
    results = race(16, lambda number: driver.move("/uploads/one/data", f"/blobs/{number}/data"))
    assert results.count(None) == 1
    assert all(isinstance(result, PathNotFound) for result in results if result is not None)
    assert sum(driver.exists(f"/blobs/{n}/data") for n in range(16)) == 1


def test_of_two_deletes_of_one_file_one_succeeds(driver: InMemoryDriver) -> None:
    driver.put_content("/dir/file", b"x")
    results = race(16, lambda number: driver.delete("/dir/file"))
    assert results.count(None) == 1
    assert all(isinstance(result, PathNotFound) for result in results if result is not None)
    assert driver.list("/dir") == []


def test_a_directory_is_never_moved(driver: InMemoryDriver) -> None:
    driver.put_content("/dir/file", b"x")
    with pytest.raises(PathNotFound):
        driver.move("/dir", "/elsewhere")
    assert driver.get_content("/dir/file") == b"x"
    assert not driver.exists("/elsewhere")


def test_a_lookup_lets_a_waiting_thread_run(driver: InMemoryDriver) -> None:
    """With the interpreter never taken away by time (a huge switch interval), a thread waiting for it
    runs only when the running thread frees it: a loop of lookups must do so, as file reads do."""
    driver.put_content("/file", b"x")
    release = threading.Lock()
    release.acquire()
    ran = threading.Event()

    def waiter() -> None:
        with release:
            ran.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        release.release()  # the waiter wakes, then needs the interpreter this thread holds
        lookups = 0
        while not ran.is_set() and lookups < 10_000:
            driver.get_content("/file")
            lookups += 1
    finally:
        sys.setswitchinterval(interval)
        thread.join()
    assert lookups < 10_000


def test_a_blob_pushed_and_pulled_over_http_in_memory(pax_registry: RegistryServer) -> None:
    """A multi-chunk blob through the real server and the in-memory driver: whole, and ranges that
    start inside a chunk and cross into the next."""
    content = os.urandom(3 * MiB + 4321)
    with Client(pax_registry.url) as client:
        digest = client.push_blob("memory/blob", content, chunk=MiB + 17)
        assert client.blob("memory/blob", digest) == content
        for start, end in ((0, 0), (MiB - 3, MiB + 3), (MiB + 17, 3 * MiB + 4320), (5, 2 * MiB)):
            response = client.request(
                "GET", f"/v2/memory/blob/blobs/{digest}", headers={"Range": f"bytes={start}-{end}"}
            )
            assert response.status == 206
            assert response.body == content[start : end + 1]


# -- a blob pushed again is verified, not written -------------------------------------------------------


class CountingFileSystem(FileSystemDriver):
    """Counts the bytes written to uploads' data."""

    written = 0

    def writer(self, path: str, append: bool = False) -> FileWriter:
        inner = super().writer(path, append)
        driver = self

        class Counting(FileWriter):
            size = property(lambda self: inner.size)

            def write(self, data: bytes) -> int:
                if path.endswith("/data") and paths.is_upload(parent_of(path)):
                    driver.written += len(data)
                return inner.write(data)

            def commit(self) -> None:
                inner.commit()

            def cancel(self) -> None:
                inner.cancel()

        return Counting()


@pytest.fixture
def counting(tmp_path: Path) -> CountingFileSystem:
    return CountingFileSystem(str(tmp_path / "root"))


@pytest.fixture
def uploads(counting: CountingFileSystem) -> UploadStore:
    return UploadStore(counting, BlobStore(counting, BlobDescriptorCache()))


def pieces(content: bytes, size: int = 1000) -> t.Iterator[bytes]:
    for offset in range(0, len(content), size):
        yield content[offset : offset + size]


def pushed_to_first(uploads: UploadStore, size: int) -> tuple[bytes, Digest]:
    """``size`` random bytes pushed whole to the repository ``first``: the blob the next push repeats."""
    content = os.urandom(size)
    digest = Digest.of(content)
    uploads.finish("first", uploads.start("first").id, digest, pieces(content))
    return content, digest


def test_a_blob_pushed_again_in_one_put_is_verified_and_linked_without_being_written(
    uploads: UploadStore, counting: CountingFileSystem
) -> None:
    content, digest = pushed_to_first(uploads, 10_000)
    assert counting.written == len(content)

    upload = uploads.start("second")
    descriptor = uploads.finish("second", upload.id, digest, pieces(content), length=len(content))
    assert (descriptor.digest, descriptor.size) == (digest, len(content))
    assert counting.written == len(content)  # the second push wrote nothing
    assert uploads.blobs.stat("second", digest).size == len(content)
    assert not counting.exists(paths.upload("second", upload.id))


def test_a_blob_pushed_again_with_other_bytes_or_length_is_refused_and_not_linked(
    uploads: UploadStore, counting: CountingFileSystem
) -> None:
    content, digest = pushed_to_first(uploads, 5000)

    upload = uploads.start("second")
    with pytest.raises(SizeInvalid):
        uploads.finish("second", upload.id, digest, pieces(content), length=len(content) + 1)
    assert counting.exists(paths.upload("second", upload.id))  # kept, as for any refused last chunk
    with pytest.raises(DigestInvalid):
        uploads.finish("second", upload.id, digest, pieces(content[:-1] + b"?"))
    assert not counting.exists(paths.upload("second", upload.id))
    with pytest.raises(BlobUnknown):
        uploads.blobs.stat("second", digest)


def test_an_upload_holding_data_is_finished_as_ever_even_for_a_stored_blob(
    uploads: UploadStore, counting: CountingFileSystem
) -> None:
    content, digest = pushed_to_first(uploads, 5000)
    upload = uploads.start("second")
    uploads.append("second", upload.id, [content[:3000]])
    uploads.finish("second", upload.id, digest, [content[3000:]], start=3000)
    assert counting.written == 2 * len(content)
    assert uploads.blobs.stat("second", digest).size == len(content)


def test_pushing_a_stored_blob_again_over_http(pax_registry: RegistryServer) -> None:
    content = os.urandom(2 * MiB + 5)
    with Client(pax_registry.url) as client:
        digest = client.push_blob("memory/first", content)
        assert client.push_blob("memory/second", content) == digest
        assert client.blob("memory/second", digest) == content
        location = client.absolute(client.start_upload("memory/third").headers["Location"])
        refused = client.request(
            "PUT", f"{location}&digest={digest}" if "?" in location else f"{location}?digest={digest}",
            body=content[:-1] + b"?",
        )  # fmt: skip
        assert refused.status == 400
        assert refused.errors()[0]["code"] == "DIGEST_INVALID"
        assert not client.has_blob("memory/third", digest)


def race(threads: int, action: t.Callable[[int], object]) -> list[BaseException | None]:
    """Run ``action(number)`` in ``threads`` threads released at once; each one's error or ``None``."""
    start = threading.Barrier(threads)
    results: list[BaseException | None] = [None] * threads

    def run(number: int) -> None:
        start.wait()
        try:
            action(number)
        except BaseException as error:  # reported to the test
            results[number] = error

    workers = [threading.Thread(target=run, args=(number,)) for number in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return results
