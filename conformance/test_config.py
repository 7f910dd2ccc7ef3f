"""Checks derived from the configuration the registry runs with (``--pax-registry-config``).

The configuration says what the live server must do: send the configured ``http.headers`` on every
response, challenge every route when ``auth.htpasswd`` is set, refuse TLS versions below
``http.tls.minimumtls`` and handshakes without a client certificate when ``clientcas`` is set, and answer
``405 UNSUPPORTED`` to deletes unless ``storage.delete.enabled`` (any 405 under
``storage.maintenance.readonly``). What the configuration says is read by the suite's own reader
(:mod:`conformance.configreader`), never the emulator's. Without a configuration every check here is
skipped.
"""

from __future__ import annotations

import functools
import json
import socket
import ssl
import typing as t
import urllib.parse
import warnings

import pytest
import requests

from conformance.assertions import after
from conformance.assertions import not_applicable
from conformance.client import error_codes
from conformance.configreader import TLS
from conformance.configreader import Expectations
from conformance.configreader import Htpasswd
from conformance.configreader import expectations
from conformance.data import DUMMY_DIGEST
from conformance.data import OCI_MANIFEST
from conformance.data import ORAS_CONFIG
from conformance.data import ORAS_LAYER
from conformance.data import TITLE
from conformance.data import Blob
from conformance.data import Manifest
from conformance.data import pack_tarball

if t.TYPE_CHECKING:
    from conformance.client import RegistryClient
    from conformance.conftest import Cleanup
    from conformance.data import RunData

pytestmark = pytest.mark.config

UPLOAD_ID = "00000000-0000-4000-8000-000000000000"

#: Every route distribution authenticates, as (method, path); ``{repo}`` is filled in per run.
ROUTES: dict[str, tuple[str, str]] = {
    "base": ("GET", "/v2/"),
    "catalog": ("GET", "/v2/_catalog"),
    "tags-list": ("GET", "/v2/{repo}/tags/list"),
    "manifest-get": ("GET", "/v2/{repo}/manifests/latest"),
    "manifest-head": ("HEAD", "/v2/{repo}/manifests/latest"),
    "manifest-put": ("PUT", "/v2/{repo}/manifests/latest"),
    "manifest-delete": ("DELETE", f"/v2/{{repo}}/manifests/{DUMMY_DIGEST}"),
    "blob-get": ("GET", f"/v2/{{repo}}/blobs/{DUMMY_DIGEST}"),
    "blob-head": ("HEAD", f"/v2/{{repo}}/blobs/{DUMMY_DIGEST}"),
    "blob-delete": ("DELETE", f"/v2/{{repo}}/blobs/{DUMMY_DIGEST}"),
    "upload-start": ("POST", "/v2/{repo}/blobs/uploads/"),
    "upload-status": ("GET", f"/v2/{{repo}}/blobs/uploads/{UPLOAD_ID}"),
    "upload-patch": ("PATCH", f"/v2/{{repo}}/blobs/uploads/{UPLOAD_ID}"),
    "upload-put": ("PUT", f"/v2/{{repo}}/blobs/uploads/{UPLOAD_ID}?digest={DUMMY_DIGEST}"),
    "upload-cancel": ("DELETE", f"/v2/{{repo}}/blobs/uploads/{UPLOAD_ID}"),
}

#: Protocol versions by their configuration names, oldest first.
TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "tls1.0": ssl.TLSVersion.TLSv1,
    "tls1.1": ssl.TLSVersion.TLSv1_1,
    "tls1.2": ssl.TLSVersion.TLSv1_2,
    "tls1.3": ssl.TLSVersion.TLSv1_3,
}


class Configured:
    """What the configuration promises, and the requests that check it."""

    def __init__(
        self, registry: RegistryClient, expected: Expectations, repo: str, data: RunData, cleanup: Cleanup
    ) -> None:
        self.registry = registry
        self.expected = expected
        self.repo = repo
        self.data = data
        self.cleanup = cleanup

    def route(self, name: str) -> tuple[str, str]:
        method, path = ROUTES[name]
        return method, path.format(repo=self.repo)

    def send(self, name: str, credentials: tuple[str, str] | None) -> requests.Response:
        method, path = self.route(name)
        headers = {"Content-Type": OCI_MANIFEST} if name == "manifest-put" else {}
        data = b"{}" if name == "manifest-put" else None
        return self.registry.request(method, path, headers=headers, data=data, credentials=credentials)

    @functools.cached_property
    def content(self) -> list[requests.Response]:
        """An image to delete (it stays behind when deletes are disabled: nothing can remove it)."""
        pushed = []
        for blob in (self.data.configs[0], self.data.layer):
            self.cleanup.blob(self.repo, blob.digest)
            pushed.append(self.registry.push_blob(self.repo, blob))
        self.cleanup.manifest(self.repo, self.data.manifests[0].digest)
        pushed.append(self.registry.push_manifest(self.repo, "latest", self.data.manifests[0]))
        return pushed


