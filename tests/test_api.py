"""The v2 API over Werkzeug's test client: statuses, headers and error bodies the spec names,
and that bad input stores nothing. Each test runs on inmemory and on filesystem storage."""

from __future__ import annotations

import hashlib
import json
import logging
import typing as t
from pathlib import Path

import pytest
from werkzeug.test import Client
from werkzeug.test import TestResponse

import emulator
from emulator.app import RegistryApp
from emulator.drivers.base import InvalidPath

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["inmemory", "filesystem"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> RegistryApp:
    storage: dict[str, t.Any] = (
        {"inmemory": {}} if request.param == "inmemory" else {"filesystem": {"rootdirectory": str(tmp_path)}}
    )
    config = emulator.load_config({"storage": {**storage, "delete": {"enabled": True}}})
    return emulator.make_app(config)


@pytest.fixture
def client(app: RegistryApp) -> Client:
    return Client(app)


def stored_paths(app: RegistryApp) -> list[str]:
    """Every file in storage: what 'nothing was stored' is checked against."""
    return sorted(info.path for info in app.registry.driver.walk("/") if not info.is_dir)


def document(response: TestResponse) -> t.Any:
    return json.loads(response.get_data())


def error_code(response: TestResponse) -> str:
    return str(document(response)["errors"][0]["code"])


def push_blob(client: Client, name: str, data: bytes) -> str:
    digest = sha256(data)
    response = client.post(f"/v2/{name}/blobs/uploads/?digest={digest}", data=data)
    assert response.status_code == 201, response.get_data()
    return digest


def image_manifest(config: str, layers: list[str], **extra: t.Any) -> bytes:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": 1} for d in layers
        ],
        **extra,
    }
    return json.dumps(document).encode()


def push_image(client: Client, name: str, tag: str, **extra: t.Any) -> tuple[str, bytes]:
    config = push_blob(client, name, b"{}")
    layer = push_blob(client, name, f"layer of {name}:{tag}".encode())
    manifest = image_manifest(config, [layer], **extra)
    response = client.put(f"/v2/{name}/manifests/{tag}", data=manifest, content_type=OCI_MANIFEST)
    assert response.status_code == 201, response.get_data()
    return sha256(manifest), manifest


# -- base, health, routing ---------------------------------------------------------------------------


