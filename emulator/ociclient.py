"""The project's one client for the OCI distribution API: the pack CLI (``registry pack ...``), the
pull-through cache's remote (:mod:`emulator.proxy.remote`), and the tests' and benchmarks' registry client
(:mod:`pax_registry_fixtures.client`) all talk through it.

It talks to any registry: keep-alive connections per scheme and host (a connection the server closed
while idle is replaced), Basic auth, or Bearer tokens from the realm a challenge names (as ``docker`` and
``oras`` get them, reused until they expire), a refused request answered once more after a challenge;
TLS with a private CA, a client certificate, or no verification; redirects of ``GET`` and ``HEAD``
followed on request, credentials never sent to another host. Bodies stream both ways, never held whole:
a :class:`FileSpan` or a file leaves with ``sendfile`` over plain HTTP (1 MiB writes over TLS), an
iterable is sent as it is produced, and a response is read on demand, saved to a file, or passed to a
``sink`` through one reused 4 MiB buffer per thread, so a benchmark measures the server, not the client.

Built on :mod:`http.client` rather than ``requests``: the emulator package has no HTTP client
dependency, and ``requests`` reads bodies in small pieces through several layers. ``conformance``'s
client, which records every exchange for the suite's report, is the one ``requests`` client.

The API URL shapes (``/v2/<name>/blobs/<digest>`` and the rest) are spelt here and nowhere else in the
package: :func:`manifest_path`, :func:`blob_path`, :func:`uploads_path`, :func:`tags_path`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http
import http.client
import json
import os
import re
import shutil
import ssl
import threading
import time
import typing as t
import urllib.parse

__all__ = [
    "MANIFEST_ACCEPT",
    "OCI_CONFIG",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "Challenge",
    "Client",
    "FileSpan",
    "RegistryError",
    "RegistryUnreachable",
    "Response",
    "blob_path",
    "digest_of",
    "expect",
    "file_digest",
    "manifest_path",
    "next_page",
    "parse_challenges",
    "request_target",
    "tags_path",
    "upload_path",
    "uploads_path",
    "with_digest",
]

MIB = 1 << 20
#: The buffer a streamed response is read into, reused by every response of a thread.
RECEIVE_BUFFER = 4 * MIB
_CHUNK = 1 << 16
#: The largest manifest, token response or error body read whole (distribution's manifest limit).
MAX_DOCUMENT = 4 * MIB
#: What a token response without ``expires_in`` is worth, as in distribution (seconds).
DEFAULT_TOKEN_LIFETIME = 60.0
#: How many redirects a ``GET`` or ``HEAD`` follows.
MAX_REDIRECTS = 5

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
#: Every manifest type an image, an index or a pack may be stored as: asked for so that the registry
#: serves manifests as stored, never converted.
MANIFEST_ACCEPT = ", ".join(
    (
        OCI_MANIFEST,
        OCI_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
OCTET_STREAM = {"Content-Type": "application/octet-stream"}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: What a keep-alive connection the server closed while idle fails with when used again.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)

_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
#: One challenge: its scheme, then its parameters up to the next scheme.
_CHALLENGE = re.compile(r"(?:^|,)\s*(Bearer|Basic)\b((?:[^,]|,(?!\s*(?:Bearer|Basic)\b))*)", re.I)
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


# -- the API's URLs --------------------------------------------------------------------------------------


def manifest_path(repository: str, reference: str) -> str:
    return f"/v2/{repository}/manifests/{reference}"


def blob_path(repository: str, digest: str) -> str:
    return f"/v2/{repository}/blobs/{digest}"


def uploads_path(repository: str) -> str:
    """Where an upload starts (``POST``)."""
    return f"/v2/{repository}/blobs/uploads/"


def upload_path(repository: str, upload_id: str) -> str:
    return f"/v2/{repository}/blobs/uploads/{upload_id}"


def tags_path(repository: str, query: str = "") -> str:
    return f"/v2/{repository}/tags/list" + (f"?{query}" if query else "")


CATALOG_PATH = "/v2/_catalog"


def request_target(url: str) -> str:
    """The path and query of ``url`` (an absolute URL, or a target already): what a request line carries."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def with_digest(location: str, digest: str) -> str:
    """An upload's ``location`` with the ``digest`` query parameter that closes it."""
    return f"{location}{'&' if '?' in location else '?'}digest={urllib.parse.quote(digest)}"


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def file_digest(path: str | os.PathLike[str]) -> tuple[str, int]:
    """The sha256 digest and size of a file, read in chunks."""
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as source:
        while chunk := source.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return f"sha256:{hasher.hexdigest()}", size


