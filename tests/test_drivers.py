"""Every storage driver against the one contract, :mod:`emulator.drivers.contract`."""

from __future__ import annotations

import hashlib
import os
import typing as t
import uuid
from pathlib import Path

import pytest

from emulator.config import MiB
from emulator.config import S3Config
from emulator.drivers.base import InvalidPath
from emulator.drivers.base import StorageDriver
from emulator.drivers.contract import INVALID_PATHS
from emulator.drivers.contract import DriverContract
from emulator.drivers.filesystem import FileSystemDriver
from emulator.drivers.inmemory import InMemoryDriver
from pax_registry_fixtures.s3 import S3Bucket
from pax_registry_fixtures.s3 import S3Server


class TestInMemory(DriverContract):
    @pytest.fixture
    def driver(self) -> StorageDriver:
        return InMemoryDriver()


class TestFileSystem(DriverContract):
    @pytest.fixture
    def driver(self, tmp_path: Path) -> StorageDriver:
        return FileSystemDriver(str(tmp_path / "root"))


def test_filesystem_foreign_names_are_left_out_of_listings(tmp_path: Path) -> None:
    """Files another program left in the root, under names no storage path can have, are not
    listed: a walk (upload purging) would otherwise stop at them."""
    driver = FileSystemDriver(str(tmp_path / "root"))
    driver.put_content("/dir/kept", b"x")
    for name in ("with space", "..x..", "caf\u00e9", "back\\slash"):
        (tmp_path / "root" / "dir" / name).write_bytes(b"foreign")
    assert driver.list("/dir") == ["/dir/..x..", "/dir/kept"]
    assert [info.path for info in driver.walk("/")] == ["/dir", "/dir/..x..", "/dir/kept"]


@pytest.mark.parametrize("path", INVALID_PATHS)
def test_filesystem_names_refuses_what_list_refuses(tmp_path: Path, path: str) -> None:
    """The bare-name listing the tag store uses checks its path as every contract operation does: an
    escaping or malformed path is refused, never listed, even with a directory where it points."""
    root = tmp_path / "root"
    driver = FileSystemDriver(str(root))
    driver.put_content("/dir/kept", b"x")
    (tmp_path / "outside").mkdir()
    with pytest.raises(InvalidPath):
        driver.names(path)
    assert driver.names("/dir") == ["kept"]


def s3_config(bucket: S3Bucket, **options: t.Any) -> S3Config:
    """The driver's settings for ``bucket``, its ``storage.s3`` section, at the root of the bucket unless
    ``options`` give a ``rootdirectory``."""
    return S3Config(**{**bucket.section, "rootdirectory": "", **options})


class TestS3(DriverContract):
    """Under a rootdirectory of its own in a shared bucket, with the smallest parts and copy chunks so
    that appends and moves of a few MiB already take several parts."""

    @pytest.fixture(scope="class")
    @classmethod
    def bucket(cls, pax_s3_server: S3Server) -> t.Iterator[S3Bucket]:
        bucket = pax_s3_server.new_bucket()
        yield bucket
        bucket.delete()

    @pytest.fixture
    def driver(self, bucket: S3Bucket) -> StorageDriver:
        from emulator.drivers.s3 import S3Driver

        return S3Driver(
            s3_config(
                bucket,
                rootdirectory=f"/contract/{uuid.uuid4().hex}/",
                chunksize=5 * MiB,
                multipartcopychunksize=5 * MiB,
                multipartcopythresholdsize=5 * MiB,
            )
        )


def test_s3_foreign_keys_are_left_out_of_listings(pax_s3: S3Bucket) -> None:
    """Keys written beside the registry's, with segments no storage path can have (``..``, spaces),
    are not listed, so a walk never hands them to a call that refuses them."""
    from emulator.drivers.s3 import S3Driver

    driver = S3Driver(s3_config(pax_s3, rootdirectory="/root"))
    driver.put_content("/dir/kept", b"x")
    for key in ("root/dir/../escape", "root/dir/with space", "root/dir//double", "root/dir/./dot"):
        pax_s3.client.put_object(Bucket=pax_s3.bucket, Key=key, Body=b"foreign")
    assert driver.list("/dir") == ["/dir/kept"]
    assert [info.path for info in driver.walk("/")] == ["/dir", "/dir/kept"]


