"""The shared test infrastructure itself: the registry client (:mod:`pax_registry_fixtures.client`) against
a real registry, and the ``pax_redis`` server, so that a test built on them fails for its own reason."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import signal
import socket
from pathlib import Path

import pytest

from pax_registry_fixtures.client import Client
from pax_registry_fixtures.client import FileSpan
from pax_registry_fixtures.client import UnexpectedResponse
from pax_registry_fixtures.client import request_target
from pax_registry_fixtures.client import with_digest
from pax_registry_fixtures.redis import RedisServer
from pax_registry_fixtures.seeding import image_manifest
from pax_registry_fixtures.server import RegistryServer


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
        with pytest.raises(UnexpectedResponse, match=r"blob GET x/y@sha256:0+: expected 200, got 404"):
            client.blob("x/y", "sha256:" + "0" * 64)
        location = client.start_upload("x/y").headers["Location"]
        client.patch(location, b"abc", 0)
        # The second chunk claims to start where nothing was sent: the registry refuses the range.
        with pytest.raises(UnexpectedResponse, match="PATCH: expected 202, got 416"):
            client.patch(location, b"def", 10)
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


def test_basic_auth_is_sent_with_every_request(pax_registry: RegistryServer) -> None:
    with Client(pax_registry.url, auth=("ci", "s3cret")) as client:
        client.request("GET", "/v2/")
        client.push_blob("a/b", b"x")
    expected = "Basic " + base64.b64encode(b"ci:s3cret").decode()
    assert {request.headers.get("Authorization") for request in pax_registry.requests} == {expected}


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
