"""The HTTP layer under attack (issue 10, suite item a): a raw-socket table of request framing.

Every bad request is followed, in the same ``send``, by a valid marker request for a unique path. A server
that answers the bad request and then executes the marker has read attacker-controlled bytes as a request
(request smuggling); the in-process registry's request log shows whether the marker ran. Each bad case
asserts the status, that the response says ``Connection: close`` and that the server then closes the
connection. Valid framing (pipelining, chunked extensions and trailers, HEAD/204/304, HTTP/1.0, absolute-form,
``Expect: 100-continue`` after authentication, bounded draining of unread bodies, chunked file responses)
must keep working, with the connection still usable where HTTP says it is.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import os
import typing as t
import urllib.parse
import uuid

import pytest

import emulator
from tests.rawhttp import ConnectionClosed
from tests.rawhttp import RawConnection
from tests.rawhttp import RawResponse
from tests.rawhttp import marker_request

if t.TYPE_CHECKING:
    from pathlib import Path

    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIEnvironment

    from pax_registry_fixtures.factory import RegistryFactory
    from pax_registry_fixtures.server import RegistryServer

#: How long a server may take to answer a request, and to close a connection it must close.
RESPONSE_WAIT = 5.0
CLOSE_WAIT = 3.0
REPOSITORY = "framing/test"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a client observed: the status (``None``: no response), whether the response said
    ``Connection: close``, whether the server then closed, and whether the marker request ran."""

    status: int | None
    says_close: bool
    closed: bool
    smuggled: bool


def open_upload(registry: RegistryServer, repository: str = REPOSITORY) -> str:
    """Start an upload; its location's path and query, as a request-target."""
    with registry.session() as http:
        started = http.post(registry.url_for(f"/v2/{repository}/blobs/uploads/"), timeout=RESPONSE_WAIT)
    assert started.status_code == 202, started.text
    location = urllib.parse.urlsplit(started.headers["Location"])
    return f"{location.path}?{location.query}" if location.query else location.path


def request(method: str, target: str, *fields: bytes | str, version: str = "HTTP/1.1") -> bytes:
    """A request head: the request line, ``fields`` as given (each without its CRLF), the blank line."""
    head = f"{method} {target} {version}\r\n".encode("latin-1")
    for field in fields:
        head += (field.encode("latin-1") if isinstance(field, str) else field) + b"\r\n"
    return head + b"\r\n"


def attempt(registry: RegistryServer, data: bytes) -> tuple[Outcome, RawResponse | None]:
    """Send ``data`` and a marker request in one go; observe the answer, the close and the marker."""
    marker = f"smuggled-{uuid.uuid4().hex}"
    response: RawResponse | None = None
    with RawConnection(registry.port, timeout=RESPONSE_WAIT) as conn:
        conn.send_until_closed(data + marker_request(marker, registry.host))
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            response = conn.read_response()
        closed = conn.closes_within(CLOSE_WAIT)
    smuggled = any(marker in entry.path for entry in registry.requests)
    says_close = response is not None and response.closes
    return Outcome(response.status if response else None, says_close, closed, smuggled), response


def refused(status: int) -> Outcome:
    return Outcome(status, says_close=True, closed=True, smuggled=False)


def assert_usable(conn: RawConnection, host: str) -> None:
    """A further request on ``conn`` is answered."""
    conn.send(request("GET", "/v2/", f"Host: {host}"))
    assert conn.read_response().status == 200


# -- requests refused before the app runs: the head ------------------------------------------------------

H = "Host: x"
TOO_LARGE = 1 << 63  # one past the largest signed 64-bit integer


def patch(*fields: bytes | str) -> t.Callable[[str], bytes]:
    """A PATCH of the upload at the given target with ``fields`` and the body ``abc``."""
    return lambda upload: request("PATCH", upload, H, *fields) + b"abc"


def get(target: str, *fields: bytes | str, version: str = "HTTP/1.1") -> t.Callable[[str], bytes]:
    return lambda upload: request("GET", target, *fields, version=version)


def chunked_patch(*fields: bytes | str) -> t.Callable[[str], bytes]:
    """A PATCH with a well-formed chunked body, so that only the head can make it bad."""
    return lambda upload: request("PATCH", upload, H, *fields) + b"3\r\nabc\r\n0\r\n\r\n"