@pytest.fixture(scope="module")
def configured(
    registry: RegistryClient,
    registry_config: dict[str, t.Any] | None,
    namespace: str,
    run_data: RunData,
    cleanup: Cleanup,
) -> Configured:
    if registry_config is None:
        pytest.skip("no --pax-registry-config: there is no configuration to derive checks from")
    return Configured(registry, expectations(registry_config), f"{namespace}/config", run_data, cleanup)


# -- http.headers -------------------------------------------------------------------------------------


@pytest.mark.spec("distribution configuration §http.headers")
@pytest.mark.parametrize("probe", ["success", "error", "unauthorized"])
def test_configured_headers_are_on_every_response(configured: Configured, probe: str) -> None:
    expected = configured.expected.headers
    if not expected:
        not_applicable("the configuration sets no http.headers")
    if probe == "unauthorized" and configured.expected.htpasswd is None:
        not_applicable("the configuration sets no auth.htpasswd")
    if probe == "success":
        response = configured.send("base", configured.registry.credentials)
    elif probe == "error":
        response = configured.send("blob-get", configured.registry.credentials)
    else:
        response = configured.send("base", None)
    assert response.status_code == {"success": 200, "error": 404, "unauthorized": 401}[probe]
    for name, values in expected.items():
        # Order aside: distribution adds the values of a header configured twice (in the file and, in
        # another case, by a variable) in Go's random map order.
        assert _header_values(response.headers.get(name)) == _header_values(", ".join(values)), name


def _header_values(header: str | None) -> list[str]:
    return [] if header is None else sorted(header.split(", "))


# -- auth.htpasswd ------------------------------------------------------------------------------------


def _require_htpasswd(configured: Configured) -> Htpasswd:
    htpasswd = configured.expected.htpasswd
    if htpasswd is None:
        not_applicable("the configuration sets no auth.htpasswd")
    return htpasswd


def _assert_challenge(response: requests.Response, realm: str) -> None:
    assert response.status_code == 401
    assert response.headers.get("WWW-Authenticate") == f'Basic realm="{realm}"'
    if response.request.method != "HEAD":
        assert error_codes(response)[:1] == ["UNAUTHORIZED"]


@pytest.mark.spec("distribution configuration §auth.htpasswd; Docker Registry HTTP API v2 §Authentication")
@pytest.mark.parametrize("route", list(ROUTES))
def test_htpasswd_challenges_requests_without_credentials(configured: Configured, route: str) -> None:
    _assert_challenge(configured.send(route, None), _require_htpasswd(configured).realm)


@pytest.mark.spec("distribution configuration §auth.htpasswd; Docker Registry HTTP API v2 §Authentication")
@pytest.mark.parametrize("route", list(ROUTES))
def test_htpasswd_challenges_requests_with_a_wrong_password(configured: Configured, route: str) -> None:
    realm = _require_htpasswd(configured).realm
    user, password = configured.registry.credentials or ("pax-conformance", "")
    _assert_challenge(configured.send(route, (user, password + "-wrong")), realm)


@pytest.mark.spec("distribution configuration §auth.htpasswd")
@pytest.mark.parametrize("route", list(ROUTES))
def test_htpasswd_admits_the_right_credentials(configured: Configured, route: str) -> None:
    _require_htpasswd(configured)
    credentials = configured.registry.credentials
    if credentials is None:
        not_applicable("no credentials given (--pax-registry-username/--pax-registry-password)")
    response = configured.send(route, credentials)
    assert response.status_code == 200 if route == "base" else response.status_code != 401


# -- http.tls -----------------------------------------------------------------------------------------


def _address(configured: Configured) -> tuple[str, int]:
    url = urllib.parse.urlsplit(configured.registry.base_url)
    assert url.scheme == "https", "http.tls is configured, but the registry URL is not https"
    return url.hostname or "127.0.0.1", url.port or 443


