"""Repository names, references, digests and upload ids: the grammar of every identifier a request
carries. The app checks each route value against it before any handler or store sees the value, so
nothing outside this grammar ever becomes part of a storage path."""

from __future__ import annotations

import hashlib
import re
import typing as t
from dataclasses import dataclass

#: A repository name, as the OCI distribution spec defines it.
NAME_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
#: Clients cap ``host[:port]/name`` at 255 characters; distribution rejects longer names.
NAME_MAX_LENGTH = 255
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
#: Upload ids as :class:`~emulator.storage.uploads.UploadStore` makes them (``str(uuid.uuid4())``) and
#: distribution does: the canonical lowercase form, nothing else.
UPLOAD_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

#: Lengths of the hex-encoded part for the algorithms we can verify.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX_RE = re.compile(r"[a-f0-9]+")


class InvalidDigest(ValueError):
    """The text is not a digest this registry can verify."""


@dataclass(frozen=True, order=True)
class Digest:
    """A content digest such as ``sha256:<64 hex>``."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        if not DIGEST_RE.fullmatch(text):
            raise InvalidDigest(f"invalid digest format: {text!r}")
        algorithm, _, encoded = text.partition(":")
        length = ALGORITHMS.get(algorithm)
        if length is None:
            raise InvalidDigest(f"unsupported digest algorithm: {algorithm!r}")
        if len(encoded) != length or not _HEX_RE.fullmatch(encoded):
            raise InvalidDigest(f"invalid {algorithm} digest: {text!r}")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> t.Any:
        return hashlib.new(self.algorithm)


#: A Host header (RFC 9112 section 3.2) or X-Forwarded-Host: an IP literal, or dot-separated labels of at
#: most 63 characters (what a name in a URL can hold), and a port. Narrower than RFC 3986's reg-name on
#: purpose: the host goes into Location URLs, which clients resolve.
_LABEL = r"[A-Za-z0-9_-]{1,63}"
HOST_RE = re.compile(rf"(?:\[[0-9A-Fa-f:.]+\]|{_LABEL}(?:\.{_LABEL})*\.?)(?::[0-9]{{1,5}})?")


def is_valid_host(host: str) -> bool:
    return HOST_RE.fullmatch(host) is not None


def is_valid_name(name: str) -> bool:
    return len(name) <= NAME_MAX_LENGTH and NAME_RE.fullmatch(name) is not None


def is_valid_tag(tag: str) -> bool:
    return TAG_RE.fullmatch(tag) is not None


def is_valid_upload_id(upload_id: str) -> bool:
    return UPLOAD_ID_RE.fullmatch(upload_id) is not None


def looks_like_digest(reference: str) -> bool:
    """A manifest reference with a colon can only be meant as a digest (tags have no colon)."""
    return ":" in reference