HEAD_CASES: list[t.Any] = [
    # Content-Length (RFC 9110 8.6: 1*DIGIT; one value)
    pytest.param(patch(b"Content-Length: \xb2"), 400, id="content-length-superscript-two-latin-1"),
    pytest.param(patch(b"Content-Length: \xc2\xb2"), 400, id="content-length-superscript-two-utf-8"),
    pytest.param(patch("Content-Length: -1"), 400, id="content-length-negative"),
    pytest.param(patch("Content-Length: +3"), 400, id="content-length-plus-sign"),
    pytest.param(patch("Content-Length: 1e3"), 400, id="content-length-exponent"),
    pytest.param(patch("Content-Length: 3", "Content-Length: 4"), 400, id="content-length-two-values"),
    pytest.param(patch("Content-Length: 3, 4"), 400, id="content-length-list-of-two"),
    pytest.param(patch(f"Content-Length: {1 << 70}"), 400, id="content-length-2^70"),
    pytest.param(patch(f"Content-Length: {TOO_LARGE}"), 400, id="content-length-2^63"),
    # field lines (RFC 9112 5: field-name ":" OWS field-value OWS; no CR, LF or NUL inside)
    pytest.param(get("/v2/", H, b"X-A\x00b: c"), 400, id="nul-in-header-name"),
    pytest.param(get("/v2/", H, b"X-A: b\x00c"), 400, id="nul-in-header-value"),
    pytest.param(get("/v2/", H, b"X-\rA: b"), 400, id="bare-cr-in-header-name"),
    pytest.param(get("/v2/", H, b"X-A: b\rc"), 400, id="bare-cr-in-header-value"),
    pytest.param(get("/v2/", H, b"X-\nA: b"), 400, id="bare-lf-in-header-name"),
    pytest.param(get("/v2/", H, b"X-A: b\nc"), 400, id="bare-lf-in-header-value"),
    pytest.param(get("/v2/", H, "X-A : b"), 400, id="space-before-colon"),
    pytest.param(get("/v2/", H, "X-A: b", " c"), 400, id="obs-fold"),
    pytest.param(get("/v2/", " X-A: b", H), 400, id="whitespace-before-first-field"),
    pytest.param(get("/v2/", H, "X(A): b"), 400, id="separator-in-header-name"),
    pytest.param(get("/v2/"), 400, id="missing-host"),
    pytest.param(get("/v2/", H, "Host: y"), 400, id="two-hosts"),
    pytest.param(get("/v2/", "Host: a b"), 400, id="host-with-a-space"),
    pytest.param(get("/v2/", "Host: \u2603".encode()), 400, id="host-not-ascii"),
    pytest.param(get("/v2/", "Host: x/y"), 400, id="host-with-a-slash"),
    # the request line
    pytest.param(get("/v2/", H, version="HTTP/1.1x"), 400, id="version-1.1x"),
    pytest.param(get("/v2/", H, version="HTTP/1.2x"), 400, id="version-1.2x"),
    pytest.param(get("/v2/", H, version="http/1.1"), 400, id="version-lowercase"),
    pytest.param(get("/v2/", H, version="HTTP/2.0"), 505, id="version-2.0"),
    pytest.param(get("/v2/", H, version="HTTP/3.0"), 505, id="version-3.0"),
    pytest.param(get("v2/", H), 400, id="target-without-slash"),
    pytest.param(get("../v2/", H), 400, id="target-dot-dot"),
    pytest.param(get(" /v2/", H), 400, id="two-spaces-before-target"),
    # CONNECT's 2xx would turn the connection into a tunnel (RFC 9110 9.3.6): never served
    pytest.param(lambda upload: request("CONNECT", "/v2/", H), 400, id="connect-origin-form"),
    pytest.param(lambda upload: request("CONNECT", "x:443", H), 400, id="connect-authority-form"),
    # sizes: a request line over 64 KiB, a head over 1 MiB
    pytest.param(get("/v2/" + "a" * (65 << 10), H), 414, id="request-line-over-64KiB"),
    pytest.param(get("/v2/", H, *[f"X-Pad-{n}: {'p' * 8000}" for n in range(140)]), 431, id="head-over-1MiB"),
    # Transfer-Encoding (RFC 9112 6.1: only chunked, last; not in HTTP/1.0)
    pytest.param(
        lambda upload: (
            request("PATCH", upload, "Transfer-Encoding: chunked", version="HTTP/1.0")
            + b"3\r\nabc\r\n0\r\n\r\n"
        ),
        400,
        id="http/1.0-with-transfer-encoding",
    ),
    pytest.param(chunked_patch("Transfer-Encoding: gzip, chunked"), 501, id="transfer-encoding-gzip-chunked"),
    pytest.param(chunked_patch("Transfer-Encoding: identity"), 501, id="transfer-encoding-identity"),
    pytest.param(
        chunked_patch("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"),
        501,
        id="two-transfer-encoding-headers",
    ),
]


