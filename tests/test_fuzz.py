"""A seeded fuzz run: thousands of mutated requests over raw sockets against one in-process registry.

Valid requests for every route (seeded repositories, tags, blobs and live upload locations) are mutated:
path segments replaced by traversal attempts, percent-escapes and overlong or non-ASCII text; methods,
query strings, request lines and HTTP versions; header sets (Content-Range, Range, Accept, Authorization
garbage, Expect, duplicated or missing Host, invalid header syntax); and bodies: Content-Length that is
right, too small, too large or not a number, chunked bodies with random chunk sizes, extensions, trailers or
broken framing, both framings at once, truncations. Requests go out as bytes over sockets, several on one
connection while each was well framed and answered with keep-alive, so malformed framing reaches the server
as a client would send it. Each request is classified by what HTTP lets the server do with it:

- complete (the server has every byte it needs to decide): it must answer before it closes;
- incomplete (a body or head cut short; the test then shuts its side down): the server may answer or
  close, but must not wait for ever.

Asserted over the run: no answer >= 500, no read that times out (a hang), no complete request whose
connection closes without an answer, no malformed or cut-off answer, and ``GET /v2/`` still answered at the
end. A failure prints the count of answers per status and the exact bytes of the first offending requests
(with the requests before them on the same connection), to replay with ``socket.sendall``.

``random.Random(SEED)`` drives the run rather than Hypothesis: the property is about one long run against
one server whose state every request changes (uploads opened, blobs deleted), which Hypothesis's examples
and shrinking (replaying thousands of requests per step) do not fit in a minute; a seeded generator gives
the same requests on every run (only the upload ids in them are the server's, new each run), so a failure
replays. ``PAX_FUZZ_SEED`` runs another seed.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import hashlib
import os
import random
import socket
import time
import typing as t
import urllib.parse
from pathlib import Path

import requests

from pax_registry_fixtures.client import request_target
from pax_registry_fixtures.factory import RegistryFactory
from pax_registry_fixtures.server import RegistryServer
from tests.rawhttp import ConnectionClosed
from tests.rawhttp import MalformedResponse
from tests.rawhttp import RawConnection

SEED = int(os.environ.get("PAX_FUZZ_SEED", "1010"))
REQUESTS = 5000
#: Every socket read and write waits at most this long: a longer wait is a hang.
TIMEOUT = 5.0
#: Offending requests printed in full on failure.
SHOWN = 5

NAMES = ("seed/app", "seed/app/nested", "library/busybox", "fresh", "a" * 40)
TAGS = ("v1", "latest", "1.0", "missing", "V_2")
MEDIA_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/octet-stream",
    "application/json",
    "multipart/form-data; boundary=xyz",
    "application/x-www-form-urlencoded",
    "text/plain; charset=\xff",
    "",
)
#: Path segments an attacker tries: traversal raw, encoded and double-encoded, separators, control bytes.
HOSTILE_SEGMENTS = (
    "..",
    ".",
    "%2e%2e",
    "%2E%2e",
    "%252e%252e",
    ".%2e",
    "%2f",
    "a%2fb",
    "%2f..%2f",
    "%00",
    "a%00b",
    "%ff",
    "%c0%ae%c0%ae",
    "a%0d%0ab",
    "%0a",
    "%",
    "%zz",
    "%%32%65",
    "\\",
    "..\\..",
    "%5c",
    "_uploads",
    "_manifests",
    "_layers",
    "~",
    "*",
    ";x=1",
    "sha256:",
    "sha256:" + "0" * 64,
    "sha512:" + "f" * 128,
    "SHA256:" + "A" * 64,
    "md5:d41d8cd98f00b204e9800998ecf8427e",
    "\u00e9",
    "%C3%A9",
    "\u2603",
    "00000000-0000-0000-0000-000000000000",
)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
ODD_METHODS = (
    "OPTIONS",
    "TRACE",
    "CONNECT",
    "PROPFIND",
    "get",
    "FOO",
    "G(T",
    "GET GET",
    "",
    "\xffGET",
    "X" * 300,
)
VERSIONS = ("HTTP/1.0", "HTTP/1.2", "HTTP/1.1x", "HTTP/2.0", "HTTP/0.9", "http/1.1", "HTTP/1", "HTTP/11", "")


@dataclasses.dataclass
class Fuzzed:
    """One request as bytes, and what HTTP allows the server to do with it."""

    raw: bytes
    method: str
    #: The server has the whole message (or can tell it is malformed): it must answer before closing.
    complete: bool = True
    #: Well framed, so the connection may carry the next request if the answer keeps it alive.
    reusable: bool = True
    #: What was done to the request, for the summary.
    mutations: list[str] = dataclasses.field(default_factory=list)
    #: 5xx statuses HTTP itself asks for here: 505 for a version, 501 for a transfer coding or method.
    allowed: set[int] = dataclasses.field(default_factory=set)


@dataclasses.dataclass
class Template:
    method: str
    path: str
    query: list[tuple[str, str]]
    #: A ``None`` value makes a line with no colon.
    headers: list[tuple[str, str | None]]
    body: bytes = b""


class Generator:
    """Valid requests for the registry's routes, then mutated; all randomness comes from ``rng``."""

    def __init__(self, rng: random.Random, host: str, digests: t.Sequence[str], manifest: bytes) -> None:
        self.rng = rng
        self.host = host
        self.digests = list(digests)
        self.manifest = manifest
        #: ``path?query`` of upload locations the registry handed out, newest last.
        self.uploads: collections.deque[str] = collections.deque(maxlen=64)

    # -- valid requests -----------------------------------------------------------------------------

    def digest(self) -> str:
        rng = self.rng
        if rng.random() < 0.8:
            return rng.choice(self.digests)
        return "sha256:" + rng.randbytes(32).hex()

    def template(self) -> Template:
        rng = self.rng
        name = rng.choice(NAMES)
        headers: list[tuple[str, str | None]] = [("Host", self.host)]
        kind = rng.randrange(12)
        if kind == 0:
            return Template("GET", "/v2/", [], headers)
        if kind == 1:
            query = [("n", str(rng.randrange(5))), ("last", rng.choice(NAMES))] if rng.random() < 0.5 else []
            return Template("GET", "/v2/_catalog", query, headers)
        if kind == 2:
            return Template(rng.choice(("GET", "HEAD")), f"/v2/{name}/tags/list", [], headers)
        if kind == 3:
            reference = rng.choice((*TAGS, self.digest()))
            headers.append(("Accept", rng.choice(MEDIA_TYPES[:4])))
            return Template(
                rng.choice(("GET", "HEAD", "DELETE")), f"/v2/{name}/manifests/{reference}", [], headers
            )
        if kind == 4:
            reference = rng.choice(TAGS)
            headers.append(("Content-Type", MEDIA_TYPES[0]))
            body = self.manifest if rng.random() < 0.7 else rng.randbytes(rng.randrange(64))
            return Template("PUT", f"/v2/{name}/manifests/{reference}", [], headers, body)
        if kind == 5:
            method = rng.choice(("GET", "HEAD", "GET", "DELETE"))
            if rng.random() < 0.3:
                headers.append(("Range", rng.choice(("bytes=0-3", "bytes=-2", "bytes=5-", "bytes=9-1"))))
            return Template(method, f"/v2/{name}/blobs/{self.digest()}", [], headers)
        if kind == 6:
            body = rng.randbytes(rng.randrange(32))
            query = [("digest", "sha256:" + hashlib.sha256(body).hexdigest())]
            return Template("POST", f"/v2/{name}/blobs/uploads/", query, headers, body)
        if kind == 7:
            query = [("mount", self.digest()), ("from", rng.choice(NAMES))]
            return Template("POST", f"/v2/{name}/blobs/uploads/", query, headers)
        if kind == 8:
            return Template("POST", f"/v2/{name}/blobs/uploads/", [], headers)
        if kind in (9, 10) and self.uploads:
            path, _, query_text = rng.choice(self.uploads).partition("?")
            query = urllib.parse.parse_qsl(query_text)
            method = rng.choice(("PATCH", "PATCH", "PUT", "GET", "DELETE"))
            body = rng.randbytes(rng.randrange(48)) if method in ("PATCH", "PUT") else b""
            if method == "PATCH" and body and rng.random() < 0.5:
                start = rng.randrange(3)
                headers.append(("Content-Range", f"{start}-{start + len(body) - 1}"))
            if method == "PUT":
                query.append(("digest", self.digest()))
            return Template(method, path, query, headers, body)
        if kind == 11:
            return Template(
                "GET", f"/v2/{name}/referrers/{self.digest()}", [("artifactType", "a/b")], headers
            )
        return Template("GET", rng.choice(("/health", "/v1/", f"/v1/{name}/tags/list")), [], headers)

    # -- mutations ----------------------------------------------------------------------------------

    def request(self) -> Fuzzed:
        rng = self.rng
        template = self.template()
        mutations: list[str] = []
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
            mutation = rng.choice(
                (
                    self.mutate_path,
                    self.mutate_path,
                    self.mutate_query,
                    self.mutate_headers,
                    self.mutate_method,
                )
            )
            mutations.append(mutation(template))
        target = template.path
        if template.query or rng.random() < 0.05:
            target += "?" + "&".join(f"{k}={v}" for k, v in template.query)
        fuzzed = Fuzzed(b"", template.method, mutations=mutations)
        if template.method not in METHODS:
            fuzzed.allowed.add(501)
        if template.method == "CONNECT":
            fuzzed.reusable = False  # a 2xx would turn the connection into a tunnel
        version = "HTTP/1.1"
        if rng.random() < 0.05:
            version = rng.choice(VERSIONS)
            mutations.append(f"version {version!r}")
            if version not in ("HTTP/1.0", "HTTP/1.1"):
                fuzzed.reusable = False
                fuzzed.allowed.add(505)
        elif rng.random() < 0.04:
            target = self.odd_target(target, mutations)
            fuzzed.reusable = False
        head_lines = [f"{template.method} {target} {version}".rstrip(" ")]
        head_lines += [name if value is None else f"{name}: {value}" for name, value in template.headers]
        head = "\r\n".join(head_lines).encode()
        if any(m.startswith(("header syntax", "header Connection")) for m in mutations):
            # The server may (syntax) or must (Connection: close) close after answering, and need not say so.
            fuzzed.reusable = False
        framing, body = self.frame(template, version, fuzzed)
        fuzzed.raw = head + framing + b"\r\n" + body
        if rng.random() < 0.03:
            cut = rng.randrange(len(fuzzed.raw))
            fuzzed.raw = fuzzed.raw[:cut]
            fuzzed.complete = fuzzed.reusable = False
            mutations.append(f"cut at {cut}")
        return fuzzed

    def hostile_segment(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.6:
            return rng.choice(HOSTILE_SEGMENTS)
        if roll < 0.75:
            return rng.choice("xa%.") * rng.choice((64, 129, 256, 300, 1000, 5000))
        if roll < 0.9:
            alphabet = "abcXYZ019-._~!$&'()*+,;=:@%/"
            return "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 20)))
        # Characters a client should have percent-encoded (raw controls would end the request line).
        return "".join(
            chr(rng.choice((rng.randrange(0x80, 0x100), rng.randrange(0x100, 0x3000)))) for _ in range(3)
        )

    def mutate_path(self, template: Template) -> str:
        rng = self.rng
        segments = template.path.split("/")
        index = rng.randrange(1, len(segments))
        roll = rng.random()
        if roll < 0.5:
            segments[index] = self.hostile_segment()
            what = f"segment {index} replaced"
        elif roll < 0.7:
            segments.insert(index, self.hostile_segment())
            what = f"segment inserted at {index}"
        elif roll < 0.8 and len(segments) > 2:
            del segments[index]
            what = f"segment {index} removed"
        elif roll < 0.9:
            segment = segments[index]
            if segment:
                at = rng.randrange(len(segment))
                segment = segment[:at] + f"%{ord(segment[at]) & 0xFF:02X}" + segment[at + 1 :]
            segments[index] = segment
            what = f"segment {index} percent-encoded"
        else:
            segments.insert(index, "")
            what = "empty segment"
        template.path = "/".join(segments)
        return f"path: {what}"

    def mutate_query(self, template: Template) -> str:
        rng = self.rng
        key = rng.choice(
            ("digest", "mount", "from", "n", "last", "_state", "type", "artifactType", "x", "", "%00")
        )
        value = rng.choice(
            (
                self.digest(),
                "sha256:bad",
                "-1",
                "99999999999999999999999",
                "",
                "%00",
                "%ff",
                "a%0d%0ab",
                rng.choice(HOSTILE_SEGMENTS),
                "x" * rng.choice((10, 1000, 9000)),
                "eyJ" + base64.urlsafe_b64encode(rng.randbytes(40)).decode(),
            )
        )
        if rng.random() < 0.5:
            template.query = [(k, v) for k, v in template.query if k != key]
        template.query.append((key, value))
        return f"query {key}"

    def mutate_method(self, template: Template) -> str:
        template.method = self.rng.choice(METHODS + ODD_METHODS)
        return f"method {template.method!r}"

    def mutate_headers(self, template: Template) -> str:
        rng = self.rng
        roll = rng.randrange(14)
        headers = template.headers
        if roll == 0:
            headers.append(
                (
                    "Content-Range",
                    rng.choice(
                        (
                            "0-0",
                            "0-9",
                            "bytes 0-9/10",
                            "bytes=0-",
                            "5-2",
                            "-1-3",
                            "abc",
                            "0-99999999999999999999",
                            "",
                            "0-0, 1-1",
                        )
                    ),
                )
            )
            return "header Content-Range"
        if roll == 1:
            headers.append(("Content-Type", rng.choice(MEDIA_TYPES)))
            return "header Content-Type"
        if roll == 2:
            accept = ", ".join(rng.choice(MEDIA_TYPES) + rng.choice(("", ";q=0.5", ";q=x")) for _ in range(3))
            headers.append(("Accept", rng.choice((accept, "*/*", "garbage", "x" * 5000))))
            return "header Accept"
        if roll == 3:
            garbage = rng.choice(
                (
                    "Basic " + base64.b64encode(rng.randbytes(rng.randrange(1, 40))).decode(),
                    "Basic " + base64.b64encode(b"user:" + rng.randbytes(8)).decode(),
                    "Basic",
                    "Basic !!!",
                    "Basic " + "=" * 7,
                    "Bearer x.y.z",
                    "Digest username=x",
                    rng.randbytes(12).decode("latin-1").replace("\r", "").replace("\n", ""),
                )
            )
            headers.append(("Authorization", garbage))
            return "header Authorization"
        if roll == 4:
            headers.append(
                ("Range", rng.choice(("bytes=0-0", "bytes=-1", "bytes=0-0,2-3", "items=1-2", "bytes=-0")))
            )
            return "header Range"
        if roll == 5:
            headers.append(
                ("If-None-Match", rng.choice(('"' + self.digest() + '"', "*", 'W/"x"', ",,,", '"')))
            )
            return "header If-None-Match"
        if roll == 6:
            headers.append(("Expect", rng.choice(("100-continue", "100-Continue", "200-ok"))))
            return "header Expect"
        if roll == 7:
            headers.append(("Connection", rng.choice(("close", "keep-alive", "Keep-Alive, x", "TE"))))
            return "header Connection"
        if roll == 8:
            headers.append(
                ("X-Forwarded-" + rng.choice(("Proto", "Host", "For")), rng.choice(HOSTILE_SEGMENTS))
            )
            return "header X-Forwarded"
        if roll == 9:
            if rng.random() < 0.3:
                template.headers = [(name, value) for name, value in headers if name != "Host"]
                return "header Host removed"
            headers.append(("Host", rng.choice(("", "a b", "[::1", "x" * 300, "evil.example", self.host))))
            return "header Host added"
        if roll == 10:
            name = "".join(rng.choice("abcXYZ-_!#$%&'*+.^`|~019") for _ in range(rng.randrange(1, 16)))
            headers.append((name, rng.randbytes(rng.randrange(40)).hex()))
            return "header random"
        if roll == 11:
            headers.extend((f"X-Many-{i}", "v") for i in range(rng.choice((50, 200))))
            return "header many"
        if roll == 12:
            headers.append(("X-Long", "v" * rng.choice((8000, 70000, 300_000))))
            return "header long"
        name, value = rng.choice(
            (
                ("Bad Name", "x"),
                ("", "no name"),
                ("X-Fold", "a\r\n folded"),
                ("X-Nul", "a\x00b"),
                ("X-CR", "a\rb"),
                ("X-LF", "a\nb"),
                ("X-Colon ", "x"),
                ("X-Latin", "caf\u00e9 \u2603"),
                ("X-\u00e9", "x"),
                ("NoColonHere", None),
            )
        )
        headers.append((name, value))
        return f"header syntax {name!r}"

    def odd_target(self, target: str, mutations: list[str]) -> str:
        rng = self.rng
        odd = rng.choice(
            (
                target.lstrip("/"),
                f"http://{self.host}{target}",
                f"HTTP://{self.host}{target}",
                "*",
                self.host,
                "//" + target.lstrip("/"),
                target + "#fragment",
                target.replace("/", "\\"),
            )
        )
        mutations.append(f"target {odd[:40]!r}")
        return odd

    def frame(self, template: Template, version: str, fuzzed: Fuzzed) -> tuple[bytes, bytes]:
        """The framing headers (each line starting with CRLF) and the body bytes that follow the head."""
        rng = self.rng
        body = template.body
        if rng.random() < 0.15 and not body:
            body = rng.randbytes(rng.choice((1, 10, 100, 5000)))
        roll = rng.random()
        if roll < 0.55:
            if not body and rng.random() < 0.5:
                return b"\r\n", b""
            return f"\r\nContent-Length: {len(body)}\r\n".encode(), body
        if roll < 0.7:
            chunked = self.chunked(body)
            if version == "HTTP/1.0":
                fuzzed.reusable = False
            fuzzed.mutations.append("chunked")
            return b"\r\nTransfer-Encoding: chunked\r\n", chunked
        fuzzed.reusable = False
        if roll < 0.75:
            fuzzed.mutations.append("Content-Length too small")
            return f"\r\nContent-Length: {max(len(body) - rng.randrange(1, 5), 0)}\r\n".encode(), body + b"X"
        if roll < 0.8:
            fuzzed.complete = False
            fuzzed.mutations.append("Content-Length too large")
            return f"\r\nContent-Length: {len(body) + rng.randrange(1, 100)}\r\n".encode(), body
        if roll < 0.86:
            value = rng.choice(
                (
                    "abc",
                    "-1",
                    "+5",
                    "0x10",
                    "1,2",
                    "5, 6",
                    " ",
                    "\u00b2",
                    "1e3",
                    "1 2",
                    "99999999999999999999999",
                )
            )
            fuzzed.mutations.append(f"Content-Length {value!r}")
            if value == "99999999999999999999999":
                fuzzed.complete = False  # a number a server may take at its word and wait for
            return f"\r\nContent-Length: {value}\r\n".encode("latin-1"), body
        if roll < 0.9:
            fuzzed.mutations.append("Content-Length twice")
            return f"\r\nContent-Length: {len(body)}\r\nContent-Length: {len(body) + 1}\r\n".encode(), body
        if roll < 0.93:
            fuzzed.mutations.append("chunked and Content-Length")
            chunked = self.chunked(body)
            return f"\r\nTransfer-Encoding: chunked\r\nContent-Length: {len(chunked)}\r\n".encode(), chunked
        if roll < 0.96:
            coding = rng.choice(
                ("gzip, chunked", "gzip", "chunked, chunked", "identity", "Chunked", "chunked;q=1")
            )
            fuzzed.mutations.append(f"Transfer-Encoding {coding!r}")
            fuzzed.allowed.add(501)
            return f"\r\nTransfer-Encoding: {coding}\r\n".encode(), self.chunked(body)
        return b"\r\nTransfer-Encoding: chunked\r\n", self.broken_chunked(body, fuzzed)

    def chunked(self, body: bytes) -> bytes:
        rng = self.rng
        out = bytearray()
        at = 0
        while at < len(body):
            size = rng.randrange(1, len(body) - at + 1)
            digits = f"{size:x}" if rng.random() < 0.8 else f"{size:04X}"
            extension = rng.choice(("", "", ";a=b", ';name="quoted"', ";x"))
            out += f"{digits}{extension}\r\n".encode() + body[at : at + size] + b"\r\n"
            at += size
        out += b"0\r\n"
        if rng.random() < 0.1:
            out += b"X-Trailer: yes\r\n"
        return bytes(out + b"\r\n")

    def broken_chunked(self, body: bytes, fuzzed: Fuzzed) -> bytes:
        rng = self.rng
        data = body or b"abc"
        roll = rng.randrange(6)
        if roll == 0:
            size = rng.choice(("0x3", "+3", " 3", "1_0", "zz", "", "-1", "3 ;", "\u00b3"))
            fuzzed.mutations.append(f"chunk size {size!r}")
            return f"{size}\r\n".encode("latin-1") + data + b"\r\n0\r\n\r\n"
        if roll == 1:
            fuzzed.mutations.append("chunk data not followed by CRLF")
            return f"{len(data):x}\r\n".encode() + data + b"Z\r\n0\r\n\r\n"
        if roll == 2:
            fuzzed.mutations.append("chunk size line with bare LF")
            return f"{len(data):x}\n".encode() + data + b"\r\n0\r\n\r\n"
        fuzzed.complete = False
        if roll == 3:
            fuzzed.mutations.append("no last chunk")
            return f"{len(data):x}\r\n".encode() + data + b"\r\n"
        if roll == 4:
            fuzzed.mutations.append("chunk shorter than its size")
            return f"{len(data) + 5:x}\r\n".encode() + data
        fuzzed.mutations.append("chunk size without end")
        return b"fffffffffffffffffff"


@dataclasses.dataclass
class Outcome:
    """The server's answer to one request, or what happened instead."""

    status: int | None = None
    #: No answer: "closed", "reset", "timeout"; or "malformed"/"cut off" for a broken answer.
    trouble: str | None = None
    keep_alive: bool = False
    location: str | None = None


class Connection:
    """A raw client socket (:class:`~tests.rawhttp.RawConnection`) that sends fuzzed requests as bytes and
    tells what came back, or what happened instead."""

    def __init__(self, address: tuple[str, int]) -> None:
        host, port = address
        self.raw = RawConnection(port, host, timeout=TIMEOUT)
        #: Requests sent on this connection, for replaying a failure.
        self.history: list[bytes] = []

    def close(self) -> None:
        self.raw.close()

    def exchange(self, fuzzed: Fuzzed) -> Outcome:
        self.history.append(fuzzed.raw)
        try:
            # An early answer and close is no trouble yet: the answer may still be readable.
            if self.raw.send_until_closed(fuzzed.raw) and not fuzzed.reusable:
                # Nothing more will come: a server waiting for the rest of a cut request sees the end.
                self.raw.sock.shutdown(socket.SHUT_WR)
        except TimeoutError:
            return Outcome(trouble="timeout (sending)")
        try:
            return self.read_answer(fuzzed.method)
        except TimeoutError:
            return Outcome(trouble="timeout")
        except ConnectionClosed as e:
            return Outcome(trouble=e.how if e.how != "cut off" else f"cut off: {e}")
        except MalformedResponse as e:
            return Outcome(trouble=f"malformed: {e}")
        except OSError as e:
            return Outcome(trouble=f"socket error {e}")

    def read_answer(self, method: str) -> Outcome:
        answer = self.raw.read_response(method)
        while 100 <= answer.status < 200 and answer.status != 101:
            answer = self.raw.read_response(method)
        keep_alive = (
            not answer.closes if answer.version == "HTTP/1.1" else "keep-alive" in answer.tokens("connection")
        )
        has_body = method != "HEAD" and answer.status not in (101, 204, 304)
        if has_body and not answer.chunked and answer.header("content-length") is None:
            keep_alive = False  # the body ran to the end of the connection
        return Outcome(
            answer.status, keep_alive=keep_alive and answer.status != 101, location=answer.header("location")
        )


def seed(registry: RegistryServer) -> tuple[list[str], bytes]:
    """Repositories with images, tags and open uploads; returns digests to aim at and a valid manifest."""
    images = [
        registry.push_image("seed/app", "v1", layers=2, size=64),
        registry.push_image("seed/app/nested", "latest", layers=1, size=64),
        registry.push_image("library/busybox", "1.0", layers=1, size=64),
    ]
    digests = [d for image in images for d in (image.digest, image.config, *image.layers)]
    digests += ["sha256:bad", "sha256:" + "0" * 64, "sha512:" + "0" * 128]
    return digests, images[0].manifest


def upload_locations(registry: RegistryServer, count: int) -> list[str]:
    locations = []
    with registry.session() as http:
        for index in range(count):
            response = http.post(registry.url_for(f"/v2/{NAMES[index % 3]}/blobs/uploads/"), timeout=TIMEOUT)
            locations.append(request_target(response.headers["Location"]))
    return locations


@dataclasses.dataclass
class Failure:
    problem: str
    fuzzed: Fuzzed
    earlier: list[bytes]


def judge(fuzzed: Fuzzed, outcome: Outcome) -> str | None:
    """What is wrong with the outcome of this request, if anything."""
    if outcome.status is not None and outcome.status >= 500 and outcome.status not in fuzzed.allowed:
        return f"answered {outcome.status}"
    if fuzzed.method == "CONNECT" and outcome.status is not None and 200 <= outcome.status < 300:
        # RFC 9110 section 9.3.6: a 2xx to CONNECT announces a tunnel, which a registry never opens.
        return f"CONNECT answered {outcome.status}"
    trouble = outcome.trouble
    if trouble is None:
        return None
    if trouble.startswith("timeout"):
        return f"no answer within {TIMEOUT:.0f} s ({trouble})"
    if trouble in ("closed", "reset"):
        return f"connection {trouble} without an answer" if fuzzed.complete else None
    return trouble


def run(registry: RegistryServer, rng: random.Random) -> tuple[collections.Counter[str], list[Failure]]:
    digests, manifest = seed(registry)
    generator = Generator(rng, registry.host, digests, manifest)
    generator.uploads.extend(upload_locations(registry, 6))
    address = ("127.0.0.1", registry.port)
    statuses: collections.Counter[str] = collections.Counter()
    failures: list[Failure] = []
    connection: Connection | None = None
    for _ in range(REQUESTS):
        fuzzed = generator.request()
        if connection is None:
            connection = Connection(address)
        earlier = list(connection.history[-3:])
        outcome = connection.exchange(fuzzed)
        statuses[str(outcome.status) if outcome.status is not None else outcome.trouble or "?"] += 1
        problem = judge(fuzzed, outcome)
        if problem is not None:
            failures.append(Failure(problem, fuzzed, earlier))
        if outcome.location and "/blobs/uploads/" in outcome.location and outcome.status == 202:
            generator.uploads.append(request_target(outcome.location))
        reuse = fuzzed.reusable and outcome.trouble is None and outcome.keep_alive and rng.random() < 0.9
        if not reuse:
            connection.close()
            connection = None
    if connection is not None:
        connection.close()
    return statuses, failures


def report(statuses: collections.Counter[str], failures: list[Failure], seconds: float, keep: Path) -> str:
    """The summary, the first offending requests as bytes, and where all of them were written in full
    (one file per request sent on the offending connection, in order: ``cat`` them into ``nc`` to replay)."""
    problems = collections.Counter(failure.problem for failure in failures)
    lines = [
        f"seed {SEED}: {len(failures)} of {REQUESTS} requests failed in {seconds:.1f} s",
        "answers: " + ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items())),
        "problems: " + ", ".join(f"{problem}: {count}" for problem, count in problems.most_common()),
        f"every offending connection's requests, in full: {keep}",
    ]
    keep.mkdir(parents=True, exist_ok=True)
    for number, failure in enumerate(failures, 1):
        for index, raw in enumerate([*failure.earlier, failure.fuzzed.raw]):
            (keep / f"{number:04d}-{index}.bin").write_bytes(raw)
        if number > SHOWN:
            continue
        lines.append(f"\n{failure.problem} ({', '.join(failure.fuzzed.mutations) or 'no mutation'}):")
        for earlier in failure.earlier:
            lines.append(f"  after, on the same connection ({len(earlier)} bytes): {earlier[:300]!r}")
        raw = failure.fuzzed.raw
        lines.append(f"  request ({len(raw)} bytes): {raw[:3000]!r}")
    return "\n".join(lines)


QUIET: dict[str, t.Any] = {"log": {"level": "error", "accesslog": {"disabled": True}}}


def test_fuzzed_requests_never_break_the_server(
    pax_registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    registry = pax_registry_factory(storage="filesystem", delete=True, config=QUIET)
    started = time.monotonic()
    statuses, failures = run(registry, random.Random(SEED))
    seconds = time.monotonic() - started
    alive = requests.get(registry.url_for("/v2/"), timeout=TIMEOUT)
    assert not failures, report(statuses, failures, seconds, tmp_path / "offending")
    assert alive.status_code == 200, report(statuses, failures, seconds, tmp_path / "offending")