def test_base_answers_200_with_api_version_and_configured_headers(client: Client) -> None:
    response = client.get("/v2/")
    assert response.status_code == 200
    assert response.get_data() == b"{}"
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_health_answers_up(client: Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json == {"status": "UP"}


def test_unknown_path_is_plain_404(client: Client) -> None:
    response = client.get("/v2/foo/unknown/thing/x/y")
    assert response.status_code == 404
    assert response.get_data() == b"404 page not found\n"


def test_errors_carry_configured_headers(client: Client) -> None:
    response = client.get(f"/v2/foo/blobs/{sha256(b'missing')}")
    assert response.status_code == 404
    assert error_code(response) == "BLOB_UNKNOWN"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_wrong_method_is_405_unsupported_with_allow(client: Client, app: RegistryApp) -> None:
    response = client.post("/v2/foo/tags/list")
    assert response.status_code == 405
    assert error_code(response) == "UNSUPPORTED"
    assert "GET" in response.headers["Allow"]
    assert stored_paths(app) == []


@pytest.mark.parametrize("name", ["A/B", "x" * 256, "foo/../bar", "-leading", "a//b", "UPPER"])
def test_invalid_names_are_400_name_invalid_and_store_nothing(
    client: Client, app: RegistryApp, name: str
) -> None:
    response = client.post(f"/v2/{name}/blobs/uploads/?digest={sha256(b'x')}", data=b"x")
    assert response.status_code == 400
    assert error_code(response) == "NAME_INVALID"
    assert stored_paths(app) == []


# -- blob uploads ------------------------------------------------------------------------------------


def test_monolithic_post_with_digest_creates_the_blob(client: Client) -> None:
    digest = push_blob(client, "foo", b"hello")
    response = client.get(f"/v2/foo/blobs/{digest}")
    assert response.status_code == 200
    assert response.get_data() == b"hello"
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Content-Type"] == "application/octet-stream"


def test_post_then_put_creates_the_blob(client: Client) -> None:
    started = client.post("/v2/foo/blobs/uploads/")
    assert started.status_code == 202
    assert started.headers["Range"] == "0-0"
    assert started.headers["Docker-Upload-UUID"]
    digest = sha256(b"payload")
    done = client.put(f"{started.headers['Location']}&digest={digest}", data=b"payload")
    assert done.status_code == 201
    assert done.headers["Location"].endswith(f"/v2/foo/blobs/{digest}")
    assert done.headers["Docker-Content-Digest"] == digest


def test_chunked_upload_reports_ranges_and_refuses_out_of_order_and_stale_chunks(client: Client) -> None:
    data = bytes(range(42))
    first = client.post("/v2/foo/blobs/uploads/", headers={"Content-Length": "0"})
    location = first.headers["Location"]
    out_of_order = client.patch(location, data=data[22:], headers={"Content-Range": "22-41"})
    assert out_of_order.status_code == 416
    assert error_code(out_of_order) == "RANGE_INVALID"
    chunk = client.patch(location, data=data[:22], headers={"Content-Range": "0-21"})
    assert chunk.status_code == 202
    assert chunk.headers["Range"] == "0-21"
    stale = client.patch(location, data=data[:22], headers={"Content-Range": "0-21"})
    assert stale.status_code == 416
    status = client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-21"
    second = client.patch(status.headers["Location"], data=data[22:], headers={"Content-Range": "22-41"})
    assert second.status_code == 202
    assert second.headers["Range"] == "0-41"
    done = client.put(f"{second.headers['Location']}&digest={sha256(data)}", headers={"Content-Length": "0"})
    assert done.status_code == 201
    assert client.get(f"/v2/foo/blobs/{sha256(data)}").get_data() == data


def test_streamed_patch_without_content_range(client: Client) -> None:
    location = client.post("/v2/foo/blobs/uploads/").headers["Location"]
    patched = client.patch(location, data=b"streamed body")
    assert patched.status_code == 202
    assert patched.headers["Range"] == "0-12"
    done = client.put(f"{patched.headers['Location']}&digest={sha256(b'streamed body')}")
    assert done.status_code == 201


def test_digest_mismatch_is_400_and_leaves_nothing(client: Client, app: RegistryApp) -> None:
    location = client.post("/v2/foo/blobs/uploads/").headers["Location"]
    response = client.put(f"{location}&digest={sha256(b'other')}", data=b"content")
    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"
    assert client.head(f"/v2/foo/blobs/{sha256(b'content')}").status_code == 404
    assert client.head(f"/v2/foo/blobs/{sha256(b'other')}").status_code == 404
    assert [p for p in stored_paths(app) if "/blobs/" in p or "_uploads" in p] == []


def test_monolithic_post_with_wrong_digest_stores_nothing(client: Client, app: RegistryApp) -> None:
    response = client.post(f"/v2/foo/blobs/uploads/?digest={sha256(b'other')}", data=b"content")
    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"
    assert [p for p in stored_paths(app) if "/blobs/" in p or "_uploads" in p or "_layers" in p] == []


@pytest.mark.parametrize(
    "digest", ["", "sha256:short", "sha257:" + "a" * 64, "nodigest", "sha256:" + "G" * 64]
)
def test_malformed_digest_on_put_is_400_digest_invalid(client: Client, digest: str) -> None:
    location = client.post("/v2/foo/blobs/uploads/").headers["Location"]
    response = client.put(f"{location}&digest={digest}", data=b"x")
    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"


def test_put_without_digest_is_400_digest_invalid(client: Client) -> None:
    location = client.post("/v2/foo/blobs/uploads/").headers["Location"]
    response = client.put(location, data=b"x")
    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"


@pytest.mark.parametrize("content_range", ["abc", "5-2", "0-"])
def test_bad_content_range_is_416(client: Client, content_range: str) -> None:
    location = client.post("/v2/foo/blobs/uploads/").headers["Location"]
    response = client.patch(location, data=b"abc", headers={"Content-Range": content_range})
    assert response.status_code == 416
    assert error_code(response) == "RANGE_INVALID"


def test_content_length_not_matching_range_is_400_size_invalid(client: Client, app: RegistryApp) -> None:
    location = client.post("/v2/foo/blobs/uploads/").headers["Location"]
    response = client.patch(location, data=b"abcd", headers={"Content-Range": "0-9"})
    assert response.status_code == 400
    assert error_code(response) == "SIZE_INVALID"
    status = client.get(location)
    assert status.headers["Range"] == "0-0"


def test_tampered_state_is_blob_upload_invalid(client: Client) -> None:
    location = client.post("/v2/foo/blobs/uploads/").headers["Location"]
    base, _, _ = location.partition("?")
    response = client.patch(f"{base}?_state=tampered", data=b"x")
    assert response.status_code == 404
    assert error_code(response) == "BLOB_UPLOAD_INVALID"


def test_cancelled_upload_is_unknown_afterwards(client: Client, app: RegistryApp) -> None:
    location = client.post("/v2/foo/blobs/uploads/").headers["Location"]
    client.patch(location, data=b"partial")
    assert client.delete(location).status_code == 204
    response = client.get(location)
    assert response.status_code == 404
    assert error_code(response) == "BLOB_UPLOAD_UNKNOWN"
    assert [p for p in stored_paths(app) if "_uploads" in p] == []


def test_unknown_upload_is_404_blob_upload_unknown(client: Client) -> None:
    response = client.patch("/v2/foo/blobs/uploads/no-such-upload", data=b"x")
    assert response.status_code == 404
    assert error_code(response) == "BLOB_UPLOAD_UNKNOWN"


def all_stored(app: RegistryApp) -> list[str]:
    """Every file and directory in storage: a cancelled repository leaves directories behind."""
    return sorted(info.path for info in app.registry.driver.walk("/"))


@pytest.mark.parametrize(
    "upload_id",
    [
        "%2e%2e",
        "..",
        ".",
        "%2E%2e",
        "a%0d%0ab",
        "%ff",
        "a" * 300,
        "%00",
        "%5c",
        "A" * 8 + "-0000-4000-8000-" + "0" * 12,
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD", "PATCH", "PUT", "DELETE"])
def test_upload_ids_outside_the_grammar_are_unknown_and_reach_no_storage(
    client: Client, app: RegistryApp, upload_id: str, method: str
) -> None:
    """``DELETE .../uploads/%2e%2e`` once deleted the whole repository, ``.../uploads/.`` every upload."""
    push_blob(client, "victim", b"layer")
    opened = client.post("/v2/victim/blobs/uploads/").headers["Location"]
    client.patch(opened, data=b"partial")
    before = all_stored(app)
    response = client.open(f"/v2/victim/blobs/uploads/{upload_id}?digest={sha256(b'x')}", method=method)
    assert response.status_code == 404
    if method != "HEAD":
        assert error_code(response) == "BLOB_UPLOAD_UNKNOWN"
    assert all_stored(app) == before


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
@pytest.mark.parametrize("reference", [".", "..", "a\\b", "-dash", "x" * 129, "%00"])
def test_references_outside_the_grammar_are_manifest_unknown(
    client: Client, app: RegistryApp, reference: str, method: str
) -> None:
    before = all_stored(app)
    response = client.open(f"/v2/foo/manifests/{reference}", method=method)
    assert response.status_code == 404
    if method != "HEAD":
        assert error_code(response) == "MANIFEST_UNKNOWN"
    assert all_stored(app) == before


@pytest.mark.parametrize("route", ["blobs", "referrers"])
@pytest.mark.parametrize("digest", ["..", "sha256:..", "sha256%3a%2e%2e", "sha256:" + "a" * 300, "%ff"])
def test_digests_outside_the_grammar_are_digest_invalid(client: Client, route: str, digest: str) -> None:
    response = client.get(f"/v2/foo/{route}/{digest}")
    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"


def test_mount_from_another_repository(client: Client) -> None:
    digest = push_blob(client, "source", b"shared")
    response = client.post(f"/v2/target/blobs/uploads/?mount={digest}&from=source")
    assert response.status_code == 201
    assert response.headers["Location"].endswith(f"/v2/target/blobs/{digest}")
    assert client.get(f"/v2/target/blobs/{digest}").get_data() == b"shared"


def test_mount_without_from_mounts_automatically_and_unknown_blob_opens_a_session(client: Client) -> None:
    digest = push_blob(client, "source", b"shared")
    assert client.post(f"/v2/target/blobs/uploads/?mount={digest}").status_code == 201
    unknown = client.post(f"/v2/target/blobs/uploads/?mount={sha256(b'nope')}&from=source")
    assert unknown.status_code == 202
    assert "/v2/target/blobs/uploads/" in unknown.headers["Location"]


def test_blob_in_one_repository_is_unknown_in_another(client: Client) -> None:
    digest = push_blob(client, "one", b"private")
    response = client.get(f"/v2/two/blobs/{digest}")
    assert response.status_code == 404
    assert error_code(response) == "BLOB_UNKNOWN"


# -- blob reads ----------------------------------------------------------------------------------------


def test_blob_head_has_length_digest_and_no_body(client: Client) -> None:
    digest = push_blob(client, "foo", b"0123456789")
    response = client.head(f"/v2/foo/blobs/{digest}")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "10"
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.get_data() == b""


@pytest.mark.parametrize(
    ("header", "status", "body", "content_range"),
    [
        ("bytes=2-4", 206, b"234", "bytes 2-4/10"),
        ("bytes=7-", 206, b"789", "bytes 7-9/10"),
        ("bytes=-3", 206, b"789", "bytes 7-9/10"),
        ("bytes=5-100", 206, b"56789", "bytes 5-9/10"),
        ("bytes=20-30", 416, None, "bytes */10"),
    ],
)
def test_blob_range_reads(
    client: Client, header: str, status: int, body: bytes | None, content_range: str
) -> None:
    digest = push_blob(client, "foo", b"0123456789")
    response = client.get(f"/v2/foo/blobs/{digest}", headers={"Range": header})
    assert response.status_code == status
    assert response.headers["Content-Range"] == content_range
    if body is not None:
        assert response.get_data() == body


def test_blob_etag_and_304(client: Client) -> None:
    digest = push_blob(client, "foo", b"cache me")
    response = client.get(f"/v2/foo/blobs/{digest}")
    assert response.headers["ETag"] == f'"{digest}"'
    again = client.get(f"/v2/foo/blobs/{digest}", headers={"If-None-Match": f'"{digest}"'})
    assert again.status_code == 304


def test_blob_get_with_bad_digest_is_400(client: Client) -> None:
    response = client.get("/v2/foo/blobs/sha256:nothex")
    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"


def test_blob_delete(client: Client) -> None:
    digest = push_blob(client, "foo", b"doomed")
    assert client.delete(f"/v2/foo/blobs/{digest}").status_code == 202
    response = client.get(f"/v2/foo/blobs/{digest}")
    assert response.status_code == 404
    assert client.delete(f"/v2/foo/blobs/{digest}").status_code == 404


# -- manifests -------------------------------------------------------------------------------------------


def test_manifest_put_get_head_by_tag_and_digest(client: Client) -> None:
    digest, manifest = push_image(client, "foo", "v1")
    for reference in ("v1", digest):
        got = client.get(f"/v2/foo/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
        assert got.status_code == 200
        assert got.get_data() == manifest
        assert got.headers["Content-Type"] == OCI_MANIFEST
        assert got.headers["Docker-Content-Digest"] == digest
        head = client.head(f"/v2/foo/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(manifest))
        assert head.get_data() == b""


def test_manifest_etag_304(client: Client) -> None:
    digest, _ = push_image(client, "foo", "v1")
    response = client.get(
        "/v2/foo/manifests/v1", headers={"Accept": OCI_MANIFEST, "If-None-Match": f'"{digest}"'}
    )
    assert response.status_code == 304


def test_oci_manifest_not_accepted_is_404_as_distribution_answers(client: Client) -> None:
    push_image(client, "foo", "v1")
    response = client.get("/v2/foo/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert response.status_code == 404
    assert error_code(response) == "MANIFEST_UNKNOWN"


def push_docker_list(client: Client, name: str, os_name: str = "linux") -> tuple[bytes, bytes]:
    """A Docker schema 2 image and, tagged ``list``, a manifest list naming it for ``os_name``/amd64."""
    config = push_blob(client, name, b"{}")
    image = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": config,
                "size": 2,
            },
            "layers": [],
        }
    ).encode()
    assert (
        client.put(
            f"/v2/{name}/manifests/{sha256(image)}", data=image, content_type=DOCKER_MANIFEST
        ).status_code
        == 201
    )
    entry = {
        "mediaType": DOCKER_MANIFEST,
        "digest": sha256(image),
        "size": len(image),
        "platform": {"architecture": "amd64", "os": os_name},
    }
    manifest_list = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [entry]}).encode()
    assert (
        client.put(f"/v2/{name}/manifests/list", data=manifest_list, content_type=DOCKER_LIST).status_code
        == 201
    )
    return manifest_list, image


@pytest.mark.parametrize(
    ("accept", "served"),
    [
        (DOCKER_LIST, "list"),
        (DOCKER_MANIFEST, "image"),
        (f"{DOCKER_MANIFEST}, */*", "image"),
        # distribution answers these with the image rewritten as schema 1; the stored list is served here.
        (None, "list"),
        ("*/*", "list"),
        (f"{OCI_INDEX}, */*", "list"),
        (OCI_INDEX, "list"),
        (f"{OCI_INDEX}, {OCI_MANIFEST}", "list"),
    ],
)
def test_docker_list_by_tag_is_negotiated_as_distribution_answers(
    client: Client, accept: str | None, served: str
) -> None:
    manifest_list, image = push_docker_list(client, "foo")
    headers = {} if accept is None else {"Accept": accept}
    for method in ("GET", "HEAD"):
        response = client.open("/v2/foo/manifests/list", method=method, headers=headers)
        assert response.status_code == 200
        expected = manifest_list if served == "list" else image
        assert response.headers["Docker-Content-Digest"] == sha256(expected)
        assert response.headers["Content-Type"] == (DOCKER_LIST if served == "list" else DOCKER_MANIFEST)
        assert response.get_data() == (expected if method == "GET" else b"")


def test_docker_list_without_linux_amd64_is_unknown_to_clients_that_do_not_accept_lists(
    client: Client,
) -> None:
    manifest_list, _ = push_docker_list(client, "foo", os_name="windows")
    for accept in (DOCKER_MANIFEST, "*/*"):
        response = client.get("/v2/foo/manifests/list", headers={"Accept": accept})
        assert response.status_code == 404
        assert error_code(response) == "MANIFEST_UNKNOWN"
    by_digest = client.get(f"/v2/foo/manifests/{sha256(manifest_list)}", headers={"Accept": DOCKER_MANIFEST})
    assert by_digest.get_data() == manifest_list


def test_manifest_without_media_type_field_is_stored_verbatim(client: Client) -> None:
    config = push_blob(client, "foo", b"{}")
    manifest = json.dumps(
        {"schemaVersion": 2, "config": {"mediaType": "x/y", "digest": config, "size": 2}, "layers": []}
    ).encode()
    response = client.put("/v2/foo/manifests/empty", data=manifest, content_type=OCI_MANIFEST)
    assert response.status_code == 201
    assert client.get("/v2/foo/manifests/empty", headers={"Accept": OCI_MANIFEST}).get_data() == manifest


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", OCI_MANIFEST),
        (b"[]", OCI_MANIFEST),
        (b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}', OCI_MANIFEST),
        (b'{"schemaVersion": 1, "name": "foo", "tag": "x", "fsLayers": []}', "application/json"),
        (
            b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}',
            OCI_MANIFEST,
        ),
        (b'{"schemaVersion": 2, "config": {"digest": "sha256:bad"}, "layers": []}', OCI_MANIFEST),
    ],
)
def test_malformed_manifest_is_400_manifest_invalid_and_stores_nothing(
    client: Client, app: RegistryApp, body: bytes, content_type: str
) -> None:
    response = client.put("/v2/foo/manifests/bad", data=body, content_type=content_type)
    assert response.status_code == 400
    assert error_code(response) == "MANIFEST_INVALID"
    assert stored_paths(app) == []


