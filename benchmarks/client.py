"""The timed client side of the blob and listing rows, on the project's registry client
(:mod:`emulator.ociclient`, as the plugin offers it): blobs leave with ``sendfile`` (or 1 MiB writes over
TLS) and arrive into one reused 4 MiB buffer, so the servers, not the client, set the pace.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import time
from dataclasses import dataclass

from pax_registry_fixtures.client import OCI_MANIFEST
from pax_registry_fixtures.client import Client
from pax_registry_fixtures.client import FileSpan
from pax_registry_fixtures.client import blob_path
from pax_registry_fixtures.client import expect
from pax_registry_fixtures.client import next_page

__all__ = ["ACCEPT", "Blob", "Client", "pull", "push_chunked", "push_monolithic", "range_read", "walk"]

MIB = 1 << 20
ACCEPT = f"{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"


@dataclass(frozen=True)
class Blob:
    """A file holding a blob's content, and its size and digest."""

    path: str
    size: int
    digest: str

    @classmethod
    def create(cls, path: str, size: int) -> Blob:
        """Write ``size`` random bytes to ``path`` (a random 1 MiB block repeated, hashed as written)."""
        block = os.urandom(min(MIB, size))
        hasher = hashlib.sha256()
        with open(path, "wb") as f:
            remaining = size
            while remaining:
                piece = block[: min(remaining, len(block))]
                f.write(piece)
                hasher.update(piece)
                remaining -= len(piece)
        return cls(path, size, f"sha256:{hasher.hexdigest()}")

    @property
    def span(self) -> FileSpan:
        """The whole file, as a request body."""
        return FileSpan(self.path, 0, self.size)


def push_monolithic(url: str, context: ssl.SSLContext | None, repository: str, blob: Blob) -> float:
    """``POST`` then one ``PUT`` carrying the whole blob; returns seconds."""
    started = time.perf_counter()
    with Client(url, context) as client:
        client.push_blob(repository, blob.span, digest=blob.digest)
    return time.perf_counter() - started


def push_chunked(url: str, context: ssl.SSLContext | None, repository: str, blob: Blob, chunk: int) -> float:
    """``POST``, one ``PATCH`` per ``chunk`` bytes (with ``Content-Range``), then the closing ``PUT``."""
    started = time.perf_counter()
    with Client(url, context) as client:
        client.push_blob(repository, blob.span, digest=blob.digest, chunk=chunk)
    return time.perf_counter() - started


def pull(url: str, context: ssl.SSLContext | None, repository: str, blob: Blob) -> float:
    """``GET`` the whole blob into a reused buffer; returns seconds."""
    started = time.perf_counter()
    with Client(url, context) as client:
        response = client.request("GET", blob_path(repository, blob.digest), discard=True)
        expect(response, 200, "blob GET")
    elapsed = time.perf_counter() - started
    if response.received != blob.size:
        raise RuntimeError(f"pulled {response.received} bytes of {blob.size}")
    return elapsed


def range_read(url: str, context: ssl.SSLContext | None, repository: str, blob: Blob, length: int) -> float:
    """``GET`` ``length`` bytes from the middle of the blob; returns seconds."""
    first = max(blob.size // 2 - length // 2, 0)
    last = min(first + length, blob.size) - 1
    started = time.perf_counter()
    with Client(url, context) as client:
        headers = {"Range": f"bytes={first}-{last}"}
        response = client.request("GET", blob_path(repository, blob.digest), headers=headers, discard=True)
        expect(response, 206, "range GET")
    elapsed = time.perf_counter() - started
    if response.received != last - first + 1:
        raise RuntimeError(f"range read gave {response.received} bytes, expected {last - first + 1}")
    return elapsed


def walk(url: str, context: ssl.SSLContext | None, path: str, key: str) -> tuple[float, int, int]:
    """Follow ``Link: <...>; rel="next"`` from ``path``; returns (seconds, requests, entries)."""
    started = time.perf_counter()
    requests = entries = 0
    with Client(url, context) as client:
        target: str | None = path
        while target is not None:
            response = expect(client.request("GET", target), 200, f"GET {target}")
            requests += 1
            entries += len(response.json()[key] or [])
            target = next_page(response)
    return time.perf_counter() - started, requests, entries
