"""Every storage driver against the one contract, :mod:`emulator.drivers.contract`."""

from __future__ import annotations

import typing as t
import uuid
from pathlib import Path

import pytest

from emulator.config import MiB
from emulator.config import S3Config
from emulator.drivers.base import StorageDriver
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