def test_manifest_with_unknown_blobs_is_manifest_blob_unknown(client: Client, app: RegistryApp) -> None:
    manifest = image_manifest(sha256(b"no config"), [sha256(b"no layer")])
    response = client.put("/v2/foo/manifests/v1", data=manifest, content_type=OCI_MANIFEST)
    assert response.status_code == 400
    assert error_code(response) == "MANIFEST_BLOB_UNKNOWN"
    assert len(document(response)["errors"][0]["detail"]) == 2
    assert stored_paths(app) == []


def test_manifest_put_by_wrong_digest_is_digest_invalid(client: Client, app: RegistryApp) -> None:
    config = push_blob(client, "foo", b"{}")
    before = stored_paths(app)
    manifest = image_manifest(config, [])
    response = client.put(f"/v2/foo/manifests/{sha256(b'else')}", data=manifest, content_type=OCI_MANIFEST)
    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"
    assert stored_paths(app) == before


def test_manifest_over_4_mib_is_refused(client: Client, app: RegistryApp) -> None:
    config = push_blob(client, "foo", b"{}")
    before = stored_paths(app)
    manifest = image_manifest(config, [], annotations={"padding": "x" * (4 * 1024 * 1024)})
    response = client.put("/v2/foo/manifests/big", data=manifest, content_type=OCI_MANIFEST)
    assert response.status_code == 413
    assert error_code(response) == "MANIFEST_INVALID"
    assert stored_paths(app) == before


