"""The pull-through cache (``proxy``): a second registry as the remote (the emulator, with and without
htpasswd or a token realm in front of it, and Debian's docker-registry), clients pulling through the cache
over HTTP, and what the cache keeps, refuses and expires."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import threading
import time
import typing as t
import urllib.parse
from pathlib import Path

import pytest
import requests

import emulator
from emulator.drivers.base import PathNotFound
from emulator.proxy.expiry import STATE_PATH
from emulator.proxy.expiry import format_time
from emulator.proxy.expiry import parse_time
from emulator.proxy.remote import parse_challenges
from emulator.reference import Digest
from emulator.storage import paths
from pax_registry_fixtures.distribution import DistributionServer
from pax_registry_fixtures.distribution import write_htpasswd
from pax_registry_fixtures.factory import RegistryFactory
from pax_registry_fixtures.handle import RegistryHandle
from pax_registry_fixtures.server import RegistryServer
from tests.clients import build_image
from tests.clients import needs_tools
from tests.clients import skopeo

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = {"Accept": OCI_MANIFEST}
REPOSITORY = "team/app"


def session() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    return http


def get(registry: RegistryHandle, path: str, method: str = "GET", **kwargs: t.Any) -> requests.Response:
    with session() as http:
        return http.request(method, registry.url_for(path), **kwargs)


def error_code(response: requests.Response) -> str:
    return str(response.json()["errors"][0]["code"])


def stored_root(registry: RegistryServer) -> Path:
    return Path(registry.config.storage.rootdirectory)


def wait_for(condition: t.Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Wait for background work (the expiry thread); fails with ``what`` if it never happens."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def is_cached(cache: RegistryServer, digest: str) -> bool:
    parsed = Digest.parse(digest)
    return cache.registry.blobs.is_linked(REPOSITORY, parsed) and (
        cache.registry.blobs.stat_global(parsed) is not None
    )


def leftover_uploads(cache: RegistryServer) -> list[str]:
    try:
        return cache.registry.driver.list(f"{paths.repository(REPOSITORY)}/{paths.UPLOADS}")
    except PathNotFound:
        return []


# -- pulls through the cache -------------------------------------------------------------------------------


def test_a_pull_fills_the_cache_which_then_serves_without_the_remote(
    pax_registry_factory: RegistryFactory,
) -> None:
    remote = pax_registry_factory()
    image = remote.push_image(REPOSITORY, "1.0", layers=2, size=3_000_000)
    cache = pax_registry_factory(proxy=remote)

    manifest = get(cache, f"/v2/{REPOSITORY}/manifests/1.0", headers=ACCEPT)
    assert manifest.status_code == 200
    assert manifest.content == image.manifest
    assert manifest.headers["Docker-Content-Digest"] == image.digest
    for digest in (image.config, *image.layers):
        blob = get(cache, f"/v2/{REPOSITORY}/blobs/{digest}")
        assert blob.status_code == 200
        assert f"sha256:{hashlib.sha256(blob.content).hexdigest()}" == digest
        assert is_cached(cache, digest)
    # One fetch per blob: the client's stream was the one written to storage.
    assert len(remote.requests_matching("GET", f"/v2/{REPOSITORY}/blobs/*")) == 3
    assert leftover_uploads(cache) == []

    remote.stop()
    again = get(cache, f"/v2/{REPOSITORY}/manifests/1.0", headers=ACCEPT)
    assert again.status_code == 200
    assert again.content == image.manifest
    by_digest = get(cache, f"/v2/{REPOSITORY}/manifests/{image.digest}", headers=ACCEPT)
    assert by_digest.content == image.manifest
    for digest in image.layers:
        assert (
            f"sha256:{hashlib.sha256(get(cache, f'/v2/{REPOSITORY}/blobs/{digest}').content).hexdigest()}"
            == (digest)
        )
    tags = get(cache, f"/v2/{REPOSITORY}/tags/list")
    assert tags.json() == {"name": REPOSITORY, "tags": ["1.0"]}
    assert get(cache, "/v2/_catalog").json() == {"repositories": [REPOSITORY]}


def test_what_the_cache_answers_when_the_remote_is_down(pax_registry_factory: RegistryFactory) -> None:
    remote = pax_registry_factory()
    remote.push_image(REPOSITORY, "1.0")
    cache = pax_registry_factory(proxy=remote)
    remote.stop()

    tag = get(cache, f"/v2/{REPOSITORY}/manifests/2.0", headers=ACCEPT)
    assert (tag.status_code, error_code(tag)) == (404, "MANIFEST_UNKNOWN")
    assert tag.json()["errors"][0]["detail"] == {"Tag": "2.0"}
    missing = "sha256:" + "a" * 64
    blob = get(cache, f"/v2/{REPOSITORY}/blobs/{missing}")
    assert (blob.status_code, error_code(blob)) == (500, "UNKNOWN")
    manifest = get(cache, f"/v2/{REPOSITORY}/manifests/{missing}", headers=ACCEPT)
    assert (manifest.status_code, error_code(manifest)) == (500, "UNKNOWN")
    tags = get(cache, f"/v2/{REPOSITORY}/tags/list")
    assert (tags.status_code, error_code(tags)) == (404, "NAME_UNKNOWN")


def test_what_the_cache_answers_for_content_the_remote_lacks(pax_registry_factory: RegistryFactory) -> None:
    remote = pax_registry_factory()
    remote.push_image(REPOSITORY, "1.0")
    cache = pax_registry_factory(proxy=remote)
    missing = "sha256:" + "b" * 64
    blob = get(cache, f"/v2/{REPOSITORY}/blobs/{missing}")
    assert (blob.status_code, error_code(blob)) == (404, "BLOB_UNKNOWN")
    # distribution 2.8 answers a manifest digest missing upstream with 500, as any upstream error.
    manifest = get(cache, f"/v2/{REPOSITORY}/manifests/{missing}", headers=ACCEPT)
    assert (manifest.status_code, error_code(manifest)) == (500, "UNKNOWN")
    tag = get(cache, f"/v2/{REPOSITORY}/manifests/nope", headers=ACCEPT)
    assert (tag.status_code, error_code(tag)) == (404, "MANIFEST_UNKNOWN")
    unknown = get(cache, "/v2/nobody/tags/list")
    assert (unknown.status_code, error_code(unknown)) == (404, "NAME_UNKNOWN")


def test_head_of_a_missing_blob_answers_from_the_remote_and_caches_nothing(
    pax_registry_factory: RegistryFactory,
) -> None:
    remote = pax_registry_factory()
    image = remote.push_image(REPOSITORY, "1.0", size=5000)
    cache = pax_registry_factory(proxy=remote)
    head = get(cache, f"/v2/{REPOSITORY}/blobs/{image.layers[0]}", method="HEAD")
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == image.layers[0]
    assert int(head.headers["Content-Length"]) > 5000
    assert not is_cached(cache, image.layers[0])


def test_a_ranged_get_of_a_missing_blob_streams_the_range(pax_registry_factory: RegistryFactory) -> None:
    remote = pax_registry_factory()
    image = remote.push_image(REPOSITORY, "1.0", size=5000)
    cache = pax_registry_factory(proxy=remote)
    whole = get(remote, f"/v2/{REPOSITORY}/blobs/{image.layers[0]}").content
    ranged = get(cache, f"/v2/{REPOSITORY}/blobs/{image.layers[0]}", headers={"Range": "bytes=100-"})
    assert ranged.status_code == 206
    assert ranged.content == whole[100:]
    assert not is_cached(cache, image.layers[0])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2/team/app/blobs/uploads/"),
        ("POST", "/v2/team/app/blobs/uploads/?mount=sha256:" + "c" * 64 + "&from=other"),
        ("PUT", "/v2/team/app/manifests/1.0"),
        ("DELETE", "/v2/team/app/manifests/sha256:" + "c" * 64),
        ("DELETE", "/v2/team/app/blobs/sha256:" + "c" * 64),
    ],
)
def test_writes_are_unsupported(pax_registry_factory: RegistryFactory, method: str, path: str) -> None:
    remote = pax_registry_factory()
    cache = pax_registry_factory(proxy=remote)
    response = get(cache, path, method=method, data=b"{}")
    assert response.status_code == 405
    assert response.json()["errors"][0]["code"] == "UNSUPPORTED"
    assert response.json()["errors"][0]["message"] == "The operation is unsupported."
    assert remote.requests_matching(method, "/v2/team/*") == []


# -- a remote that fails -----------------------------------------------------------------------------------


class CutsBlobsShort:
    """WSGI middleware in front of the remote: the next ``times`` blob GETs send half their body, then the
    connection breaks (the server sees the body end before its Content-Length)."""

    def __init__(self, app: WSGIApplication, times: int = 1) -> None:
        self.app = app
        self.left = times

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        if (
            environ["REQUEST_METHOD"] != "GET"
            or "/blobs/sha256:" not in environ["PATH_INFO"]
            or not self.left
        ):
            return self.app(environ, start_response)
        self.left -= 1
        body = b"".join(self.app(environ, start_response))
        return [body[: len(body) // 2]]


def test_a_remote_failing_mid_blob_leaves_no_blob_and_a_retry_succeeds(
    pax_registry_factory: RegistryFactory,
) -> None:
    remote = pax_registry_factory()
    image = remote.push_image(REPOSITORY, "1.0", size=2_000_000)
    remote.middleware.app = CutsBlobsShort(remote.middleware.app)
    cache = pax_registry_factory(proxy=remote)
    layer = image.layers[0]

    with pytest.raises(requests.exceptions.RequestException):
        get(cache, f"/v2/{REPOSITORY}/blobs/{layer}").content  # noqa: B018 - the body is what fails
    assert not is_cached(cache, layer)
    assert cache.registry.blobs.stat_global(Digest.parse(layer)) is None
    assert leftover_uploads(cache) == []

    retry = get(cache, f"/v2/{REPOSITORY}/blobs/{layer}")
    assert retry.status_code == 200
    assert f"sha256:{hashlib.sha256(retry.content).hexdigest()}" == layer
    assert is_cached(cache, layer)


def test_a_remote_refusing_a_blob_is_an_error_and_a_retry_succeeds(
    pax_registry_factory: RegistryFactory,
) -> None:
    remote = pax_registry_factory()
    image = remote.push_image(REPOSITORY, "1.0")
    cache = pax_registry_factory(proxy=remote)
    remote.faults.fail("GET", "/v2/*/blobs/*", status=503)
    layer = image.layers[0]
    refused = get(cache, f"/v2/{REPOSITORY}/blobs/{layer}")
    assert (refused.status_code, error_code(refused)) == (500, "UNKNOWN")
    assert not is_cached(cache, layer)
    assert leftover_uploads(cache) == []
    assert get(cache, f"/v2/{REPOSITORY}/blobs/{layer}").status_code == 200
    assert is_cached(cache, layer)


class CorruptsBlobs:
    """WSGI middleware in front of the remote: blob GETs send their body with the first byte changed."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        if environ["REQUEST_METHOD"] != "GET" or "/blobs/sha256:" not in environ["PATH_INFO"]:
            return self.app(environ, start_response)
        body = b"".join(self.app(environ, start_response))
        return [bytes([body[0] ^ 0xFF]) + body[1:]]


