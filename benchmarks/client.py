"""The timed client side of the blob and listing rows, on the project's registry client
(:mod:`emulator.ociclient`, as the plugin offers it): blobs leave with ``sendfile`` (or 1 MiB writes over
TLS), so the servers, not the client, set the pace.

A pulled body over plain HTTP is spliced from the socket into ``/dev/null`` (``splice(2)`` through a
pipe), never copied into the process: read into a buffer, the copy out of the socket cost the client
0.45-0.53 s of CPU per GiB, against 0.13 s for nginx to send it, so every server ran at the client's pace
and the pull rows compared the client with itself. Only the response head goes through h11. Over TLS the
body must be decrypted, into one reused 4 MiB buffer.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass

import h11

from pax_registry_fixtures.client import OCI_MANIFEST
from pax_registry_fixtures.client import Client
from pax_registry_fixtures.client import FileSpan
from pax_registry_fixtures.client import blob_path
from pax_registry_fixtures.client import expect
from pax_registry_fixtures.client import next_page

__all__ = [
    "ACCEPT",
    "Blob",
    "Client",
    "fetch",
    "pull",
    "push_chunked",
    "push_monolithic",
    "range_read",
    "walk",
]

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

    def variant(self, path: str, number: int) -> Blob:
        """A copy of this blob at ``path`` whose first 8 bytes hold ``number``: new content of the same
        size, for a push that must not find its blob stored already (the emulator hashes a whole-body
        ``PUT`` of a blob it holds without writing it, which would make such a push a hash alone)."""
        shutil.copyfile(self.path, path)
        with open(path, "r+b") as f:
            f.write(number.to_bytes(8, "big")[: self.size])
        return Blob(path, self.size, file_digest(path))

    @property
    def span(self) -> FileSpan:
        """The whole file, as a request body."""
        return FileSpan(self.path, 0, self.size)


def file_digest(path: str) -> str:
    """The sha256 digest of a file, read into one reused 4 MiB buffer (the push rows' limit times this)."""
    buffer = memoryview(bytearray(4 * MIB))
    hasher = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            hasher.update(buffer[:n])
    return f"sha256:{hasher.hexdigest()}"


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
    """``GET`` the whole blob; returns seconds."""
    return fetch(url, context, blob_path(repository, blob.digest), blob.size)


def fetch(url: str, context: ssl.SSLContext | None, path: str, size: int) -> float:
    """``GET`` ``path``, whose body must be ``size`` bytes, discarding the body; returns seconds."""
    started = time.perf_counter()
    if context is None:
        received = _spliced_get(url, path)
    else:
        with Client(url, context) as client:
            response = client.request("GET", path, discard=True)
            expect(response, 200, f"GET {path}")
            received = response.received
    elapsed = time.perf_counter() - started
    if received != size:
        raise RuntimeError(f"GET {path} gave {received} bytes of {size}")
    return elapsed


#: The pipe a spliced body goes through: 1 MiB, as large as Linux allows without privileges.
PIPE_SIZE = MIB


def _spliced_get(url: str, path: str) -> int:
    """A plain-HTTP ``GET`` of ``path`` whose 200 body is spliced into ``/dev/null``; the body's length."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path.rstrip("/") + path
    parser = h11.Connection(h11.CLIENT)
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.create_connection((parts.hostname, parts.port or 80)))
        request = h11.Request(
            method="GET", target=target, headers=[("Host", parts.netloc), ("Connection", "close")]
        )
        sock.sendall(parser.send(request) + parser.send(h11.EndOfMessage()))
        received = 0
        response: h11.Response | None = None
        while True:
            event = parser.next_event()
            if event is h11.NEED_DATA:
                if response is not None:
                    break  # the head and whatever body came with it are read: the rest is spliced
                data = sock.recv(65536)
                if not data:
                    raise RuntimeError(f"GET {target}: the connection closed before the response")
                parser.receive_data(data)
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                received += len(event.data)
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
        if response is None:
            raise RuntimeError(f"GET {target}: the connection closed before the response")
        if response.status_code != 200:
            raise RuntimeError(f"GET {target} answered {response.status_code}")
        lengths = [value for name, value in response.headers if name == b"content-length"]
        if not lengths:
            raise RuntimeError(f"GET {target} answered without a Content-Length")
        remaining = int(lengths[0]) - received
        read_end, write_end = os.pipe()
        stack.callback(os.close, read_end)
        stack.callback(os.close, write_end)
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        sink = os.open(os.devnull, os.O_WRONLY)
        stack.callback(os.close, sink)
        while remaining > 0:
            moved = os.splice(sock.fileno(), write_end, min(remaining, PIPE_SIZE))
            if moved == 0:
                break  # the server closed early: the caller sees the short count
            remaining -= moved
            received += moved
            while moved:
                moved -= os.splice(read_end, sink, moved)
    return received


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