def test_manifest_put_with_invalid_tag_is_400_tag_invalid(client: Client, app: RegistryApp) -> None:
    config = push_blob(client, "foo", b"{}")
    before = stored_paths(app)
    response = client.put(
        "/v2/foo/manifests/.bad", data=image_manifest(config, []), content_type=OCI_MANIFEST
    )
    assert response.status_code == 400
    assert error_code(response) == "TAG_INVALID"
    assert stored_paths(app) == before


def test_unknown_and_invalid_manifest_references_are_404(client: Client) -> None:
    for reference in ("nope", ".INVALID_MANIFEST_NAME", sha256(b"nope")):
        response = client.get(f"/v2/foo/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
        assert response.status_code == 404
        assert error_code(response) == "MANIFEST_UNKNOWN"
    malformed = client.get("/v2/foo/manifests/sha256:totallywrong")
    assert malformed.status_code == 400
    assert error_code(malformed) == "DIGEST_INVALID"


def test_index_with_unknown_child_is_refused_and_known_child_accepted(client: Client) -> None:
    child, _ = push_image(client, "foo", "child")
    entry = {"mediaType": OCI_MANIFEST, "size": 1, "platform": {"os": "linux", "architecture": "amd64"}}
    bad = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{**entry, "digest": sha256(b"missing")}]}
    ).encode()
    response = client.put("/v2/foo/manifests/list", data=bad, content_type=OCI_INDEX)
    assert response.status_code == 400
    assert error_code(response) == "MANIFEST_BLOB_UNKNOWN"
    good = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{**entry, "digest": child}]}
    ).encode()
    assert client.put("/v2/foo/manifests/list", data=good, content_type=OCI_INDEX).status_code == 201
    assert client.get("/v2/foo/manifests/list", headers={"Accept": OCI_INDEX}).get_data() == good


