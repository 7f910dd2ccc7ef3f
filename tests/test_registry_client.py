"""The shared test infrastructure itself: the project's registry client (:mod:`emulator.ociclient`, offered
to tests as :mod:`pax_registry_fixtures.client`) against a real registry and against token realms and
redirects served in front of one, and the ``pax_redis`` server, so that a test built on them fails for its
own reason."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import signal
import socket
import threading
import typing as t
import urllib.parse
from pathlib import Path

import pytest

import emulator
from emulator.ociclient import blob_path
from emulator.ociclient import tags_path
from pax_registry_fixtures.client import Client
from pax_registry_fixtures.client import FileSpan
from pax_registry_fixtures.client import RegistryError
from pax_registry_fixtures.client import request_target
from pax_registry_fixtures.client import with_digest
from pax_registry_fixtures.redis import RedisServer
from pax_registry_fixtures.seeding import image_manifest
from pax_registry_fixtures.server import RegistryServer

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def test_request_targets_and_digest_parameters() -> None:
    assert (
        request_target("http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=s")
        == "/v2/a/blobs/uploads/x?_state=s"
    )
    assert request_target("/v2/a/blobs/uploads/x") == "/v2/a/blobs/uploads/x"
    assert with_digest("/u?_state=s", "sha256:ab") == "/u?_state=s&digest=sha256%3Aab"
    assert with_digest("/u", "sha256:ab") == "/u?digest=sha256%3Aab"


def test_monolithic_and_chunked_pushes_as_the_registry_logs_them(pax_registry: RegistryServer) -> None:
    data = bytes(range(256)) * 41
    with Client(pax_registry.url) as client:
        assert client.push_blob("c/app", data) == sha256(data)
        assert client.push_blob("c/chunks", data, chunk=4000) == sha256(data)
        assert client.blob("c/chunks", sha256(data)) == data
        manifest = image_manifest(data, [])
        assert client.push_manifest("c/app", "v1", manifest) == sha256(manifest)
        fetched = client.manifest("c/app", "v1")
    assert (fetched.status, fetched.body, fetched.json()["config"]["size"]) == (200, manifest, len(data))
    # 10,496 bytes in chunks of 4,000: three PATCHes, then a closing PUT without a body.
    pax_registry.assert_request_made("PATCH", "/v2/c/chunks/blobs/uploads/*", count=3, status=202)
    pax_registry.assert_request_made("PUT", "/v2/c/chunks/blobs/uploads/*", count=1, status=201)
    pax_registry.assert_request_made("PUT", "/v2/c/app/blobs/uploads/*", count=1, status=201)


def test_bodies_from_files_and_streams_and_responses_into_sinks(
    pax_registry: RegistryServer, tmp_path: Path
) -> None:
    content = b"0123456789" * 1000
    path = tmp_path / "blob"
    path.write_bytes(b"header" + content)
    span = FileSpan(str(path), 6, len(content))
    with Client(pax_registry.url) as client:
        assert client.push_blob("f/app", span, digest=sha256(content), chunk=3000) == sha256(content)
        location = client.start_upload("f/stream").headers["Location"]
        pieces = (content[n : n + 777] for n in range(0, len(content), 777))
        client.finish_upload(location, sha256(content), pieces, len(content))
        hasher = hashlib.sha256()
        streamed = client.request("GET", f"/v2/f/stream/blobs/{sha256(content)}", sink=hasher.update)
        counted = client.request("GET", f"/v2/f/app/blobs/{sha256(content)}", discard=True)
    assert (streamed.status, streamed.body, streamed.received) == (200, b"", len(content))
    assert f"sha256:{hasher.hexdigest()}" == sha256(content)
    assert (counted.status, counted.body, counted.received) == (200, b"", len(content))
    with pytest.raises(ValueError, match="needs its length"):
        Client(pax_registry.url).request("PUT", "/v2/", body=iter([b"x"]))


def test_an_unexpected_status_or_range_is_an_error_naming_the_call(pax_registry: RegistryServer) -> None:
    with Client(pax_registry.url) as client:
        with pytest.raises(
            RegistryError, match=r"^GET /v2/x/y/blobs/sha256:0+: 404 BLOB_UNKNOWN: blob unknown"
        ):
            client.blob("x/y", "sha256:" + "0" * 64)
        location = client.start_upload("x/y").headers["Location"]
        client.patch(location, b"abc", 0)
        # The second chunk claims to start where nothing was sent: the registry refuses the range.
        with pytest.raises(RegistryError, match=r"^PATCH /v2/x/y/blobs/uploads/\S+: 416 ") as refused:
            client.patch(location, b"def", 10)
        assert "_state=<redacted>" in str(refused.value) or "_state" not in location
        pax_registry.faults.fail("PUT", "/v2/x/y/manifests/*", status=503)
        assert client.put_manifest("x/y", "v1", image_manifest(b"{}", [])).status == 503


def test_a_new_connection_after_the_server_went_away() -> None:
    with RegistryServer() as first, Client(first.url, timeout=10) as client:
        assert client.request("GET", "/v2/").status == 200
        port = first.port
        first.stop()
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            client.request("GET", "/v2/")
        # Another registry on the same port: the client reconnects on its next request.
        with RegistryServer(port=port):
            assert client.request("GET", "/v2/").status == 200


def test_a_connection_the_server_closed_while_idle_is_replaced_without_a_failure() -> None:
    """A server that closes every connection after one answer, without saying so (no ``Connection:
    close``), as one whose idle timeout struck does: the next request is sent again on a new connection."""
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve() -> None:
            for _ in range(2):
                connection, _ = listener.accept()
                with connection:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        request += connection.recv(4096)
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        with Client(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=10) as client:
            assert client.request("GET", "/v2/").body == b"ok"
            assert client.request("GET", "/v2/").body == b"ok"
        server.join(10)
    assert not server.is_alive()


def test_basic_auth_is_sent_with_every_request(pax_registry: RegistryServer) -> None:
    with Client(pax_registry.url, auth=("ci", "s3cret")) as client:
        client.request("GET", "/v2/")
        client.push_blob("a/b", b"x")
    expected = "Basic " + base64.b64encode(b"ci:s3cret").decode()
    assert {request.headers.get("Authorization") for request in pax_registry.requests} == {expected}


class Ports:
    """WSGI middleware: the client port of every request, so a test sees which shared a connection."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.ports: list[str] = []

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        self.ports.append(str(environ.get("REMOTE_PORT")))
        return self.app(environ, start_response)