@pytest.mark.parametrize(("build", "status"), HEAD_CASES)
def test_bad_request_head_is_refused_and_nothing_after_it_is_read(
    pax_registry: RegistryServer, build: t.Callable[[str], bytes], status: int
) -> None:
    outcome, response = attempt(pax_registry, build(open_upload(pax_registry)))
    assert outcome == refused(status), f"{outcome}; {response}"
    assert response is not None
    assert (response.header("Content-Type") or "").startswith("text/plain"), response
    assert len(response.body) < 1024, response


# -- bodies refused while the app reads them: chunked framing ---------------------------------------------


def chunked(body: bytes) -> t.Callable[[str], bytes]:
    return lambda upload: request("PATCH", upload, H, "Transfer-Encoding: chunked") + body


BODY_CASES: list[t.Any] = [
    # The reproduction: the marker right after the bad chunk, then with a last chunk between.
    pytest.param(chunked(b"3\r\nabcZ\r\n"), id="chunk-data-not-followed-by-crlf"),
    pytest.param(chunked(b"3\r\nabcZ\r\n0\r\n\r\n"), id="chunk-data-not-followed-by-crlf-then-last-chunk"),
    pytest.param(chunked(b"0x3\r\nabc\r\n0\r\n\r\n"), id="size-0x3"),
    pytest.param(chunked(b"+3\r\nabc\r\n0\r\n\r\n"), id="size-plus-3"),
    pytest.param(chunked(b"1_0\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n"), id="size-1_0"),
    pytest.param(chunked(b" 3 \r\nabc\r\n0\r\n\r\n"), id="size-space-3-space"),
    pytest.param(chunked(b"-1\r\nabc\r\n0\r\n\r\n"), id="size-minus-1"),
    pytest.param(chunked(b"zz\r\nabc\r\n0\r\n\r\n"), id="size-zz"),
    pytest.param(chunked(b"\r\nabc\r\n0\r\n\r\n"), id="size-empty"),
    # h11 reads chunk sizes of up to 20 hex digits; a large one that fits waits for its bytes under the
    # idle timeout, as a large Content-Length does.
    pytest.param(chunked(b"%x\r\nabc\r\n0\r\n\r\n" % (1 << 84)), id="size-21-hex-digits"),
    # The last chunk without the blank line that ends the trailers: the marker that follows must not be
    # taken for trailer lines and swallowed, nor run; it is a malformed trailer section.
    pytest.param(chunked(b"3\r\nabc\r\n0\r\n"), id="no-final-crlf-then-a-request"),
]


@pytest.mark.parametrize("build", BODY_CASES)
def test_bad_chunked_body_is_refused_and_nothing_after_it_is_read(
    pax_registry: RegistryServer, build: t.Callable[[str], bytes]
) -> None:
    outcome, response = attempt(pax_registry, build(open_upload(pax_registry)))
    assert outcome == refused(400), f"{outcome}; {response}"


def test_content_length_and_chunked_is_read_as_chunked_then_closed(pax_registry: RegistryServer) -> None:
    # RFC 9112 6.1: Transfer-Encoding overrides Content-Length, and the connection closes after the response.
    upload = open_upload(pax_registry)
    data = request("PATCH", upload, H, "Content-Length: 3", "Transfer-Encoding: chunked")
    outcome, response = attempt(pax_registry, data + b"5\r\nhello\r\n0\r\n\r\n")
    assert (outcome.status, outcome.closed, outcome.smuggled) == (202, True, False), f"{outcome}; {response}"
    assert response is not None
    assert response.header("Range") == "0-4", response


# -- valid framing keeps working -------------------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order_on_one_connection(pax_registry: RegistryServer) -> None:
    blob = os.urandom(3000)
    digest = pax_registry.push_blob(REPOSITORY, blob)
    host = f"Host: {pax_registry.host}"
    targets = ["/v2/", f"/v2/{REPOSITORY}/blobs/{digest}", "/v2/framing/unknown/tags/list"]
    with RawConnection(pax_registry.port) as conn:
        conn.send(b"".join(request("GET", target, host) for target in targets))
        responses = [conn.read_response() for _ in targets]
        assert [response.status for response in responses] == [200, 200, 404]
        assert responses[1].body == blob
        assert conn.is_open()
        assert_usable(conn, pax_registry.host)
    paths = [entry.path for entry in pax_registry.requests]
    assert paths[-4:] == [*targets, "/v2/"]