def test_manifest_delete_by_digest_removes_its_tags(client: Client) -> None:
    digest, _ = push_image(client, "foo", "v1")
    client.put(
        "/v2/foo/manifests/v2",
        data=client.get("/v2/foo/manifests/v1", headers={"Accept": OCI_MANIFEST}).get_data(),
        content_type=OCI_MANIFEST,
    )
    assert client.delete(f"/v2/foo/manifests/{digest}").status_code == 202
    assert client.get("/v2/foo/tags/list").json == {"name": "foo", "tags": None}
    assert client.get(f"/v2/foo/manifests/{digest}", headers={"Accept": OCI_MANIFEST}).status_code == 404


def test_tag_delete(client: Client) -> None:
    digest, _ = push_image(client, "foo", "v1")
    assert client.delete("/v2/foo/manifests/v1").status_code == 202
    assert client.get("/v2/foo/manifests/v1", headers={"Accept": OCI_MANIFEST}).status_code == 404
    assert client.get(f"/v2/foo/manifests/{digest}", headers={"Accept": OCI_MANIFEST}).status_code == 200


# -- referrers ---------------------------------------------------------------------------------------------


def test_referrers_list_and_filter(client: Client) -> None:
    subject, subject_manifest = push_image(client, "foo", "v1")
    descriptor = {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(subject_manifest)}
    config = push_blob(client, "foo", b"{}")
    sbom = image_manifest(
        config, [], subject=descriptor, artifactType="application/spdx+json", annotations={"kind": "sbom"}
    )
    response = client.put(f"/v2/foo/manifests/{sha256(sbom)}", data=sbom, content_type=OCI_MANIFEST)
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == subject
    listed = client.get(f"/v2/foo/referrers/{subject}")
    assert listed.status_code == 200
    assert listed.headers["Content-Type"] == OCI_INDEX
    assert [m["digest"] for m in document(listed)["manifests"]] == [sha256(sbom)]
    assert document(listed)["manifests"][0]["artifactType"] == "application/spdx+json"
    assert document(listed)["manifests"][0]["annotations"] == {"kind": "sbom"}
    filtered = client.get(f"/v2/foo/referrers/{subject}?artifactType=other/type")
    assert document(filtered)["manifests"] == []
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert document(client.get(f"/v2/foo/referrers/{sha256(b'none')}"))["manifests"] == []
    assert client.get("/v2/foo/referrers/sha256:bad").status_code == 400