def _handshake(
    address: tuple[str, int], version: ssl.TLSVersion | None = None, *, exchange: bool = False
) -> str | None:
    """Connect without a client certificate; ``None`` when the server spoke, else why it did not."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Only the protocol is under test here, not the certificate.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if version is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = version
            context.maximum_version = version
        # OpenSSL's default security level refuses TLS 1.0/1.1 on our side before the server can.
        context.set_ciphers("ALL:@SECLEVEL=0")
    try:
        with socket.create_connection(address, timeout=5) as raw, context.wrap_socket(raw) as tls:
            if not exchange:
                return None
            # With TLS 1.3 a missing client certificate is reported after the handshake.
            tls.sendall(b"GET /v2/ HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n\r\n")
            answer = tls.recv(64)
            return None if answer.startswith(b"HTTP/") else f"connection closed ({answer!r})"
    except (ssl.SSLError, ConnectionError, TimeoutError) as error:
        return str(error) or type(error).__name__


def _refused_locally(reason: str) -> bool:
    return "NO_PROTOCOLS_AVAILABLE" in reason or "UNSUPPORTED_PROTOCOL" in reason


def _require_tls(configured: Configured) -> TLS:
    tls = configured.expected.tls
    if tls is None:
        not_applicable("the configuration sets no http.tls.certificate")
    return tls


@pytest.mark.spec("distribution configuration §http.tls.minimumtls")
def test_tls_versions_below_the_minimum_are_refused(configured: Configured) -> None:
    minimum = _require_tls(configured).minimum
    names = list(TLS_VERSIONS)
    older = [TLS_VERSIONS[name] for name in names[: names.index(minimum)]] if minimum in names else []
    if not older:
        not_applicable(f"nothing is older than {minimum}")
    address = _address(configured)
    for version in older:
        reason = _handshake(address, version)
        if reason is not None and _refused_locally(reason):
            not_applicable(f"this client cannot offer {version.name} ({reason})")
        assert reason is not None, f"{version.name} was accepted although http.tls.minimumtls is {minimum}"


@pytest.mark.spec("distribution configuration §http.tls.minimumtls")
def test_tls_minimum_version_is_accepted(configured: Configured) -> None:
    tls = _require_tls(configured)
    if tls.clientcas:
        not_applicable("the server requires a client certificate; the other checks cover the handshake")
    assert _handshake(_address(configured), TLS_VERSIONS[tls.minimum]) is None


@pytest.mark.spec("distribution configuration §http.tls.clientcas")
def test_handshake_without_client_certificate_is_refused(configured: Configured) -> None:
    if not _require_tls(configured).clientcas:
        not_applicable("the configuration sets no http.tls.clientcas")
    reason = _handshake(_address(configured), exchange=True)
    assert reason is not None, "the registry answered a client without a certificate"


# -- storage.delete -----------------------------------------------------------------------------------


@pytest.mark.spec("distribution configuration §storage.delete; distribution-spec 1.1 §Content Management")
@pytest.mark.parametrize("kind", ["manifest", "blob"])
def test_deletes_follow_storage_delete_enabled(configured: Configured, kind: str) -> None:
    digest = configured.data.manifests[0].digest if kind == "manifest" else configured.data.configs[0].digest
    path = f"/v2/{configured.repo}/{kind}s/{digest}"
    if configured.expected.read_only:
        # Read-only, distribution registers no write method at all (its 405 is plain text), and nothing
        # can be pushed to delete.
        assert configured.registry.delete(path).status_code == 405
        return
    for response in configured.content:
        assert response.status_code == 201
    after(configured.content)
    response = configured.registry.delete(path)
    if configured.expected.deletes_enabled:
        assert response.status_code == 202
    else:
        assert response.status_code == 405
        assert error_codes(response)[:1] == ["UNSUPPORTED"]


# -- validation.packs (the emulator's extension) ------------------------------------------------------


@pytest.mark.spec("Palette pack registry docs (deploy-pack): the schema validation happens on push")
def test_a_bad_pack_is_refused_with_manifest_invalid_and_leaves_no_tag(configured: Configured) -> None:
    # The documents say only that the legacy pack registry validates on push; checking OCI pushes is the
    # emulator's extension, promised by validation.packs.enabled.
    if not configured.expected.packs_validated:
        not_applicable("the configuration does not set validation.packs.enabled")
    name, version = f"pax-bad-{configured.data.run_id}", "1.0.0"
    repo = f"{configured.repo.rsplit('/', 1)[0]}/spectro-packs/archive/{name}"
    config = Blob(b"{}", ORAS_CONFIG)
    layer = Blob(pack_tarball(name, version, valid=False), ORAS_LAYER)
    for blob in (config, layer):
        configured.cleanup.blob(repo, blob.digest)
        assert configured.registry.push_blob(repo, blob).status_code == 201
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor(annotations={TITLE: f"{name}-{version}.tar.gz"})],
    }
    manifest = Manifest(json.dumps(document).encode(), OCI_MANIFEST, "bad-pack")
    configured.cleanup.manifest(repo, manifest.digest)

    refused = configured.registry.push_manifest(repo, version, manifest)

    assert refused.status_code == 400, refused.text
    assert error_codes(refused)[:1] == ["MANIFEST_INVALID"], error_codes(refused)
    absent = configured.registry.get(f"/v2/{repo}/manifests/{version}", headers={"Accept": OCI_MANIFEST})
    assert absent.status_code == 404
