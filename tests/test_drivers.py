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


class Moto:
    """moto's S3 server on loopback, in this process; buckets are cheap there."""

    def __init__(self) -> None:
        import boto3
        from botocore.config import Config
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(s3={"addressing_style": "path"}),
        )

    def new_bucket(self) -> str:
        name = f"contract-{uuid.uuid4().hex[:16]}"
        self.client.create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="module")
def moto() -> t.Iterator[Moto]:
    # moto is a test dependency: without it these tests fail rather than skip.
    server = Moto()
    yield server
    server.server.stop()


def s3_config(moto: Moto, bucket: str, **options: t.Any) -> S3Config:
    return S3Config(
        region="us-east-1",
        bucket=bucket,
        accesskey="test",
        secretkey="test",
        regionendpoint=moto.endpoint_url,
        secure=False,
        **options,
    )


class TestS3(DriverContract):
    """Under a rootdirectory of its own in a shared bucket, with the smallest parts and copy chunks so
    that appends and moves of a few MiB already take several parts."""

    @pytest.fixture(scope="class")
    @classmethod
    def bucket(cls, moto: Moto) -> str:
        return moto.new_bucket()

    @pytest.fixture
    def driver(self, moto: Moto, bucket: str) -> StorageDriver:
        from emulator.drivers.s3 import S3Driver

        return S3Driver(
            s3_config(
                moto,
                bucket,
                rootdirectory=f"/contract/{uuid.uuid4().hex}/",
                chunksize=5 * MiB,
                multipartcopychunksize=5 * MiB,
                multipartcopythresholdsize=5 * MiB,
            )
        )


def test_s3_foreign_keys_are_left_out_of_listings(moto: Moto) -> None:
    """Keys written beside the registry's, with segments no storage path can have (``..``, spaces),
    are not listed, so a walk never hands them to a call that refuses them."""
    from emulator.drivers.s3 import S3Driver

    bucket = moto.new_bucket()
    driver = S3Driver(s3_config(moto, bucket, rootdirectory="/root"))
    driver.put_content("/dir/kept", b"x")
    for key in ("root/dir/../escape", "root/dir/with space", "root/dir//double", "root/dir/./dot"):
        moto.client.put_object(Bucket=bucket, Key=key, Body=b"foreign")
    assert driver.list("/dir") == ["/dir/kept"]
    assert [info.path for info in driver.walk("/")] == ["/dir", "/dir/kept"]


class TestS3BucketRoot(DriverContract):
    """At the root of a bucket of its own, with distribution's defaults."""

    @pytest.fixture
    def driver(self, moto: Moto) -> StorageDriver:
        from emulator.drivers.s3 import S3Driver

        return S3Driver(s3_config(moto, moto.new_bucket()))