# -- tags and catalog ----------------------------------------------------------------------------------------


def test_tags_list_pages_with_link(client: Client) -> None:
    for tag in ("c", "a", "b", "d"):
        push_image(client, "foo", tag)
    assert document(client.get("/v2/foo/tags/list"))["tags"] == ["a", "b", "c", "d"]
    first = client.get("/v2/foo/tags/list?n=2")
    assert document(first)["tags"] == ["a", "b"]
    assert first.headers["Link"] == '</v2/foo/tags/list?last=b&n=2>; rel="next"'
    second = client.get("/v2/foo/tags/list?n=2&last=b")
    assert document(second)["tags"] == ["c", "d"]
    assert "Link" not in second.headers
    assert document(client.get("/v2/foo/tags/list?n=0"))["tags"] == []


@pytest.mark.parametrize("n", ["-1", "abc"])
def test_bad_page_size_is_400_pagination_number_invalid(client: Client, n: str) -> None:
    push_image(client, "foo", "v1")
    for path in (f"/v2/foo/tags/list?n={n}", f"/v2/_catalog?n={n}"):
        response = client.get(path)
        assert response.status_code == 400
        assert error_code(response) == "PAGINATION_NUMBER_INVALID"


def test_tags_of_unknown_repository_is_404_name_unknown(client: Client) -> None:
    response = client.get("/v2/nothing/tags/list")
    assert response.status_code == 404
    assert error_code(response) == "NAME_UNKNOWN"