class TestS3BucketRoot(DriverContract):
    """At the root of a bucket of its own, with distribution's defaults."""

    @pytest.fixture
    def driver(self, pax_s3: S3Bucket) -> StorageDriver:
        from emulator.drivers.s3 import S3Driver

        return S3Driver(s3_config(pax_s3))


def test_s3_appends_keep_one_multipart_upload_open(pax_s3: S3Bucket) -> None:
    """Appends of 6 MiB and 100 bytes continue one multipart upload (its object keeps only the last
    bytes under 5 MiB), from any driver instance on the bucket (another process); a writer that sent parts
    and then failed changes nothing; stat and walk give the whole size; reading settles the file into one
    object, after which appends go on."""
    from emulator.drivers.s3 import S3Driver

    def new_driver() -> S3Driver:
        return S3Driver(s3_config(pax_s3, rootdirectory="/root", chunksize=5 * MiB))

    first, second = new_driver(), new_driver()
    path, key = "/uploads/id/data", "root/uploads/id/data"
    first.put_content(path, b"")
    pieces = [os.urandom(6 * MiB), os.urandom(100), os.urandom(6 * MiB + 1), os.urandom(100)]
    expected = b""
    for number, piece in enumerate(pieces):
        driver = (first, second)[number % 2]
        with driver.writer(path, append=True) as writer:
            writer.write(piece)
            writer.commit()
        expected += piece
        assert pax_s3.multipart_uploads() == [key]
        stored = pax_s3.client.head_object(Bucket=pax_s3.bucket, Key=key)["ContentLength"]
        assert stored == len(expected) % (5 * MiB) < 5 * MiB
        assert second.stat(path).size == len(expected)

    failed = first.writer(path, append=True)
    failed.write(os.urandom(11 * MiB))  # two parts sent, then the request fails
    failed.cancel()
    assert pax_s3.multipart_uploads() == [key]
    assert first.stat(path).size == len(expected)
    assert [(info.path, info.size) for info in second.walk("/uploads")] == [
        ("/uploads/id", 0),
        (path, len(expected)),
    ]

    assert hashlib.sha256(_read(second, path)).digest() == hashlib.sha256(expected).digest()
    assert pax_s3.multipart_uploads() == []
    assert pax_s3.client.head_object(Bucket=pax_s3.bucket, Key=key)["ContentLength"] == len(expected)
    with first.writer(path, append=True) as writer:
        writer.write(b"after")
        writer.commit()
    assert first.stat(path).size == len(expected) + 5
    first.move(path, "/blobs/data")
    assert second.get_content("/blobs/data") == expected + b"after"
    assert pax_s3.multipart_uploads() == []


def test_s3_deleting_an_open_file_aborts_its_upload(pax_s3: S3Bucket) -> None:
    from emulator.drivers.s3 import S3Driver

    driver = S3Driver(s3_config(pax_s3, chunksize=5 * MiB))
    with driver.writer("/dir/open", append=True) as writer:
        writer.write(os.urandom(5 * MiB + 1))
        writer.commit()
    assert pax_s3.multipart_uploads() == ["dir/open"]
    driver.delete("/dir/open")
    assert pax_s3.multipart_uploads() == []
    assert pax_s3.list_keys() == []


def test_s3_open_file_whose_upload_was_aborted_is_an_error(pax_s3: S3Bucket) -> None:
    """An S3 lifecycle rule may abort the multipart upload under an open file: reading it is then a plain
    storage error naming the cause (not a retryable one), and the file can still be deleted."""
    from emulator.drivers.base import StorageError
    from emulator.drivers.base import StorageUnavailable
    from emulator.drivers.s3 import S3Driver

    driver = S3Driver(s3_config(pax_s3, chunksize=5 * MiB))
    with driver.writer("/dir/open", append=True) as writer:
        writer.write(os.urandom(5 * MiB + 1))
        writer.commit()
    (upload,) = pax_s3.client.list_multipart_uploads(Bucket=pax_s3.bucket)["Uploads"]
    pax_s3.client.abort_multipart_upload(Bucket=pax_s3.bucket, Key="dir/open", UploadId=upload["UploadId"])
    with pytest.raises(StorageError, match="multipart upload holding the file is gone") as raised:
        driver.get_content("/dir/open")
    assert not isinstance(raised.value, StorageUnavailable)
    driver.delete("/dir/open")
    assert pax_s3.list_keys() == []


def _read(driver: StorageDriver, path: str) -> bytes:
    with driver.reader(path) as reader:
        return reader.read()
