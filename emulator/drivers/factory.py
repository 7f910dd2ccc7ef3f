"""Build the configured storage driver, importing only the one the configuration names."""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from ..config import StorageConfig
    from .base import StorageDriver


def create(storage: StorageConfig) -> StorageDriver:
    if storage.driver == "inmemory":
        from .inmemory import InMemoryDriver

        return InMemoryDriver()
    if storage.driver == "filesystem":
        from .filesystem import FileSystemDriver

        return FileSystemDriver(storage.rootdirectory)
    if storage.driver == "s3":
        # boto3 costs tens of milliseconds to import: only S3 users pay for it.
        from .s3 import S3Driver  # type: ignore[import-not-found,unused-ignore]

        return t.cast("StorageDriver", S3Driver(storage.s3))
    raise ValueError(f"unknown storage driver {storage.driver!r}")