def test_catalog_pages(client: Client) -> None:
    for name in ("b/x", "a", "c"):
        push_image(client, name, "v1")
    assert client.get("/v2/_catalog").json == {"repositories": ["a", "b/x", "c"]}
    first = client.get("/v2/_catalog?n=2")
    assert document(first)["repositories"] == ["a", "b/x"]
    assert first.headers["Link"] == '</v2/_catalog?last=b%2Fx&n=2>; rel="next"'
    assert document(client.get("/v2/_catalog?n=2&last=b/x"))["repositories"] == ["c"]


def test_catalog_lists_repositories_holding_blobs_but_not_uploads(client: Client) -> None:
    digest = push_blob(client, "a/pushed", b"a blob and no manifest")
    assert client.post(f"/v2/mounted/blobs/uploads/?mount={digest}&from=a/pushed").status_code == 201
    assert client.post("/v2/uploading/blobs/uploads/").status_code == 202
    assert document(client.get("/v2/_catalog"))["repositories"] == ["a/pushed", "mounted"]
    # The repository's _layers directory outlives its blobs, as on distribution's filesystem.
    assert client.delete(f"/v2/mounted/blobs/{digest}").status_code == 202
    assert document(client.get("/v2/_catalog"))["repositories"] == ["a/pushed", "mounted"]


def test_tags_list_is_name_unknown_until_the_repository_is_tagged(client: Client) -> None:
    config = push_blob(client, "blobs", b"{}")
    manifest = image_manifest(config, [])
    assert (
        client.put(
            f"/v2/blobs/manifests/{sha256(manifest)}", data=manifest, content_type=OCI_MANIFEST
        ).status_code
        == 201
    )
    assert client.post("/v2/uploading/blobs/uploads/").status_code == 202
    push_image(client, "parent/child", "v1")
    for name in ("blobs", "uploading", "parent"):
        response = client.get(f"/v2/{name}/tags/list")
        assert response.status_code == 404, name
        assert error_code(response) == "NAME_UNKNOWN"
    assert client.put("/v2/blobs/manifests/v1", data=manifest, content_type=OCI_MANIFEST).status_code == 201
    assert client.get("/v2/blobs/tags/list").json == {"name": "blobs", "tags": ["v1"]}


def test_catalog_n_above_maximum_is_refused(client: Client) -> None:
    response = client.get("/v2/_catalog?n=1001")
    assert response.status_code == 400
    assert error_code(response) == "PAGINATION_NUMBER_INVALID"


# -- configuration-driven behaviour --------------------------------------------------------------------------


def test_deletes_disabled_are_405_unsupported() -> None:
    client = Client(emulator.make_app(emulator.load_config({"storage": {"delete": {"enabled": False}}})))
    digest = push_blob(client, "foo", b"kept")
    for path in (f"/v2/foo/blobs/{digest}", "/v2/foo/manifests/v1"):
        response = client.delete(path)
        assert response.status_code == 405
        assert error_code(response) == "UNSUPPORTED"
    assert client.get(f"/v2/foo/blobs/{digest}").status_code == 200