# -- errors ----------------------------------------------------------------------------------------------


class RegistryError(Exception):
    """A request failed: the message is one line (the call, the status, the registry's error codes and
    messages).

    :param status: the response's status, ``None`` when there was no response.
    :param codes: the ``code`` of each error in the response's OCI error body.
    """

    def __init__(self, message: str, status: int | None = None, codes: t.Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.codes = tuple(codes)


class RegistryUnreachable(RegistryError, ConnectionError):
    """No response: the registry could not be reached, or closed the connection before answering."""


# -- challenges ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer" or "basic"
    params: dict[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a ``WWW-Authenticate`` header (one per scheme)."""
    challenges: list[Challenge] = []
    for match in _CHALLENGE.finditer(header):
        params = {
            key.lower(): (quoted.replace('\\"', '"') if quoted else bare)
            for key, quoted, bare in _CHALLENGE_PARAM.findall(match.group(2))
        }
        challenges.append(Challenge(match.group(1).lower(), params))
    return challenges


# -- bodies ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FileSpan:
    """``count`` bytes of the file at ``path`` from ``offset``: a request body sent straight from the file."""

    path: str
    offset: int
    count: int


#: A request body: bytes, a span of a file, an open file (sent from where it stands to its end), or
#: pieces streamed as they are produced (``length`` given).
Body: t.TypeAlias = bytes | FileSpan | t.BinaryIO | t.Iterable[bytes]

_buffers = threading.local()


def _receive_buffer() -> memoryview:
    # Made on a thread's first streamed response: most clients in tests never stream one.
    buffer: memoryview | None = getattr(_buffers, "buffer", None)
    if buffer is None:
        buffer = _buffers.buffer = memoryview(bytearray(RECEIVE_BUFFER))
    return buffer


# -- responses -------------------------------------------------------------------------------------------


class Response:
    """A response whose body is read on demand: :attr:`body` keeps it, :meth:`read` streams it,
    :meth:`save` writes it to a file, :meth:`drain` passes it to a sink. Once the body is read to its end
    or the response closed, the connection goes back to the client for the next request."""

    def __init__(
        self,
        method: str,
        url: str,
        raw: http.client.HTTPResponse,
        release: t.Callable[[bool], None],
    ) -> None:
        self.method = method
        self.url = url
        self.status = raw.status
        self.headers: http.client.HTTPMessage = raw.headers
        #: Bytes of the body read so far.
        self.received = 0
        self._raw: http.client.HTTPResponse | None = raw
        self._release: t.Callable[[bool], None] | None = release
        self._body: bytes | None = None
        if method == "HEAD" or raw.length == 0:
            raw.read()  # nothing to read: this ends the response, and the connection is free again
        if raw.isclosed():
            self._finish(True)

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _finish(self, reusable: bool) -> None:
        raw, release = self._raw, self._release
        self._raw = self._release = None
        if raw is not None and not reusable:
            raw.close()
        if release is not None:
            release(reusable and (raw is None or raw.isclosed()))

    def read(self, amt: int | None = None) -> bytes:
        """Up to ``amt`` bytes of the body (all that is left without it); ``b""`` at its end."""
        raw = self._raw
        if raw is None:
            return b""
        try:
            data = raw.read(amt)
        except BaseException:
            self._finish(False)
            raise
        self.received += len(data)
        if not data or raw.isclosed():
            self._finish(True)
        return data

    def content(self, limit: int | None = None) -> bytes:
        """The whole body (kept: asking again gives it again), refused past ``limit`` bytes."""
        if self._body is None:
            data = self.read(None if limit is None else limit + 1)
            if limit is not None and len(data) > limit:
                self._finish(False)
                raise RegistryError(
                    f"{self.method} {_shown(self.url)}: the response is larger than {limit} bytes"
                )
            self.close()
            self._body = data
        return self._body

    @property
    def body(self) -> bytes:
        """The whole body; ``b""`` after it was streamed (:attr:`received` counts it then)."""
        return self.content()

    def json(self) -> t.Any:
        try:
            return json.loads(self.content(MAX_DOCUMENT))
        except ValueError as e:
            raise RegistryError(f"{self.method} {_shown(self.url)}: the response is not JSON: {e}") from None

    def drain(self, sink: t.Callable[[memoryview], object] | None = None) -> int:
        """Read the rest of the body through the thread's reused buffer, handing each piece (a view of
        the buffer, valid during the call) to ``sink``, or counting it only; returns the bytes read."""
        raw = self._raw
        if raw is None:
            return 0
        buffer = _receive_buffer()
        count = 0
        try:
            while n := raw.readinto(buffer):
                count += n
                if sink is not None:
                    sink(buffer[:n])
        except BaseException:
            self._finish(False)
            raise
        self.received += count
        self._body = b""
        self._finish(True)
        return count

    def save(self, target: t.BinaryIO) -> str:
        """Stream the body into ``target``; returns the sha256 digest of what was written."""
        hasher = hashlib.sha256()

        def write(piece: memoryview) -> None:
            hasher.update(piece)
            target.write(piece)

        self.drain(write)
        return f"sha256:{hasher.hexdigest()}"

    def close(self) -> None:
        """Done with the response: a body not read to its end closes the connection."""
        if self._raw is not None:
            self._finish(self._raw.isclosed())

    def errors(self) -> list[dict[str, t.Any]]:
        """The entries of an OCI error body (``{"errors": [...]}``); none when the body is not one."""
        try:
            document = json.loads(self.content(64 << 10)) if self.method != "HEAD" else None
        except (ValueError, RegistryError, OSError, http.client.HTTPException):
            document = None
        errors = document.get("errors") if isinstance(document, dict) else None
        return [error for error in errors if isinstance(error, dict)] if isinstance(errors, list) else []

    def expect(self, status: int | t.Collection[int], what: str | None = None) -> Response:
        """This response if its status is ``status`` (or one of them); else its :meth:`failure`."""
        if self.status != status if isinstance(status, int) else self.status not in status:
            raise self.failure(what)
        return self

    def failure(self, what: str | None = None) -> RegistryError:
        """What went wrong, in one line: ``GET /v2/x/manifests/1: 404 MANIFEST_UNKNOWN: manifest
        unknown``, with ``what`` instead of the method and path when given."""
        errors = self.errors()
        parts = []
        for error in errors:
            message = str(error.get("message", ""))
            text = f"{error.get('code', '')}: {message}".strip(": ")
            detail = error.get("detail")
            # A detail that only repeats the message (a list of problems, say) would double the line.
            if detail and not all(leaf in message for leaf in _leaves(detail)):
                text += f" ({detail if isinstance(detail, str) else json.dumps(detail)})"
            parts.append(text)
        shown = "; ".join(parts) or _phrase(self.status)
        line = " ".join(f"{what or f'{self.method} {_shown(self.url)}'}: {self.status} {shown}".split())
        return RegistryError(line, self.status, [str(error.get("code", "")) for error in errors])


def expect(response: Response, status: int | t.Collection[int], what: str | None = None) -> Response:
    """``response`` if its status is ``status`` (or one of them); else its :meth:`Response.failure`."""
    return response.expect(status, what)


#: The most pages :meth:`Client.pages` reads: ten million tags at distribution's 1,000 a page.
MAX_PAGES = 10_000


def next_page(response: Response) -> str | None:
    """The target of ``Link: <...>; rel="next"``, resolved against the request's URL."""
    match = _NEXT_LINK.search(response.headers.get("Link", ""))
    return urllib.parse.urljoin(response.url, match.group(1)) if match else None


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "no error body"


def _leaves(value: t.Any) -> t.Iterator[str]:
    """The strings inside a JSON value."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif value is not None:
        yield str(value)


def _shown(url: str) -> str:
    """A URL as errors show it: the path and query, without upload state tokens."""
    parts = urllib.parse.urlsplit(url)
    query = re.sub(r"(_state=)[^&]*", r"\1<redacted>", parts.query)
    return parts.path + (f"?{query}" if query else "")


# -- connections -----------------------------------------------------------------------------------------


class _Pool:
    """Idle keep-alive connections per scheme and host; a request takes one (or opens one) and its
    response gives it back once read to its end, so threads never share a connection."""

    def __init__(self, context: ssl.SSLContext | None, timeout: float) -> None:
        #: ``None``: the default context, made for the first HTTPS connection. Loading the system's CA
        #: certificates takes milliseconds, which a benchmark's short-lived client over plain HTTP
        #: would otherwise measure.
        self.context = context
        self.timeout = timeout
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def take(self, scheme: str, netloc: str) -> tuple[http.client.HTTPConnection, bool]:
        """A connection, and whether it served a request before."""
        with self._lock:
            idle = self._idle.get((scheme, netloc))
            if idle:
                return idle.pop(), True
        parts = urllib.parse.urlsplit(f"{scheme}://{netloc}")
        host, port = parts.hostname or "127.0.0.1", parts.port
        if scheme == "https":
            with self._lock:
                if self.context is None:
                    self.context = ssl.create_default_context()
                context = self.context
            return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=context), False
        return http.client.HTTPConnection(host, port, timeout=self.timeout), False

    def give(self, scheme: str, netloc: str, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault((scheme, netloc), []).append(connection)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()


# -- the client ------------------------------------------------------------------------------------------


class Client:
    """One registry: its base URL, credentials and TLS settings. Thread-safe: each request has a
    connection of its own while it runs.

    :param url: ``https://host:port`` or ``http://host:port``; a bare ``host:port`` means HTTPS.
    :param context: the TLS settings, else made from ``cacert``, ``client_cert``/``client_key`` and
        ``insecure``.
    :param username: with ``password``, answers Basic challenges and is sent to a token realm.
    :param preemptive: send the Basic credentials with every request before any challenge asks for
        them (as ``curl -u`` does).
    :param insecure: no certificate verification, and for a bare ``host:port`` plain HTTP when the
        registry does not speak TLS (what ``spectro registry login --insecure`` means: HTTP, or
        self-signed TLS).
    """

    def __init__(
        self,
        url: str,
        context: ssl.SSLContext | None = None,
        timeout: float = 60.0,
        *,
        username: str | None = None,
        password: str | None = None,
        preemptive: bool = False,
        cacert: str | os.PathLike[str] | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        insecure: bool = False,
        user_agent: str | None = None,
    ) -> None:
        # A bare HOST:PORT with --insecure: HTTPS without verification, else plain HTTP if the registry
        # does not speak TLS (as docker treats an insecure registry).
        self._plain_fallback = "://" not in url and insecure
        if "://" not in url:
            url = f"https://{url}"
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise RegistryError(f"{url}: not a registry URL (http://HOST:PORT or https://HOST:PORT)")
        self.base_url = f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"
        self.credentials = (username, password or "") if username is not None else None
        self.timeout = timeout
        if context is None and (cacert or client_cert or insecure):
            # Made now, so that a CA bundle or a certificate that cannot be used is said at once.
            context = _tls_context(cacert, client_cert, client_key, insecure)
        self._pool = _Pool(context, timeout)
        self._headers = {"User-Agent": user_agent} if user_agent else {}
        self._lock = threading.Lock()
        #: The registry's last challenge: what every request answers before it is asked.
        self._challenge: Challenge | None = None
        if preemptive and self.credentials is not None:
            self._challenge = Challenge("basic", {})
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}

    @property
    def url(self) -> str:
        return self.base_url

    def close(self) -> None:
        """Close the idle connections (a later request opens new ones)."""
        self._pool.close()

    def __enter__(self) -> t.Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def absolute(self, target: str) -> str:
        """``target`` (a path, or an absolute URL as a ``Location`` gives it) as an absolute URL."""
        if target.startswith(("http://", "https://")):
            return target
        return self.base_url + target

    # -- HTTP ------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: t.Mapping[str, str] | None = None,
        body: Body = b"",
        length: int | None = None,
        expect: int | t.Collection[int] | None = None,
        stream: bool = False,
        discard: bool = False,
        sink: t.Callable[[memoryview], object] | None = None,
        scope: str | None = None,
        follow_redirects: bool = False,
    ) -> Response:
        """Send a request, answering one auth challenge, and read its response.

        :param target: a path (with query), or an absolute URL (a ``Location`` as the registry gave it).
        :param body: bytes, a :class:`FileSpan`, an open file (seekable, so that it can be sent again
            after a challenge), or an iterable of pieces whose total ``length`` is given.
        :param expect: the status(es) the call must get, else :class:`RegistryError` in one line.
        :param stream: leave the body unread, for the caller to read and close.
        :param discard: count the response body instead of keeping it.
        :param sink: called with each piece of the response body (a view of a reused buffer), which is
            then not kept; e.g. ``hasher.update``.
        :param scope: the token scope to ask for (``repository:<name>:pull``) when the challenge names
            none, or before any request was refused.
        :param follow_redirects: follow redirects of ``GET`` and ``HEAD`` (blob downloads sent to
            storage); credentials go only to the registry's own host.
        """
        url = self.absolute(target)
        start = body.tell() if _is_file(body) else 0
        sent = self._authorization(scope)
        response = self._send(method, url, headers, body, length, sent)
        if response.status == 401 and _is_replayable(body):
            retry = self._answer(response, scope, sent)
            if retry is not None:
                response.close()
                if _is_file(body):
                    body.seek(start)
                response = self._send(method, url, headers, body, length, retry)
        hops = 0
        while follow_redirects and method in ("GET", "HEAD") and response.status in _REDIRECTS:
            hops += 1
            location = response.headers.get("Location")
            if not location or hops > MAX_REDIRECTS:
                break
            response.close()
            url = urllib.parse.urljoin(response.url, location)
            response = self._send(method, url, headers, b"", None, self._authorization(scope))
        if expect is not None:
            response.expect(expect)
        if discard or sink is not None:
            response.drain(sink)
        elif not stream:
            response.content()
        return response

    def _send(
        self,
        method: str,
        url: str,
        headers: t.Mapping[str, str] | None,
        body: Body,
        length: int | None,
        authorization: str | None,
    ) -> Response:
        """One exchange on a pooled connection; a connection the server closed while idle is replaced
        once, when the body can be sent again."""
        parts = urllib.parse.urlsplit(url)
        scheme, netloc = parts.scheme, parts.netloc
        fields = {**self._headers, **(headers or {})}
        if authorization is not None and self._same_host(url):
            fields["Authorization"] = authorization
        start = body.tell() if _is_file(body) else 0
        attempt = 0
        while True:
            attempt += 1
            connection, reused = self._pool.take(scheme, netloc)
            try:
                self._write(connection, method, request_target(url), fields, body, length)
                raw = connection.getresponse()
            except BaseException as e:
                # A half-sent request leaves the connection unusable.
                connection.close()
                if isinstance(e, _STALE) and reused and attempt == 1 and _is_replayable(body):
                    if _is_file(body):
                        body.seek(start)
                    continue
                if isinstance(e, ssl.SSLError) and self._fall_back_to_plain(url):
                    plain = "http://" + url.removeprefix("https://")
                    if _is_file(body):
                        body.seek(start)
                    return self._send(method, plain, headers, body, length, authorization)
                if isinstance(e, OSError | http.client.HTTPException):
                    reason = str(e) or type(e).__name__
                    raise RegistryUnreachable(f"cannot reach {scheme}://{netloc}: {reason}") from e
                raise

            def release(reusable: bool, connection: http.client.HTTPConnection = connection) -> None:
                if reusable:
                    self._pool.give(scheme, netloc, connection)
                else:
                    connection.close()

            return Response(method, url, raw, release)

    def _write(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        target: str,
        fields: t.Mapping[str, str],
        body: Body,
        length: int | None,
    ) -> None:
        if isinstance(body, bytes):
            length = len(body)
        elif isinstance(body, FileSpan):
            length = body.count
        elif _is_file(body):
            file = body
            length = os.fstat(file.fileno()).st_size - file.tell()
        elif length is None:
            raise ValueError("a streamed body needs its length")
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in fields.items():
            connection.putheader(name, value)
        if method in ("POST", "PUT", "PATCH") or length:
            connection.putheader("Content-Length", str(length))
        if isinstance(body, bytes):
            connection.endheaders(body or None)
            return
        connection.endheaders()
        if isinstance(body, FileSpan):
            with open(body.path, "rb") as file:
                _send_file(connection, file, body.offset, body.count)
        elif _is_file(body):
            file = body
            _send_file(connection, file, file.tell(), length)
        else:
            for piece in body:
                connection.send(piece)

    def _same_host(self, url: str) -> bool:
        # Blobs are often redirected to object storage, which refuses a presigned URL that also carries
        # an Authorization: the registry's credentials go to the registry only.
        ours = urllib.parse.urlsplit(self.base_url)
        theirs = urllib.parse.urlsplit(url)
        return theirs.netloc == ours.netloc

    def _fall_back_to_plain(self, url: str) -> bool:
        with self._lock:
            if not (self._plain_fallback and url.startswith(self.base_url)):
                return False
            self._plain_fallback = False
            self.base_url = "http://" + self.base_url.removeprefix("https://")
            return True

    # -- auth ------------------------------------------------------------------------------------------

    def ping(self) -> int:
        """``GET /v2/`` without credentials, recording the registry's challenge; returns the status."""
        with self._send("GET", self.absolute("/v2/"), None, b"", None, None) as response:
            challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
            if response.status == 401 or challenges:
                self._record(challenges)
            elif response.status < 300:
                with self._lock:
                    if self._challenge is not None and self._challenge.params:
                        self._challenge = None
            return response.status

    def _record(self, challenges: list[Challenge]) -> Challenge | None:
        """Keep the challenge to answer from now on: a token realm over Basic, as distribution does."""
        bearer = [c for c in challenges if c.scheme == "bearer" and "realm" in c.params]
        basic = [c for c in challenges if c.scheme == "basic"]
        chosen = bearer or basic
        if not chosen:
            return None
        with self._lock:
            self._challenge = chosen[0]
        return chosen[0]

    def _authorization(self, scope: str | None, challenge: Challenge | None = None) -> str | None:
        """What to send before the registry asks: the answer to its last challenge."""
        if challenge is None:
            with self._lock:
                challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return _basic(*self.credentials) if self.credentials is not None else None
        return f"Bearer {self._token(challenge, scope or challenge.params.get('scope', ''))}"

    def _answer(self, response: Response, scope: str | None, sent: str | None) -> str | None:
        """The Authorization that answers a 401's challenge; ``None`` when there is nothing new to try."""
        challenge = self._record(parse_challenges(response.headers.get("WWW-Authenticate", "")))
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            answer = self._authorization(scope, challenge)
        else:
            # The challenge's scope says what this request needs; the caller's serves challenges naming none.
            wanted = challenge.params.get("scope") or scope or ""
            key = (challenge.params["realm"], challenge.params.get("service", ""), wanted)
            with self._lock:
                cached = self._tokens.get(key)
                if cached is not None and sent == f"Bearer {cached[0]}":
                    del self._tokens[key]  # refused: revoked, or expired sooner than it said
            answer = f"Bearer {self._token(challenge, wanted)}"
        return answer if answer != sent else None

    def _token(self, challenge: Challenge, scope: str) -> str:
        realm = challenge.params["realm"]
        service = challenge.params.get("service", "")
        key = (realm, service, scope)
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        query = {name: value for name, value in (("scope", scope), ("service", service)) if value}
        headers = {}
        if self.credentials is not None:
            query["account"] = self.credentials[0]
            headers["Authorization"] = _basic(*self.credentials)
        separator = "&" if "?" in realm else "?"
        url = f"{realm}{separator}{urllib.parse.urlencode(query)}" if query else realm
        with self._send("GET", url, headers, b"", None, None) as answer:
            if answer.status != 200:
                wanted = scope or service or "this registry"
                raise RegistryError(
                    f"GET {_shown(realm)}: {answer.status} {_phrase(answer.status)}: no token for {wanted}",
                    answer.status,
                )
            try:
                document = json.loads(answer.content(MAX_DOCUMENT))
            except (ValueError, RegistryError) as e:
                raise RegistryError(f"GET {_shown(realm)}: no token: {e}") from None
        token = document.get("token") or document.get("access_token") if isinstance(document, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"GET {_shown(realm)}: no token in the answer")
        lifetime = document.get("expires_in")
        seconds = (
            float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else DEFAULT_TOKEN_LIFETIME
        )
        with self._lock:
            # Renewed a little early, so that a token does not expire between here and the registry.
            self._tokens[key] = (token, time.monotonic() + seconds * 0.9)
        return token

    # -- the distribution API --------------------------------------------------------------------------

    def start_upload(self, repository: str) -> Response:
        """``POST /v2/<repository>/blobs/uploads/``: its ``Location`` and ``Docker-Upload-UUID``."""
        return self.request("POST", uploads_path(repository), expect=202)

    def patch(self, location: str, body: Body, offset: int, count: int | None = None) -> str:
        """Send ``body`` (``count`` bytes; known for bytes and file spans) as the chunk at ``offset`` of the
        upload at ``location``; returns the upload's next ``Location``, after checking the ``Range`` the
        registry reports covers everything sent so far."""
        count = len(body) if isinstance(body, bytes) else body.count if isinstance(body, FileSpan) else count
        if count is None:
            raise ValueError("a streamed chunk needs its count")
        headers = {**OCTET_STREAM, "Content-Range": f"{offset}-{offset + count - 1}"}
        response = self.request("PATCH", location, headers=headers, body=body, length=count, expect=202)
        if response.headers.get("Range") != f"0-{offset + count - 1}":
            raise RegistryError(
                f"PATCH {_shown(response.url)} at {offset}: Range {response.headers.get('Range')!r}"
            )
        return self.absolute(response.headers["Location"])

    def finish_upload(self, location: str, digest: str, body: Body = b"", length: int | None = None) -> str:
        """``PUT <location>?digest=`` with the rest of the blob (none by default); returns the digest."""
        response = self.request(
            "PUT", with_digest(location, digest), headers=OCTET_STREAM, body=body, length=length, expect=201
        )
        return str(response.headers.get("Docker-Content-Digest", digest))

    def push_blob(
        self,
        repository: str,
        data: bytes | FileSpan | t.BinaryIO,
        *,
        digest: str | None = None,
        chunk: int | None = None,
    ) -> str:
        """Upload a blob: ``POST`` then one ``PUT`` (the way every registry accepts), or with ``chunk``
        one ``PATCH`` per ``chunk`` bytes and an empty closing ``PUT``. ``digest`` is required for a file
        or a span. Returns the digest."""
        if digest is None:
            if not isinstance(data, bytes):
                raise ValueError("a file or a file span needs its digest")
            digest = digest_of(data)
        location = self.absolute(self.start_upload(repository).headers["Location"])
        if chunk is None:
            return self.finish_upload(location, digest, data)
        if not isinstance(data, bytes | FileSpan):
            data = FileSpan(data.name, data.tell(), os.fstat(data.fileno()).st_size - data.tell())
        size = len(data) if isinstance(data, bytes) else data.count
        for offset in range(0, size, chunk):
            count = min(chunk, size - offset)
            piece = (
                data[offset : offset + count]
                if isinstance(data, bytes)
                else FileSpan(data.path, data.offset + offset, count)
            )
            location = self.patch(location, piece, offset)
        return self.finish_upload(location, digest)

    def has_blob(self, repository: str, digest: str, *, scope: str | None = None) -> bool:
        return (
            self.request("HEAD", blob_path(repository, digest), expect=(200, 404), scope=scope).status == 200
        )

    def blob_size(self, repository: str, digest: str, *, scope: str | None = None) -> int:
        """The blob's size, from ``HEAD``."""
        response = self.request("HEAD", blob_path(repository, digest), expect=200, scope=scope)
        length = response.headers.get("Content-Length", "")
        if not length.isdigit():
            raise RegistryError(f"HEAD {blob_path(repository, digest)}: no Content-Length", response.status)
        return int(length)

    def open_blob(
        self, repository: str, digest: str, offset: int = 0, *, scope: str | None = None
    ) -> Response:
        """``GET`` of the blob from ``offset`` on, body unread: the caller reads and closes it."""
        headers = {"Range": f"bytes={offset}-"} if offset else None
        target = blob_path(repository, digest)
        return self.request(
            "GET", target, headers=headers, expect=(200, 206), stream=True, scope=scope, follow_redirects=True
        )

    def blob(self, repository: str, digest: str) -> bytes:
        """A whole blob in memory (tests' small blobs), following a redirect to storage."""
        return self.request("GET", blob_path(repository, digest), expect=200, follow_redirects=True).body

    def pull_blob(self, repository: str, digest: str, target: str | os.PathLike[str]) -> None:
        """Stream a blob into the file ``target``, checking its digest; nothing is left on a mismatch."""
        response = self.open_blob(repository, digest)
        partial = f"{os.fspath(target)}.partial"
        try:
            with open(partial, "wb") as output:
                received = response.save(output)
            if received != digest:
                raise RegistryError(
                    f"GET {blob_path(repository, digest)}: the content's digest is {received}"
                )
            shutil.move(partial, target)
        finally:
            response.close()
            if os.path.exists(partial):
                os.unlink(partial)

    def manifest(
        self,
        repository: str,
        reference: str,
        accept: str = OCI_MANIFEST,
        *,
        method: str = "GET",
        expect: int | t.Collection[int] | None = None,
        stream: bool = False,
        scope: str | None = None,
    ) -> Response:
        """``GET`` (or ``HEAD``) a manifest; whatever its status unless ``expect`` says."""
        target = manifest_path(repository, reference)
        headers = {"Accept": accept}
        return self.request(method, target, headers=headers, expect=expect, stream=stream, scope=scope)

    def has_manifest(self, repository: str, reference: str, *, scope: str | None = None) -> bool:
        found = self.manifest(
            repository, reference, MANIFEST_ACCEPT, method="HEAD", expect=(200, 404), scope=scope
        )
        return found.status == 200

    def manifest_digest(self, repository: str, reference: str, *, scope: str | None = None) -> str | None:
        """The ``Docker-Content-Digest`` a ``HEAD`` of the manifest gives (``None`` when it gives none)."""
        response = self.manifest(
            repository, reference, MANIFEST_ACCEPT, method="HEAD", expect=200, scope=scope
        )
        return response.headers.get("Docker-Content-Digest")

    def get_manifest(
        self, repository: str, reference: str, *, scope: str | None = None
    ) -> tuple[bytes, str, str]:
        """The manifest's bytes, media type and digest (as the registry states it, else computed)."""
        response = self.manifest(repository, reference, MANIFEST_ACCEPT, expect=200, stream=True, scope=scope)
        content = response.content(MAX_DOCUMENT)
        digest = response.headers.get("Docker-Content-Digest") or digest_of(content)
        media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
        return content, media_type, digest

    def put_manifest(
        self, repository: str, reference: str, manifest: bytes, media_type: str = OCI_MANIFEST
    ) -> Response:
        """``PUT`` a manifest and return the response, whatever its status."""
        headers = {"Content-Type": media_type}
        return self.request("PUT", manifest_path(repository, reference), headers=headers, body=manifest)

    def push_manifest(
        self, repository: str, reference: str, manifest: bytes, media_type: str = OCI_MANIFEST
    ) -> str:
        """``PUT`` a manifest under a tag or its digest; returns its digest."""
        response = expect(self.put_manifest(repository, reference, manifest, media_type), 201)
        return response.headers.get("Docker-Content-Digest") or digest_of(manifest)

    def delete_manifest(self, repository: str, reference: str) -> None:
        self.request("DELETE", manifest_path(repository, reference), expect=(202, 200))

    def pages(self, target: str, key: str, *, scope: str | None = None) -> t.Iterator[list[t.Any]]:
        """The ``key`` list of each page from ``target`` on, following ``Link: <...>; rel="next"``.

        A ``Link`` back to a page already read ends the walk, and so does the :data:`MAX_PAGES`-th page: a
        registry (or a remote a cache asks) that links in a circle, or on and on, would otherwise be
        followed forever.
        """
        page: str | None = target
        seen: set[str] = set()
        while page is not None and page not in seen and len(seen) < MAX_PAGES:
            seen.add(page)
            response = self.request("GET", page, expect=200, scope=scope)
            document = response.json()
            yield (document.get(key) or []) if isinstance(document, dict) else []
            page = next_page(response)

    def tags(self, repository: str, *, scope: str | None = None) -> list[str]:
        """Every tag of ``repository``, following ``Link`` pages; none when the repository is unknown."""
        found: list[str] = []
        try:
            for page in self.pages(tags_path(repository), "tags", scope=scope):
                found += [tag for tag in page if isinstance(tag, str)]
        except RegistryError as e:
            if e.status != 404:
                raise
        return found

    def catalog(self) -> list[str]:
        """Every repository the registry lists in ``/v2/_catalog``, following ``Link`` pages."""
        return [name for page in self.pages(f"{CATALOG_PATH}?n=1000", "repositories") for name in page]


def _tls_context(
    cacert: str | os.PathLike[str] | None,
    client_cert: str | os.PathLike[str] | None,
    client_key: str | os.PathLike[str] | None,
    insecure: bool,
) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=os.fspath(cacert) if cacert else None)
    except (OSError, ValueError) as e:
        raise RegistryError(
            f"{cacert}: not a usable CA bundle: {getattr(e, 'strerror', None) or e}"
        ) from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert:
        try:
            context.load_cert_chain(os.fspath(client_cert), os.fspath(client_key) if client_key else None)
        except (OSError, ValueError) as e:
            problem = getattr(e, "strerror", None) or e
            raise RegistryError(f"{client_cert}: not a usable client certificate: {problem}") from None
    return context


def _send_file(connection: http.client.HTTPConnection, file: t.BinaryIO, offset: int, count: int) -> None:
    sock = connection.sock
    assert sock is not None
    if not isinstance(sock, ssl.SSLSocket):
        sock.sendfile(file, offset, count)  # zero copy: the client costs nothing
        return
    file.seek(offset)
    remaining = count
    while remaining:
        data = file.read(min(MIB, remaining))
        if not data:
            raise OSError(f"{getattr(file, 'name', 'the file')} ended {remaining} bytes early")
        sock.sendall(data)
        remaining -= len(data)


def _is_file(body: object) -> t.TypeGuard[t.BinaryIO]:
    return hasattr(body, "fileno") and hasattr(body, "read")


def _is_replayable(body: object) -> bool:
    return isinstance(body, bytes | FileSpan) or (_is_file(body) and body.seekable())


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
