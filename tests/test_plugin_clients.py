"""Real clients against registries from the plugin: skopeo and oras-py push to ``pax_registry``, to an
S3-backed registry and to a TLS + htpasswd registry from ``pax_registry_factory``, and tests assert on the
request log. Injected faults show that the clients' own retry logic copes."""

from __future__ import annotations

import json
import time
import typing as t
from pathlib import Path

import pytest

from pax_registry_fixtures import RegistryFactory
from pax_registry_fixtures import RegistryServer
from tests.clients import build_image
from tests.clients import needs_tools
from tests.clients import oras_client
from tests.clients import skopeo

ORAS_CONFIG = "application/vnd.unknown.config.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def skopeo_push(registry: RegistryServer, source: str, destination: str, *options: str) -> None:
    """``skopeo copy`` to ``registry``, with its CA, client certificate and credentials when it has them."""
    args = list(options)
    if registry.cert_dir is not None:
        args += ["--dest-cert-dir", str(registry.cert_dir)]
    else:
        args.append("--dest-tls-verify=false")
    if registry.auth is not None:
        args += ["--dest-creds", ":".join(registry.auth)]
    skopeo("copy", *args, source, f"docker://{registry.host}/{destination}")


def oras_push(registry: RegistryServer, folder: Path, target: str, **options: t.Any) -> None:
    """Push every file of ``folder`` with oras-py (which names layers by the relative paths it is given)."""
    if registry.tls is not None:
        options.update(insecure=False, tls_verify=str(registry.ca_path))
    if registry.auth is not None:
        options["auth_backend"] = "basic"
    client = oras_client(registry.host, **options)
    if registry.auth is not None:
        client.auth.set_basic_auth(*registry.auth)
    files = sorted(path.name for path in folder.iterdir())
    client.push(files=files, target=f"{registry.host}/{target}")


def artifact_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "values.yaml").write_text("replicas: 3\n")
    (folder / "pack.json").write_text(json.dumps({"name": "nginx", "version": "1.21.0"}))
    return folder


def pushed_layers(registry: RegistryServer) -> list[str]:
    """Digests of the blobs whose uploads the registry completed, in order."""
    return [
        entry.query.split("digest=", 1)[1].replace("%3A", ":")
        for entry in registry.requests_matching("PUT", "/v2/*/blobs/uploads/*")
        if entry.status == 201
    ]


# -- pax_registry ------------------------------------------------------------------------------------------


@pytest.mark.peers
@needs_tools
def test_skopeo_pushes_to_pax_registry(pax_registry: RegistryServer, tmp_path: Path) -> None:
    source = build_image(tmp_path, layers=2)

    skopeo_push(pax_registry, source, "apps/web:1")

    pax_registry.assert_request_made("GET", "/v2/")
    # Two layers and the config: three uploads, each finished by one PUT.
    assert len(pushed_layers(pax_registry)) == 3
    [manifest_put] = pax_registry.assert_request_made("PUT", "/v2/apps/web/manifests/1", status=201)
    assert manifest_put.headers["User-Agent"].startswith("skopeo/")
    assert manifest_put.headers["Content-Type"] == OCI_MANIFEST
    stored = pax_registry.registry.get_manifest("apps/web", "1")
    assert sorted(d["digest"] for d in json.loads(stored.content)["layers"]) == sorted(
        d for d in pushed_layers(pax_registry) if d != json.loads(stored.content)["config"]["digest"]
    )


@pytest.mark.peers
@needs_tools
def test_skopeo_pulls_what_push_image_seeded(pax_registry: RegistryServer, tmp_path: Path) -> None:
    image = pax_registry.push_image("seeded/app", "2", layers=2, size=2048)

    # dir: keeps the manifest and the uncompressed layers as they are (oci: would compress the layers).
    skopeo("copy", "--src-tls-verify=false", f"docker://{image.reference}", f"dir:{tmp_path / 'out'}")

    assert (tmp_path / "out" / "manifest.json").read_bytes() == image.manifest
    for digest in image.layers:
        assert (tmp_path / "out" / digest.split(":")[1]).stat().st_size > 2048
    pax_registry.assert_request_made("GET", f"/v2/seeded/app/blobs/{image.layers[0]}", status=200)
    assert pax_registry.requests_matching("PUT") == []