def test_read_only_refuses_writes_with_405() -> None:
    config = emulator.load_config({"storage": {"maintenance": {"readonly": {"enabled": True}}}})
    client = Client(emulator.make_app(config))
    response = client.post("/v2/foo/blobs/uploads/")
    assert response.status_code == 405
    assert error_code(response) == "UNSUPPORTED"
    assert client.get("/v2/").status_code == 200


def test_relative_urls_and_configured_host() -> None:
    relative = Client(emulator.make_app(emulator.load_config({"http": {"relativeurls": True}})))
    assert relative.post("/v2/foo/blobs/uploads/").headers["Location"].startswith("/v2/foo/blobs/uploads/")
    hosted = Client(emulator.make_app(emulator.load_config({"http": {"host": "https://registry.example"}})))
    location = hosted.post("/v2/foo/blobs/uploads/").headers["Location"]
    assert location.startswith("https://registry.example/v2/foo/blobs/uploads/")


def test_forwarded_headers_shape_locations(client: Client) -> None:
    response = client.post(
        "/v2/foo/blobs/uploads/",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "reg.example:8443"},
    )
    assert response.headers["Location"].startswith("https://reg.example:8443/v2/foo/")


@pytest.mark.parametrize(
    ("proto", "host"),
    [
        ("https", ".."),
        ("https", "\u2603"),
        ("https", "a" * 64 + ".example"),
        ("javascript", "a b"),
        ("ftp", "x/y"),
    ],
)
def test_malformed_forwarded_headers_are_ignored(client: Client, proto: str, host: str) -> None:
    """A forged X-Forwarded-* value never reaches Location, and never turns into a 500."""
    response = client.post(
        "/v2/foo/blobs/uploads/", headers={"X-Forwarded-Proto": proto, "X-Forwarded-Host": host}
    )
    assert response.status_code == 202
    location = response.headers["Location"]
    scheme = "https" if proto == "https" else "http"
    assert location.startswith(f"{scheme}://localhost/v2/foo/blobs/uploads/"), location


def test_prefix_moves_every_route() -> None:
    client = Client(emulator.make_app(emulator.load_config({"http": {"prefix": "/registry/"}})))
    assert client.get("/registry/v2/").status_code == 200
    assert client.get("/v2/").status_code == 404
    location = client.post("/registry/v2/foo/blobs/uploads/").headers["Location"]
    assert "/registry/v2/foo/blobs/uploads/" in location


# -- the pack registry's /v1 surface -----------------------------------------------------------------------


def test_v1_mirrors_the_api_and_serves_typed_blobs(client: Client) -> None:
    assert client.get("/v1/").status_code == 200
    digest = push_blob(client, "nginx", b"\x89PNG fake logo")
    push_image(client, "nginx", "1.0")
    logo = client.get(f"/v1/nginx/blobs/{digest}?type=image/png")
    assert logo.status_code == 200
    assert logo.headers["Content-Type"] == "image/png"
    assert logo.get_data() == b"\x89PNG fake logo"
    assert client.get(f"/v1/nginx/blobs/{digest}?type=image.webp").headers["Content-Type"] == "image/webp"
    assert "nginx" in document(client.get("/v1/_catalog"))["repositories"]
    location = client.post("/v1/nginx/blobs/uploads/").headers["Location"]
    assert "/v1/nginx/blobs/uploads/" in location


# -- failures inside the registry ---------------------------------------------------------------------


def test_a_storage_path_refused_by_the_driver_is_a_client_error_without_traceback(
    app: RegistryApp, client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Should a value ever slip past the route checks, the driver's refusal is a 400, not a crash."""

    def escaping(*args: object, **kwargs: object) -> t.NoReturn:
        raise InvalidPath("/docker/registry/v2/repositories/foo/../../etc")

    monkeypatch.setattr(app.registry.tags, "list", escaping)
    with caplog.at_level(logging.INFO, logger="emulator"):
        response = client.get("/v2/foo/tags/list")
    assert response.status_code == 400
    assert response.content_type == "application/json; charset=utf-8"
    assert error_code(response) == "UNKNOWN"
    assert all(record.exc_info is None for record in caplog.records)
    (warning,) = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert "refused a path" in warning.getMessage()


def test_an_unexpected_error_is_500_unknown_without_traceback(
    app: RegistryApp, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> t.NoReturn:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(app.registry.tags, "list", broken)
    response = client.get("/v2/foo/tags/list")
    assert response.status_code == 500
    assert error_code(response) == "UNKNOWN"
    assert b"disk on fire" not in response.get_data()
    assert b"Traceback" not in response.get_data()