def test_a_blob_that_does_not_match_its_digest_is_not_stored(pax_registry_factory: RegistryFactory) -> None:
    remote = pax_registry_factory()
    image = remote.push_image(REPOSITORY, "1.0", size=100_000)
    remote.middleware.app = CorruptsBlobs(remote.middleware.app)
    cache = pax_registry_factory(proxy=remote)
    with pytest.raises(requests.exceptions.RequestException):
        get(cache, f"/v2/{REPOSITORY}/blobs/{image.layers[0]}").content  # noqa: B018
    assert cache.registry.blobs.stat_global(Digest.parse(image.layers[0])) is None
    assert leftover_uploads(cache) == []


class HoldsFirstBlob:
    """WSGI middleware in front of the remote: the first blob GET waits for :attr:`release`."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.arrived = threading.Event()
        self.release = threading.Event()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        if (
            environ["REQUEST_METHOD"] == "GET"
            and "/blobs/" in environ["PATH_INFO"]
            and not self.arrived.is_set()
        ):
            self.arrived.set()
            self.release.wait(30)
        return self.app(environ, start_response)


def test_a_blob_being_fetched_is_streamed_to_others_without_a_second_fill(
    pax_registry_factory: RegistryFactory,
) -> None:
    remote = pax_registry_factory()
    image = remote.push_image(REPOSITORY, "1.0", size=500_000)
    gate = HoldsFirstBlob(remote.middleware.app)
    remote.middleware.app = gate
    cache = pax_registry_factory(proxy=remote)
    path = f"/v2/{REPOSITORY}/blobs/{image.layers[0]}"
    first: list[requests.Response] = []
    filling = threading.Thread(target=lambda: first.append(get(cache, path)))
    filling.start()
    try:
        assert gate.arrived.wait(30)
        second = get(cache, path)
        assert f"sha256:{hashlib.sha256(second.content).hexdigest()}" == image.layers[0]
        assert not is_cached(cache, image.layers[0])  # the fill is still waiting for the remote
    finally:
        gate.release.set()
        filling.join(30)
    assert f"sha256:{hashlib.sha256(first[0].content).hexdigest()}" == image.layers[0]
    assert is_cached(cache, image.layers[0])
    assert leftover_uploads(cache) == []


def test_pulls_through_the_cache_notify_pulls_and_fills_notify_no_push(
    pax_registry_factory: RegistryFactory,
) -> None:
    remote = pax_registry_factory()
    image = remote.push_image(REPOSITORY, "1.0")
    cache = pax_registry_factory(proxy=remote, notifications=True)
    assert cache.notifications is not None
    assert get(cache, f"/v2/{REPOSITORY}/manifests/1.0", headers=ACCEPT).status_code == 200
    assert get(cache, f"/v2/{REPOSITORY}/blobs/{image.layers[0]}").status_code == 200
    cache.notifications.wait_for(action="pull", repository=REPOSITORY, digest=image.digest)
    cache.notifications.wait_for(action="pull", repository=REPOSITORY, digest=image.layers[0])
    assert [event for event in cache.notifications.events if event["action"] != "pull"] == []


# -- tags and expiry ---------------------------------------------------------------------------------------


def test_a_tag_is_checked_upstream_again_once_older_than_the_ttl(
    pax_registry_factory: RegistryFactory,
) -> None:
    remote = pax_registry_factory()
    first = remote.push_image(REPOSITORY, "1.0")
    cache = pax_registry_factory({"proxy": {"ttl": "1h"}}, storage="filesystem", proxy=remote)
    assert get(cache, f"/v2/{REPOSITORY}/manifests/1.0", headers=ACCEPT).content == first.manifest

    second = remote.push_image(REPOSITORY, "1.0")
    # Younger than the ttl: the cached tag is served without asking the remote.
    heads = len(remote.requests_matching("HEAD", f"/v2/{REPOSITORY}/manifests/1.0"))
    assert get(cache, f"/v2/{REPOSITORY}/manifests/1.0", headers=ACCEPT).content == first.manifest
    assert len(remote.requests_matching("HEAD", f"/v2/{REPOSITORY}/manifests/1.0")) == heads

    link = stored_root(cache) / paths.tag_current_link(REPOSITORY, "1.0").lstrip("/")
    two_hours_ago = time.time() - 7200
    os.utime(link, (two_hours_ago, two_hours_ago))
    moved = get(cache, f"/v2/{REPOSITORY}/manifests/1.0", headers=ACCEPT)
    assert moved.content == second.manifest
    assert moved.headers["Docker-Content-Digest"] == second.digest

    # The remote down, the tag as last resolved is served.
    remote.stop()
    # Another time than before: the tag store trusts a link whose size and time it has seen.
    three_hours_ago = time.time() - 3 * 3600
    os.utime(link, (three_hours_ago, three_hours_ago))
    assert get(cache, f"/v2/{REPOSITORY}/manifests/1.0", headers=ACCEPT).content == second.manifest


def test_a_small_ttl_rechecks_the_tag(pax_registry_factory: RegistryFactory) -> None:
    remote = pax_registry_factory()
    remote.push_image(REPOSITORY, "1.0")
    cache = pax_registry_factory({"proxy": {"ttl": "1s"}}, proxy=remote)
    assert get(cache, f"/v2/{REPOSITORY}/manifests/1.0", headers=ACCEPT).status_code == 200
    second = remote.push_image(REPOSITORY, "1.0")
    wait_for(
        lambda: get(cache, f"/v2/{REPOSITORY}/manifests/1.0", headers=ACCEPT).content == second.manifest,
        "the moved tag served once the ttl ran out",
    )


def test_expired_content_is_removed_and_the_state_file_has_distributions_shape(
    pax_registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    remote = pax_registry_factory()
    image = remote.push_image(REPOSITORY, "1.0", layers=1)
    root = tmp_path / "cache"
    config = {
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
        "proxy": {"ttl": "1h"},
    }
    cache = pax_registry_factory(config, proxy=remote)
    before = datetime.datetime.now(datetime.UTC)
    assert get(cache, f"/v2/{REPOSITORY}/manifests/1.0", headers=ACCEPT).status_code == 200
    for digest in (image.config, *image.layers):
        assert get(cache, f"/v2/{REPOSITORY}/blobs/{digest}").status_code == 200
    cache.stop()

    state_file = root / STATE_PATH.lstrip("/")
    state = json.loads(state_file.read_text())
    kinds = {
        f"{REPOSITORY}@{image.digest}": 1,
        **{f"{REPOSITORY}@{d}": 0 for d in (image.config, *image.layers)},
    }
    assert sorted(state) == sorted(kinds)
    for key, entry in state.items():
        assert sorted(entry) == ["EntryType", "ExpiryData", "Key"]
        assert entry["Key"] == key
        assert entry["EntryType"] == kinds[key]
        due = parse_time(entry["ExpiryData"])
        assert before + datetime.timedelta(minutes=59) < due < before + datetime.timedelta(minutes=61)

    # As the reference was checked: the entries made overdue, then a start on the same storage.
    past = format_time(before - datetime.timedelta(seconds=1))
    state_file.write_text(json.dumps({key: {**entry, "ExpiryData": past} for key, entry in state.items()}))
    restarted = pax_registry_factory(config, proxy=remote)
    wait_for(lambda: json.loads(state_file.read_text()) == {}, "the overdue entries expired")
    v2 = root / paths.ROOT.lstrip("/")
    for digest in (image.config, *image.layers):
        assert not (root / paths.layer_link(REPOSITORY, Digest.parse(digest)).lstrip("/")).exists()
        assert not (root / paths.blob_data(Digest.parse(digest)).lstrip("/")).exists()
    # A manifest loses its revision link only: its data and the tag stay.
    manifest = Digest.parse(image.digest)
    assert not (root / paths.manifest_revision_link(REPOSITORY, manifest).lstrip("/")).exists()
    assert (root / paths.blob_data(manifest).lstrip("/")).exists()
    assert (root / paths.tag_current_link(REPOSITORY, "1.0").lstrip("/")).exists()
    assert v2.is_dir()

    # The next pull fetches it all again.
    assert (
        get(restarted, f"/v2/{REPOSITORY}/manifests/{image.digest}", headers=ACCEPT).content == image.manifest
    )
    assert get(restarted, f"/v2/{REPOSITORY}/blobs/{image.layers[0]}").status_code == 200
    assert is_cached(restarted, image.layers[0])


def test_without_deletes_expiry_keeps_the_content_as_distribution_does(
    pax_registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    remote = pax_registry_factory()
    image = remote.push_image(REPOSITORY, "1.0")
    root = tmp_path / "cache"
    config = {
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": False}},
        "proxy": {"ttl": "1s"},
    }
    cache = pax_registry_factory(config, proxy=remote)
    assert get(cache, f"/v2/{REPOSITORY}/blobs/{image.layers[0]}").status_code == 200
    state_file = root / STATE_PATH.lstrip("/")
    wait_for(lambda: state_file.exists() and json.loads(state_file.read_text()) == {}, "the entry expired")
    assert is_cached(cache, image.layers[0])


# -- auth to the remote ------------------------------------------------------------------------------------


def test_a_remote_with_htpasswd_is_pulled_with_the_configured_credentials(
    pax_registry_factory: RegistryFactory,
) -> None:
    remote = pax_registry_factory(auth=True)
    image = remote.push_image(REPOSITORY, "1.0")
    cache = pax_registry_factory(proxy=remote)
    assert get(cache, f"/v2/{REPOSITORY}/manifests/1.0", headers=ACCEPT).content == image.manifest
    assert get(cache, f"/v2/{REPOSITORY}/blobs/{image.layers[0]}").status_code == 200

    anonymous = pax_registry_factory(proxy=remote.url)
    refused = get(anonymous, f"/v2/{REPOSITORY}/manifests/1.0", headers=ACCEPT)
    assert (refused.status_code, error_code(refused)) == (404, "MANIFEST_UNKNOWN")


class TokenRealm:
    """A registry behind Bearer tokens, as Docker Hub is: ``/token`` hands out a token for Basic
    credentials, and the registry (the wrapped app) wants it on every request."""

    TOKEN = "t0ken"

    def __init__(self, registry: WSGIApplication, username: str, password: str) -> None:
        self.registry = registry
        self.credentials = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.url = ""
        #: The query of every token request.
        self.token_requests: list[dict[str, list[str]]] = []

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        if environ["PATH_INFO"] == "/token":
            self.token_requests.append(urllib.parse.parse_qs(environ.get("QUERY_STRING", "")))
            if environ.get("HTTP_AUTHORIZATION") != self.credentials:
                start_response("401 Unauthorized", [("Content-Length", "0")])
                return [b""]
            body = json.dumps({"token": self.TOKEN, "expires_in": 300}).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        if environ.get("HTTP_AUTHORIZATION") != f"Bearer {self.TOKEN}":
            challenge = f'Bearer realm="{self.url}/token",service="test-registry"'
            start_response(
                "401 Unauthorized",
                [
                    ("WWW-Authenticate", challenge),
                    ("Content-Type", "application/json"),
                    ("Content-Length", "2"),
                ],
            )
            return [b"{}"]
        return self.registry(environ, start_response)


def test_a_remote_behind_a_token_realm(pax_registry_factory: RegistryFactory) -> None:
    backend = RegistryServer()
    try:
        image = backend.push_image(REPOSITORY, "1.0")
        realm = TokenRealm(backend.middleware, "puller", "s3cret")
        server = emulator.serve_wsgi(realm)
        realm.url = server.url
        try:
            cache = pax_registry_factory(
                {"proxy": {"username": "puller", "password": "s3cret"}}, proxy=server.url
            )
            assert get(cache, f"/v2/{REPOSITORY}/manifests/1.0", headers=ACCEPT).content == image.manifest
            assert get(cache, f"/v2/{REPOSITORY}/blobs/{image.layers[0]}").status_code == 200
            assert realm.token_requests
            assert realm.token_requests[0] == {
                "scope": [f"repository:{REPOSITORY}:pull"],
                "service": ["test-registry"],
                "account": ["puller"],
            }
            # The token is reused until it expires.
            assert len(realm.token_requests) == 1
        finally:
            server.stop()
    finally:
        backend.stop()


def test_challenges_are_read_as_distribution_sends_them() -> None:
    header = 'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull"'
    (bearer,) = parse_challenges(header)
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a:pull",
    }
    both = parse_challenges('Basic realm="Registry Realm", Bearer realm="https://a/t",service="s"')
    assert [(c.scheme, c.params["realm"]) for c in both] == [
        ("basic", "Registry Realm"),
        ("bearer", "https://a/t"),
    ]


def test_times_are_written_and_read_as_go_writes_them() -> None:
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=datetime.UTC)
    assert format_time(moment) == "2026-01-02T03:04:05.12Z"
    assert format_time(moment.replace(microsecond=0)) == "2026-01-02T03:04:05Z"
    assert parse_time("2026-01-02T03:04:05.120000001Z") == moment
    assert parse_time("2026-01-02T04:04:05.12+01:00") == moment


# -- real clients and the real registry ------------------------------------------------------------------


def copy_through(source: str, cache: RegistryHandle, workdir: Path, name: str) -> Path:
    """skopeo-copy ``source`` (pushed to the remote) out of ``cache`` into an OCI layout."""
    layout = workdir / name
    skopeo("copy", "--src-tls-verify=false", f"docker://{cache.host}/{source}", f"oci:{layout}:copy")
    return layout


def blobs_of(layout: Path) -> dict[str, bytes]:
    return {f"sha256:{path.name}": path.read_bytes() for path in (layout / "blobs" / "sha256").iterdir()}


@needs_tools
def test_skopeo_copies_an_image_through_the_cache_and_again_with_the_remote_stopped(
    pax_registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    remote = pax_registry_factory()
    built = build_image(tmp_path, layers=2, layer_size=200_000)
    skopeo("copy", "--dest-tls-verify=false", built, f"docker://{remote.host}/{REPOSITORY}:1")
    cache = pax_registry_factory(proxy=remote)

    original = blobs_of(copy_through(f"{REPOSITORY}:1", remote, tmp_path, "from-remote"))
    first = blobs_of(copy_through(f"{REPOSITORY}:1", cache, tmp_path, "first"))
    assert first == original
    remote.stop()
    second = blobs_of(copy_through(f"{REPOSITORY}:1", cache, tmp_path, "second"))
    assert second == original


@needs_tools
@pytest.mark.peers
@pytest.mark.needs("docker-registry")
@pytest.mark.parametrize("auth", [False, True], ids=["open", "htpasswd"])
def test_docker_registry_as_the_remote(
    pax_registry_factory: RegistryFactory, tmp_path: Path, auth: bool
) -> None:
    config: dict[str, t.Any] = {}
    credentials: list[str] = []
    proxy: dict[str, t.Any] = {}
    if auth:
        htpasswd = write_htpasswd(tmp_path / "htpasswd", {"puller": "s3cret"})
        config["auth"] = {"htpasswd": {"realm": "test", "path": str(htpasswd)}}
        credentials = ["--creds", "puller:s3cret"]
        proxy = {"proxy": {"username": "puller", "password": "s3cret"}}
    with DistributionServer(config) as remote:
        built = build_image(tmp_path, layers=2, layer_size=100_000)
        reference = f"docker://{remote.host}/{REPOSITORY}:1"
        push_credentials = ["--dest-creds", "puller:s3cret"] if auth else []
        skopeo("copy", "--dest-tls-verify=false", *push_credentials, built, reference)
        raw = skopeo("inspect", "--tls-verify=false", *credentials, "--raw", reference)
        cache = pax_registry_factory(proxy, proxy=remote.url)
        through = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{cache.host}/{REPOSITORY}:1")
        assert through.stdout == raw.stdout
        copied = blobs_of(copy_through(f"{REPOSITORY}:1", cache, tmp_path, "copy"))
        for digest, data in copied.items():
            assert f"sha256:{hashlib.sha256(data).hexdigest()}" == digest
        layers = [layer["digest"] for layer in json.loads(raw.stdout)["layers"]]
        assert set(layers) <= set(copied)
    again = blobs_of(copy_through(f"{REPOSITORY}:1", cache, tmp_path, "again"))
    assert again == copied


@pytest.mark.peers
@pytest.mark.needs("docker-registry")
def test_docker_registry_takes_over_the_cache_and_its_schedule(
    pax_registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    remote = pax_registry_factory()
    image = remote.push_image(REPOSITORY, "1.0")
    root = tmp_path / "cache"
    storage = {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}}
    cache = pax_registry_factory({"storage": storage}, proxy=remote)
    assert get(cache, f"/v2/{REPOSITORY}/manifests/1.0", headers=ACCEPT).status_code == 200
    assert get(cache, f"/v2/{REPOSITORY}/blobs/{image.layers[0]}").status_code == 200
    cache.stop()
    written = json.loads((root / STATE_PATH.lstrip("/")).read_text())

    with DistributionServer({"storage": storage, "proxy": {"remoteurl": remote.url}}) as distribution:
        remote.stop()
        with session() as http:
            served = http.get(f"{distribution.url}/v2/{REPOSITORY}/blobs/{image.layers[0]}")
            assert served.status_code == 200
            assert f"sha256:{hashlib.sha256(served.content).hexdigest()}" == image.layers[0]
            manifest = http.get(
                f"{distribution.url}/v2/{REPOSITORY}/manifests/{image.digest}", headers=ACCEPT
            )
            assert manifest.content == image.manifest
    # distribution started on it (2.8 panics on a state file it cannot parse) and kept every entry.
    kept = json.loads((root / STATE_PATH.lstrip("/")).read_text())
    assert sorted(kept) == sorted(written)
    assert {key: parse_time(entry["ExpiryData"]) for key, entry in kept.items()} == {
        key: parse_time(entry["ExpiryData"]) for key, entry in written.items()
    }