def test_oras_pushes_to_pax_registry(
    pax_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = artifact_folder(tmp_path)
    monkeypatch.chdir(folder)

    oras_push(pax_registry, folder, "packs/nginx:1.21.0")

    pax_registry.assert_request_made("PUT", "/v2/packs/nginx/manifests/1.21.0", status=201)
    assert len(pushed_layers(pax_registry)) == 3  # two files and the config
    stored = json.loads(pax_registry.registry.get_manifest("packs/nginx", "1.21.0").content)
    assert stored["config"]["mediaType"] == ORAS_CONFIG
    titles = sorted(layer["annotations"]["org.opencontainers.image.title"] for layer in stored["layers"])
    assert titles == ["pack.json", "values.yaml"]


# -- an S3-backed registry ---------------------------------------------------------------------------------


@pytest.mark.peers
@needs_tools
def test_skopeo_and_oras_push_to_an_s3_backed_registry(
    pax_registry_factory: RegistryFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = pax_registry_factory(storage="s3")
    assert registry.s3 is not None
    source = build_image(tmp_path, layers=2)
    folder = artifact_folder(tmp_path)
    monkeypatch.chdir(folder)

    skopeo_push(registry, source, "apps/web:1")
    oras_push(registry, folder, "packs/nginx:1")

    registry.assert_request_made("PUT", "/v2/apps/web/manifests/1", status=201)
    registry.assert_request_made("PUT", "/v2/packs/nginx/manifests/1", status=201)
    keys = registry.s3.list_keys()
    for digest in pushed_layers(registry):
        algorithm, hex_ = digest.split(":")
        assert f"registry/docker/registry/v2/blobs/{algorithm}/{hex_[:2]}/{hex_}/data" in keys
    assert "registry/docker/registry/v2/repositories/apps/web/_manifests/tags/1/current/link" in keys
    # The data really is in S3: skopeo reads the image back through the registry.
    skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/apps/web:1")


# -- a TLS + htpasswd registry -----------------------------------------------------------------------------


@pytest.mark.peers
@needs_tools
def test_skopeo_pushes_to_a_tls_and_htpasswd_registry(
    pax_registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    registry = pax_registry_factory(tls=True, auth=True)
    assert registry.url.startswith("https://") and registry.auth is not None
    source = build_image(tmp_path)

    skopeo_push(registry, source, "secure/app:1")

    unauthenticated = [e for e in registry.requests if "Authorization" not in e.headers]
    authenticated = [e for e in registry.requests if "Authorization" in e.headers]
    assert {e.status for e in unauthenticated} == {401}
    assert all(e.headers["Authorization"].startswith("Basic ") for e in authenticated)
    registry.assert_request_made("PUT", "/v2/secure/app/manifests/1", status=201)
    assert all(e.status != 401 for e in authenticated)


@pytest.mark.peers
@needs_tools
def test_skopeo_is_refused_without_credentials_or_the_ca(
    pax_registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    registry = pax_registry_factory(tls=True, auth=True)
    source = build_image(tmp_path)
    target = f"docker://{registry.host}/secure/app:1"
    assert registry.cert_dir is not None and registry.auth is not None

    no_creds = skopeo("copy", "--dest-cert-dir", str(registry.cert_dir), source, target, check=False)
    no_ca = skopeo("copy", "--dest-creds", ":".join(registry.auth), source, target, check=False)

    assert no_creds.returncode != 0 and "authentication required" in no_creds.stderr
    assert no_ca.returncode != 0 and "certificate" in no_ca.stderr
    assert registry.requests_matching("PUT") == []


@pytest.mark.peers
@needs_tools
def test_skopeo_pushes_with_a_client_certificate(
    pax_registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    registry = pax_registry_factory(client_auth=True, auth=True)
    assert registry.tls is not None
    source = build_image(tmp_path)

    without = skopeo(
        "copy",
        "--dest-cert-dir",
        str(registry.tls.cert_dir()),
        "--dest-creds",
        ":".join(registry.auth or ()),
        source,
        f"docker://{registry.host}/mtls/app:1",
        check=False,
    )
    skopeo_push(registry, source, "mtls/app:1")

    assert without.returncode != 0
    registry.assert_request_made("PUT", "/v2/mtls/app/manifests/1", status=201)


def test_oras_pushes_to_a_tls_and_htpasswd_registry(
    pax_registry_factory: RegistryFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = pax_registry_factory(tls=True, auth=True)
    folder = artifact_folder(tmp_path)
    monkeypatch.chdir(folder)

    oras_push(registry, folder, "packs/secure:1")

    registry.assert_request_made("PUT", "/v2/packs/secure/manifests/1", status=201)
    authenticated = [e for e in registry.requests if "Authorization" in e.headers]
    assert authenticated and all(e.status != 401 for e in authenticated)
    assert registry.registry.manifest_exists("packs/secure", "1")


# -- the clients' own retries, against injected faults ------------------------------------------------


@pytest.mark.peers
@needs_tools
def test_skopeo_waits_out_an_injected_429(pax_registry: RegistryServer, tmp_path: Path) -> None:
    source = build_image(tmp_path)
    fault = pax_registry.faults.too_many_requests("HEAD", "/v2/*/blobs/*", retry_after=1)

    started = time.monotonic()
    skopeo_push(pax_registry, source, "limited/app:1")
    elapsed = time.monotonic() - started

    assert fault.hits == 1
    heads = pax_registry.requests_matching("HEAD", "/v2/limited/app/blobs/*")
    assert heads[0].status == 429 and heads[0].fault is fault
    # skopeo asked again for the same blob, after the Retry-After it was given.
    assert heads[1].path == heads[0].path and heads[1].status == 404
    assert heads[1].started - heads[0].started >= 1.0 and elapsed >= 1.0
    pax_registry.assert_request_made("PUT", "/v2/limited/app/manifests/1", status=201)


def test_oras_retries_after_an_injected_server_error(
    pax_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # oras-py's retry decorator retries a 500 answer (after 3 s); other statuses fail at once.
    fault = pax_registry.faults.fail("PUT", "/v2/*/manifests/*", status=500, code="UNKNOWN")
    folder = artifact_folder(tmp_path)
    monkeypatch.chdir(folder)

    oras_push(pax_registry, folder, "packs/flaky:1")

    puts = pax_registry.requests_matching("PUT", "/v2/packs/flaky/manifests/1")
    assert [(e.status, e.fault) for e in puts] == [(500, fault), (201, None)]
    assert pax_registry.registry.manifest_exists("packs/flaky", "1")
