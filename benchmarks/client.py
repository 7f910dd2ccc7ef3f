"""A registry client that is not the bottleneck: blobs leave with ``sendfile`` (or 1 MiB writes over TLS)
and arrive into one reused 4 MiB buffer, so the servers, not the client, set the pace.

Built on :mod:`http.client` (keep-alive, chunked responses) with the body handling done here.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import ssl
import time
import typing as t
from dataclasses import dataclass
from urllib.parse import urlsplit

MIB = 1 << 20
RECEIVE_BUFFER = 4 * MIB
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
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


class Response(t.NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    received: int


class Client:
    """One keep-alive connection to a registry at ``url``."""

    def __init__(self, url: str, context: ssl.SSLContext | None = None, timeout: float = 600.0) -> None:
        parts = urlsplit(url)
        self.netloc = parts.netloc
        self.tls = parts.scheme == "https"
        host, port = parts.hostname or "127.0.0.1", parts.port
        self.connection: http.client.HTTPConnection
        if self.tls:
            self.connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        else:
            self.connection = http.client.HTTPConnection(host, port, timeout=timeout)
        self._buffer = memoryview(bytearray(RECEIVE_BUFFER))

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: t.Mapping[str, str] | None = None,
        body: bytes = b"",
        file: tuple[str, int, int] | None = None,
        discard: bool = False,
    ) -> Response:
        """Send a request; ``file`` is ``(path, offset, count)`` sent as the body. With ``discard`` the
        response body is counted into a reused buffer instead of kept."""
        if target.startswith(("http://", "https://")):
            parts = urlsplit(target)
            target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        connection = self.connection
        connection.putrequest(method, target, skip_accept_encoding=True)
        length = file[2] if file is not None else len(body)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if method in ("POST", "PUT", "PATCH") or length:
            connection.putheader("Content-Length", str(length))
        connection.endheaders(body if body else None)
        if file is not None:
            self._send_file(*file)
        response = connection.getresponse()
        if discard:
            received = 0
            while n := response.readinto(self._buffer):
                received += n
            return Response(response.status, response.headers, b"", received)
        data = response.read()
        return Response(response.status, response.headers, data, len(data))

    def _send_file(self, path: str, offset: int, count: int) -> None:
        sock = self.connection.sock
        assert sock is not None
        with open(path, "rb") as f:
            if not self.tls:
                sock.sendfile(f, offset, count)  # zero copy: the client costs nothing
                return
            f.seek(offset)
            remaining = count
            while remaining:
                data = f.read(min(MIB, remaining))
                sock.sendall(data)
                remaining -= len(data)


def _expect(response: Response, status: int, what: str) -> Response:
    if response.status != status:
        raise RuntimeError(f"{what}: expected {status}, got {response.status}: {response.body[:300]!r}")
    return response


def _with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def start_upload(client: Client, repository: str) -> str:
    response = _expect(client.request("POST", f"/v2/{repository}/blobs/uploads/"), 202, "starting an upload")
    return response.headers["Location"]


def push_monolithic(url: str, context: ssl.SSLContext | None, repository: str, blob: Blob) -> float:
    """``POST`` then one ``PUT`` carrying the whole blob; returns seconds."""
    started = time.perf_counter()
    with Client(url, context) as client:
        location = start_upload(client, repository)
        headers = {"Content-Type": "application/octet-stream"}
        target = _with_digest(location, blob.digest)
        response = client.request("PUT", target, headers=headers, file=(blob.path, 0, blob.size))
        _expect(response, 201, "monolithic PUT")
    return time.perf_counter() - started


def push_chunked(url: str, context: ssl.SSLContext | None, repository: str, blob: Blob, chunk: int) -> float:
    """``POST``, one ``PATCH`` per ``chunk`` bytes (with ``Content-Range``), then the closing ``PUT``."""
    started = time.perf_counter()
    with Client(url, context) as client:
        location = start_upload(client, repository)
        for offset in range(0, blob.size, chunk):
            count = min(chunk, blob.size - offset)
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + count - 1}",
            }
            response = client.request("PATCH", location, headers=headers, file=(blob.path, offset, count))
            location = _expect(response, 202, "PATCH").headers["Location"]
        _expect(client.request("PUT", _with_digest(location, blob.digest)), 201, "closing PUT")
    return time.perf_counter() - started


def pull(url: str, context: ssl.SSLContext | None, repository: str, blob: Blob) -> float:
    """``GET`` the whole blob into a reused buffer; returns seconds."""
    started = time.perf_counter()
    with Client(url, context) as client:
        response = client.request("GET", f"/v2/{repository}/blobs/{blob.digest}", discard=True)
        _expect(response, 200, "blob GET")
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
        response = client.request(
            "GET", f"/v2/{repository}/blobs/{blob.digest}", headers=headers, discard=True
        )
        _expect(response, 206, "range GET")
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
            response = _expect(client.request("GET", target), 200, f"GET {target}")
            requests += 1
            entries += len(json.loads(response.body)[key] or [])
            target = _next_link(response.headers.get("Link"))
    return time.perf_counter() - started, requests, entries


def _next_link(header: str | None) -> str | None:
    if not header or 'rel="next"' not in header:
        return None
    return header.split(";", 1)[0].strip().strip("<>")