def test_requests_share_a_keep_alive_connection_and_threads_get_their_own(
    pax_registry: RegistryServer,
) -> None:
    ports = Ports(pax_registry.middleware)
    with emulator.serve_wsgi(ports) as server, Client(server.url) as client:
        data = b"shared" * 1000
        digest = client.push_blob("k/app", data)
        assert client.blob("k/app", digest) == data
        assert client.has_blob("k/app", digest)
        assert len(set(ports.ports)) == 1  # POST, PUT, GET, HEAD
        # A streamed response left unread takes its connection along: the next request opens another.
        client.open_blob("k/app", digest).close()
        assert client.blob("k/app", digest) == data

        failures: list[BaseException] = []

        def pull() -> None:
            try:
                for _ in range(5):
                    assert client.blob("k/app", digest) == data
            except BaseException as e:  # reported in the test thread
                failures.append(e)

        threads = [threading.Thread(target=pull) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert failures == []
    assert len(ports.ports) == 6 + 4 * 5
    assert ports.ports[4] == ports.ports[0] != ports.ports[5]
    # Four threads hold four connections at the most; one of them may be the idle one.
    assert len(set(ports.ports)) <= 2 + 3


class TokenRealm:
    """A registry behind Bearer tokens: ``/token`` hands out one token per scope for Basic credentials, and
    the wrapped registry wants the token of the repository's scope on every request."""

    def __init__(self, registry: WSGIApplication) -> None:
        self.registry = registry
        self.url = ""
        self.token_queries: list[dict[str, list[str]]] = []
        self.refused = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        if environ["PATH_INFO"] == "/token":
            query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
            self.token_queries.append(query)
            if environ.get("HTTP_AUTHORIZATION") != "Basic " + base64.b64encode(b"ci:s3cret").decode():
                start_response("401 Unauthorized", [("Content-Length", "0")])
                return [b""]
            body = f'{{"token": "for {query["scope"][0]}", "expires_in": 300}}'.encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        repository = environ["PATH_INFO"].removeprefix("/v2/").partition("/blobs/")[0]
        scope = f"repository:{repository}:pull,push"
        if environ.get("HTTP_AUTHORIZATION") != f"Bearer for {scope}":
            self.refused += 1
            challenge = f'Bearer realm="{self.url}/token",service="test",scope="{scope}"'
            start_response("401 Unauthorized", [("WWW-Authenticate", challenge), ("Content-Length", "0")])
            return [b""]
        return self.registry(environ, start_response)


def test_a_bearer_token_per_scope_is_fetched_once_and_sent_before_it_is_asked_for(
    pax_registry: RegistryServer,
) -> None:
    realm = TokenRealm(pax_registry.middleware)
    with emulator.serve_wsgi(realm) as server:
        realm.url = server.url
        with Client(server.url, auth=("ci", "s3cret")) as client:
            digest = client.push_blob("t/one", b"one")
            assert client.blob("t/one", digest) == b"one"
            client.push_blob("t/two", b"two")
        with Client(server.url) as anonymous, pytest.raises(RegistryError) as refused:
            anonymous.blob("t/one", digest)
    scope = "repository:t/one:pull,push"
    assert realm.token_queries[:2] == [
        {"scope": [scope], "service": ["test"], "account": ["ci"]},
        {"scope": ["repository:t/two:pull,push"], "service": ["test"], "account": ["ci"]},
    ]
    # One refusal per scope (the first request), then the token goes with every request.
    assert realm.refused == 2 + 1
    assert str(refused.value) == f"GET /token: 401 Unauthorized: no token for {scope}"


def test_credentials_stay_with_the_registry_when_a_blob_is_redirected() -> None:
    seen: dict[str, str | None] = {}

    def storage(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        seen["storage"] = environ.get("HTTP_AUTHORIZATION")
        start_response("200 OK", [("Content-Length", "4")])
        return [b"data"]

    with emulator.serve_wsgi(storage) as elsewhere:

        def registry(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
            seen["registry"] = environ.get("HTTP_AUTHORIZATION")
            start_response(
                "307 Temporary Redirect", [("Location", f"{elsewhere.url}/x"), ("Content-Length", "0")]
            )
            return [b""]

        with emulator.serve_wsgi(registry) as server, Client(server.url, auth=("ci", "s3cret")) as client:
            assert client.blob("r/app", "sha256:" + "1" * 64) == b"data"
            redirected = client.request("GET", blob_path("r/app", "sha256:" + "1" * 64))
    assert redirected.status == 307
    assert seen == {"registry": "Basic " + base64.b64encode(b"ci:s3cret").decode(), "storage": None}


def test_pages_follow_links_and_a_failure_is_one_line_with_its_codes(pax_registry: RegistryServer) -> None:
    for tag in ("a", "b", "c"):
        pax_registry.push_image("p/app", tag)
    with Client(pax_registry.url) as client:
        assert list(client.pages(tags_path("p/app", "n=2"), "tags")) == [["a", "b"], ["c"]]
        assert client.tags("p/app") == ["a", "b", "c"]
        assert client.tags("p/none") == []
        with pytest.raises(RegistryError) as missing:
            client.get_manifest("p/app", "z")
    assert (
        str(missing.value)
        == 'GET /v2/p/app/manifests/z: 404 MANIFEST_UNKNOWN: manifest unknown ({"tag": "z"})'
    )
    assert (missing.value.status, missing.value.codes) == (404, ("MANIFEST_UNKNOWN",))


def test_a_file_is_pushed_from_where_it_stands_and_a_pull_checks_the_digest(
    pax_registry: RegistryServer, tmp_path: Path
) -> None:
    content = os.urandom(300_000)
    source = tmp_path / "blob"
    source.write_bytes(b"skipped" + content)
    with Client(pax_registry.url) as client, source.open("rb") as file:
        file.seek(7)
        assert client.push_blob("f/app", file, digest=sha256(content)) == sha256(content)
        client.pull_blob("f/app", sha256(content), tmp_path / "pulled")
    assert (tmp_path / "pulled").read_bytes() == content
    assert sorted(path.name for path in tmp_path.iterdir()) == ["blob", "pulled"]


@pytest.mark.needs("redis-server")
def test_pax_redis_answers_and_a_paused_one_keeps_silent(pax_redis: RedisServer) -> None:
    assert pax_redis.client().ping()
    with pax_redis.paused(), socket.create_connection(("127.0.0.1", pax_redis.port), 2) as sock:
        sock.settimeout(0.3)
        sock.sendall(b"PING\r\n")
        with pytest.raises(TimeoutError):
            sock.recv(16)
    assert pax_redis.client().ping()
    # Stopping a paused server continues it first, so that it can exit.
    pid = pax_redis.pid
    os.kill(pid, signal.SIGSTOP)
    pax_redis.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
