"""What the storage refuses, in its own terms: no status code, no error body, no header.

:mod:`emulator.errors` maps each of these to the OCI error a client sees (``PROBLEMS``), so the
storage can be used, and tested, without HTTP.
"""

from __future__ import annotations

import typing as t


class Problem(Exception):
    """A request the storage cannot carry out.

    :param detail: what the client is told about it (the error's ``detail``).
    :param message: a message more precise than the one of the error's code, or ``None``.
    """

    def __init__(self, detail: t.Any = None, *, message: str | None = None) -> None:
        super().__init__(message or type(self).__name__)
        self.detail = detail
        self.message = message

    def __str__(self) -> str:
        # Seeding and tests see this text when the storage refuses what they store.
        text = self.message or type(self).__name__
        return text if self.detail is None else f"{text}: {self.detail!r}"


class BlobUnknown(Problem):
    """The repository holds no such blob."""


class BlobUploadUnknown(Problem):
    """The repository has no such upload."""


class DigestInvalid(Problem):
    """Content does not have the digest it was given."""


class RangeInvalid(Problem):
    """A chunk that does not continue the upload, or an upload another request is writing.

    :param committed: the upload's size, from which the client can resume.
    """

    def __init__(self, detail: t.Any = None, *, committed: int, message: str | None = None) -> None:
        super().__init__(detail, message=message)
        self.committed = committed


class SizeInvalid(Problem):
    """A chunk of another length than the client announced."""


class ManifestBlobUnknown(Problem):
    """A manifest names blobs or manifests the repository does not hold."""


class ManifestInvalid(Problem):
    """A manifest that cannot be parsed, or has the wrong shape."""


class ManifestUnknown(Problem):
    """The repository holds no such manifest, or no such tag."""


class NameUnknown(Problem):
    """The repository was never tagged."""


class TagInvalid(Problem):
    """A tag outside the tag grammar."""


class RemoteFailed(Problem):
    """A pull-through cache could not get what it does not hold from its remote (unreachable, or an
    answer it cannot use); distribution answers these 500 ``UNKNOWN`` with the cause as detail."""