def test_chunked_body_with_extensions_and_trailers(pax_registry: RegistryServer) -> None:
    upload = open_upload(pax_registry)
    host = f"Host: {pax_registry.host}"
    body = b"3;name=value\r\nabc\r\n2;flag\r\nde\r\n0\r\nX-Checksum: anything\r\n\r\n"
    digest = "sha256:" + hashlib.sha256(b"abcde").hexdigest()
    with RawConnection(pax_registry.port) as conn:
        conn.send(request("PATCH", upload, host, "Transfer-Encoding: chunked") + body)
        patched = conn.read_response()
        assert (patched.status, patched.header("Range")) == (202, "0-4"), patched
        location = urllib.parse.urlsplit(patched.header("Location") or "")
        finish = f"{location.path}?{location.query}&digest={digest}"
        conn.send(request("PUT", finish, host, "Content-Length: 0"))
        assert conn.read_response().status == 201
        conn.send(request("GET", f"/v2/{REPOSITORY}/blobs/{digest}", host))
        assert conn.read_response().body == b"abcde"
        assert conn.is_open()


def test_content_length_zero_keeps_the_connection(pax_registry: RegistryServer) -> None:
    upload = open_upload(pax_registry)
    with RawConnection(pax_registry.port) as conn:
        conn.send(request("PATCH", upload, f"Host: {pax_registry.host}", "Content-Length: 0"))
        assert conn.read_response().status == 202
        assert_usable(conn, pax_registry.host)


def test_head_204_and_304_responses_have_no_body(pax_registry: RegistryServer) -> None:
    blob = os.urandom(5000)
    digest = pax_registry.push_blob(REPOSITORY, blob)
    upload = open_upload(pax_registry)
    host = f"Host: {pax_registry.host}"
    blob_path = f"/v2/{REPOSITORY}/blobs/{digest}"
    pipelined = [
        ("HEAD", request("HEAD", blob_path, host)),
        ("GET", request("GET", upload, host)),  # upload status: 204
        ("GET", request("GET", blob_path, host, f'If-None-Match: "{digest}"')),
        ("GET", request("GET", "/v2/", host)),
    ]
    with RawConnection(pax_registry.port) as conn:
        conn.send(b"".join(data for _, data in pipelined))
        # Had a body followed any of the first three, the next status line would not parse.
        responses = [conn.read_response(method) for method, _ in pipelined]
        assert [response.status for response in responses] == [200, 204, 304, 200]
        assert responses[0].header("Content-Length") == str(len(blob))
        assert conn.is_open()


def test_http10_is_served_then_closed(pax_registry: RegistryServer) -> None:
    with RawConnection(pax_registry.port) as conn:
        conn.send(request("GET", "/v2/", version="HTTP/1.0"))
        response = conn.read_response()
        assert response.status == 200
        assert conn.closes_within(CLOSE_WAIT), conn.unexpected


def test_absolute_form_target_is_served(pax_registry: RegistryServer) -> None:
    host = pax_registry.host
    with RawConnection(pax_registry.port) as conn:
        conn.send(request("GET", f"http://{host}/v2/", f"Host: {host}"))
        assert conn.read_response().status == 200
        assert_usable(conn, host)
    assert [entry.path for entry in pax_registry.requests][-2:] == ["/v2/", "/v2/"]


# -- unread bodies ---------------------------------------------------------------------------------------


def test_small_unread_body_is_drained_and_the_connection_kept(pax_registry: RegistryServer) -> None:
    host = f"Host: {pax_registry.host}"
    body = os.urandom(100 << 10)
    with RawConnection(pax_registry.port) as conn:
        conn.send(request("GET", "/v2/", host, f"Content-Length: {len(body)}") + body)
        assert conn.read_response().status == 200
        assert_usable(conn, pax_registry.host)


def test_large_unread_body_closes_the_connection_after_the_response(pax_registry: RegistryServer) -> None:
    host = f"Host: {pax_registry.host}"
    declared = 10 << 20
    with RawConnection(pax_registry.port) as conn:
        # Part of the body only: a server that drained it all would wait for the rest instead of closing.
        conn.send_until_closed(request("GET", "/v2/", host, f"Content-Length: {declared}") + bytes(512 << 10))
        assert conn.read_response().status == 200
        assert conn.closes_within(CLOSE_WAIT), conn.unexpected


# -- Expect: 100-continue --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("PATCH", f"/v2/{REPOSITORY}/blobs/uploads/0b5a4fd4-5c8f-4b7e-9d55-0c2a3c3e9c01"),
        ("PUT", f"/v2/{REPOSITORY}/manifests/1"),
    ],
    ids=["PATCH", "PUT"],
)
def test_expect_continue_without_credentials_gets_401_and_never_100(
    pax_registry_factory: RegistryFactory, method: str, target: str
) -> None:
    registry = pax_registry_factory(auth=True)
    head = request(method, target, f"Host: {registry.host}", "Content-Length: 5", "Expect: 100-continue")
    with RawConnection(registry.port, timeout=RESPONSE_WAIT) as conn:
        conn.send(head)
        response = conn.read_response()
        assert response.status == 401, response
        # The client may or may not send its body now: the server cannot tell what follows, so it closes.
        assert conn.closes_within(CLOSE_WAIT), conn.unexpected


def test_expect_continue_with_credentials_gets_100_before_the_body(
    pax_registry_factory: RegistryFactory,
) -> None:
    registry = pax_registry_factory(auth=True)
    upload = open_upload(registry)
    assert registry.auth is not None
    credentials = base64.b64encode(":".join(registry.auth).encode()).decode()
    head = request(
        "PATCH",
        upload,
        f"Host: {registry.host}",
        f"Authorization: Basic {credentials}",
        "Content-Length: 5",
        "Expect: 100-continue",
    )
    with RawConnection(registry.port, timeout=RESPONSE_WAIT) as conn:
        conn.send(head)
        interim = conn.read_response()
        assert (interim.version, interim.status) == ("HTTP/1.1", 100), interim
        conn.send(b"hello")
        final = conn.read_response()
        assert (final.status, final.header("Range")) == (202, "0-4"), final


def test_expect_continue_answered_before_the_body_says_connection_close(pax_registry: RegistryServer) -> None:
    """An answer that comes before the body a client held back for its 100 ends the connection, and says
    so (RFC 9110 10.1.1): the server cannot know whether that body will follow."""
    head = request("GET", "/v2/nothing/tags/list", H, "Expect: 100-continue", "Content-Length: 5")
    with RawConnection(pax_registry.port, timeout=RESPONSE_WAIT) as conn:
        conn.send(head + b"hello" + request("GET", "/v2/", H))
        response = conn.read_response()
        assert response.status == 404, response
        assert (response.header("Connection") or "").lower() == "close", response
        assert conn.closes_within(CLOSE_WAIT), conn.unexpected


def test_a_higher_minor_version_is_served_as_http_1_1(pax_registry: RegistryServer) -> None:
    """RFC 9110 2.5: a recipient serves a higher minor version as the highest it implements."""
    with RawConnection(pax_registry.port, timeout=RESPONSE_WAIT) as conn:
        conn.send(request("GET", "/v2/", H, version="HTTP/1.2") + request("GET", "/v2/", H))
        assert [conn.read_response().status for _ in range(2)] == [200, 200]


def test_empty_lines_before_a_request_are_ignored(pax_registry: RegistryServer) -> None:
    """RFC 9112 2.2: some clients send a CRLF after a body; the next request must still be served."""
    with RawConnection(pax_registry.port, timeout=RESPONSE_WAIT) as conn:
        conn.send(b"\r\n\r\n" + request("GET", "/v2/", H))
        assert conn.read_response().status == 200


# -- responses the server frames itself ------------------------------------------------------------------


def test_file_response_without_length_is_sent_chunked(tmp_path: Path) -> None:
    payload = os.urandom(300_000)
    source = tmp_path / "payload"
    source.write_bytes(payload)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return t.cast(t.Iterable[bytes], environ["wsgi.file_wrapper"](source.open("rb")))

    with emulator.serve_wsgi(app) as server, RawConnection(server.port) as conn:
        conn.send(request("GET", "/", "Host: x") * 2)
        for _ in range(2):
            response = conn.read_response()
            assert (response.status, response.chunked) == (200, True), response
            assert response.body == payload


def test_plain_http_to_a_tls_port_answers_400(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(tls=True)
    with RawConnection(registry.port, timeout=RESPONSE_WAIT) as conn:
        conn.send(request("GET", "/v2/", f"Host: {registry.host}"))
        response = conn.read_response()
        assert response.status == 400, response
        assert response.body.strip() == b"Client sent an HTTP request to an HTTPS server.", response
        assert conn.closes_within(CLOSE_WAIT), conn.unexpected
