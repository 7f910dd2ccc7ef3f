"""The conformance suite notices broken registries, and passes a sound one.

Each variant puts a WSGI middleware in front of the emulator that breaks exactly one rule (drops a header,
answers 200 for 201, ignores ``last``, accepts a wrong password, ...). The suite runs, in a child
``pytest``, the checks that guard that rule, under the variant's profile, and every one of them must fail
(or, for a variant that only declines an optional feature, end as unsupported).

Two counts hold the variants to the verdict table (:data:`conformance.verdicts.TABLE`) and to the checks
added with it: every row has a variant that fails a check through it under a profile that lets the
registry lack the feature (a broken feature cannot hide behind its row), every row that a profile
requires has a variant that declines it under that profile and fails, and every new check has a variant
that makes it fail. The controls run the whole suite against the unbroken emulator under every profile:
in process, served behind a do-nothing middleware, and as a ``python -m emulator serve`` process, with 0
failures and 0 unsupported features.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import typing as t
import urllib.parse
from pathlib import Path

import pytest
import yaml

import emulator
from conformance.runner import SuiteResult
from conformance.runner import run
from conformance.verdicts import PROFILES
from conformance.verdicts import TABLE
from pax_registry_fixtures.distribution import write_htpasswd
from pax_registry_fixtures.process import RegistryProcess

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

USER, PASSWORD = "conformance", "right password"
REALM = "pax realm"
HEADERS = {"X-Content-Type-Options": ["nosniff"], "X-Frame-Options": ["DENY"]}
DUMMY_DIGEST = "sha256:" + hashlib.sha256(b"hello world").hexdigest()
EMPTY_DIGEST = "sha256:" + hashlib.sha256(b"").hexdigest()
EMPTY_JSON_DIGEST = "sha256:" + hashlib.sha256(b"{}").hexdigest()
ALL_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


# -- a toolkit for breaking a WSGI app ------------------------------------------------------------------


@dataclasses.dataclass
class Reply:
    """A whole response, buffered so that a middleware can change any part of it."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes
    #: A ``Content-Length`` to announce instead of the body's, to send a body cut short.
    declared: int | None = None

    @property
    def code(self) -> int:
        return int(self.status.split(" ", 1)[0])

    def get(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    def set(self, name: str, value: str) -> None:
        self.drop(name)
        self.headers.append((name, value))

    def drop(self, name: str) -> None:
        self.headers = [(key, value) for key, value in self.headers if key.lower() != name.lower()]


RequestEdit = t.Callable[["WSGIEnvironment"], Reply | None]
ResponseEdit = t.Callable[["WSGIEnvironment", Reply], None]


def _call(app: WSGIApplication, environ: WSGIEnvironment) -> Reply:
    captured: dict[str, t.Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> t.Any:
        captured.update(status=status, headers=list(headers))
        return lambda data: None

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return Reply(captured["status"], captured["headers"], body)


def broken(
    app: WSGIApplication, request: RequestEdit | None, response: ResponseEdit | None
) -> WSGIApplication:
    """``app`` with ``request`` applied to each environ (it may answer on its own) and ``response`` to each
    reply."""

    def middleware(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        reply = request(environ) if request is not None else None
        if reply is None:
            reply = _call(app, environ)
            if response is not None:
                response(environ, reply)
        if environ["REQUEST_METHOD"] != "HEAD" and reply.code not in (204, 304):
            length = len(reply.body) if reply.declared is None else reply.declared
            reply.set("Content-Length", str(length))
        start_response(reply.status, reply.headers)
        return [reply.body]

    return middleware


def path(environ: WSGIEnvironment) -> str:
    return str(environ.get("PATH_INFO", ""))


def method(environ: WSGIEnvironment) -> str:
    return str(environ["REQUEST_METHOD"])


def query(environ: WSGIEnvironment) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True))


def edit_query(environ: WSGIEnvironment, **changes: str | None) -> None:
    params = query(environ)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    environ["QUERY_STRING"] = urllib.parse.urlencode(params)


def read_body(environ: WSGIEnvironment) -> bytes:
    """The request body, put back so the registry can still read it."""
    body: bytes = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def is_blob(environ: WSGIEnvironment) -> bool:
    return "/blobs/sha" in path(environ)


def is_upload(environ: WSGIEnvironment) -> bool:
    return "/blobs/uploads/" in path(environ)


def is_manifest(environ: WSGIEnvironment) -> bool:
    return "/manifests/" in path(environ)


def is_tag(environ: WSGIEnvironment) -> bool:
    """A manifest path whose reference is a tag, not a digest."""
    return is_manifest(environ) and ":" not in path(environ).rsplit("/", 1)[1]


def error(status: str, code: str) -> Reply:
    body = json.dumps({"errors": [{"code": code, "message": code.lower().replace("_", " ")}]}).encode()
    return Reply(status, [("Content-Type", "application/json")], body)


def not_found_text() -> Reply:
    """A route the server does not have, answered as Go's mux answers it."""
    return Reply("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")], b"404 page not found\n")


# -- the variants ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    #: The checks that must fail, as the runner names them.
    fails: tuple[str, ...] = ()
    request: RequestEdit | None = None
    response: ResponseEdit | None = None
    #: ``secured`` runs the emulator with htpasswd and configured headers, and the suite with its config.
    config: str = "plain"
    #: The profile the suite judges by.
    profile: str = "oci"
    #: The row of the verdict table whose rule the variant breaks, if any.
    row: str | None = None
    #: Checks that must end as unsupported: the variant declines a feature the profile lets it lack.
    unsupported: tuple[str, ...] = ()

    def wrap(self, app: WSGIApplication) -> WSGIApplication:
        return broken(app, self.request, self.response)

    @property
    def checks(self) -> tuple[str, ...]:
        return self.fails + self.unsupported


def _status(reply: Reply, status: str) -> None:
    reply.status = status


def _drop_dcd(environ: WSGIEnvironment, reply: Reply) -> None:
    reply.drop("Docker-Content-Digest")


def _put_200(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "PUT" and is_upload(environ) and reply.code == 201:
        _status(reply, "200 OK")


def _ignore_last(environ: WSGIEnvironment) -> None:
    if path(environ).endswith("/tags/list"):
        edit_query(environ, last=None)


def _catalog_without_link(environ: WSGIEnvironment, reply: Reply) -> None:
    if path(environ).endswith("/_catalog"):
        reply.drop("Link")


def _wrong_content_range(environ: WSGIEnvironment, reply: Reply) -> None:
    if reply.code == 206:
        total = (reply.get("Content-Range") or "/0").rsplit("/", 1)[1]
        reply.set("Content-Range", f"bytes 0-7/{total}")


def _skip_digest_check(environ: WSGIEnvironment) -> None:
    if method(environ) == "PUT" and is_upload(environ):
        body = read_body(environ)
        if body:
            # Claim whatever digest the content has, so the registry can never see a mismatch.
            edit_query(environ, digest="sha256:" + hashlib.sha256(body).hexdigest())


def _omit_header(environ: WSGIEnvironment, reply: Reply) -> None:
    reply.drop("X-Frame-Options")


def _accept_wrong_password(environ: WSGIEnvironment) -> None:
    right = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    if str(environ.get("HTTP_AUTHORIZATION", "")).startswith("Basic "):
        environ["HTTP_AUTHORIZATION"] = f"Basic {right}"


def _unknown_blob_500(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "GET" and is_blob(environ) and reply.code == 404:
        _status(reply, "500 Internal Server Error")


def _missing_blob_found(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "HEAD" and is_blob(environ) and reply.code == 404:
        _status(reply, "200 OK")


def _range_with_unit(environ: WSGIEnvironment, reply: Reply) -> None:
    current = reply.get("Range")
    if is_upload(environ) and current:
        reply.set("Range", f"bytes={current}")


def _upload_status_200(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "GET" and is_upload(environ) and reply.code == 204:
        _status(reply, "200 OK")


def _accept_any_chunk(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "PATCH" and reply.code == 416:
        _status(reply, "202 Accepted")


def _session_without_location(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "POST" and is_upload(environ):
        reply.drop("Location")


def _edit_tags(environ: WSGIEnvironment, reply: Reply, edit: t.Callable[[list[str]], list[str]]) -> None:
    if path(environ).endswith("/tags/list") and reply.code == 200:
        document = json.loads(reply.body)
        document["tags"] = edit(document.get("tags") or [])
        reply.body = json.dumps(document).encode()


def _unsorted_tags(environ: WSGIEnvironment, reply: Reply) -> None:
    _edit_tags(environ, reply, lambda tags: tags[::-1])


def _short_page(environ: WSGIEnvironment, reply: Reply) -> None:
    if "n=" in str(environ.get("QUERY_STRING", "")):
        _edit_tags(environ, reply, lambda tags: tags[:-1])
        reply.drop("Link")


def _ignore_n(environ: WSGIEnvironment) -> None:
    if path(environ).endswith("/tags/list"):
        edit_query(environ, n=None)


def _referrers_as_json(environ: WSGIEnvironment, reply: Reply) -> None:
    if "/referrers/" in path(environ):
        reply.set("Content-Type", "application/json")


def _no_referrers_api(environ: WSGIEnvironment) -> Reply | None:
    return not_found_text() if "/referrers/" in path(environ) else None


def _drop_subject(environ: WSGIEnvironment, reply: Reply) -> None:
    reply.drop("OCI-Subject")


def _filter_ignored(environ: WSGIEnvironment) -> None:
    if "/referrers/" in path(environ):
        edit_query(environ, artifactType=None)


def _filter_claimed(environ: WSGIEnvironment, reply: Reply) -> None:
    if "/referrers/" in path(environ):
        reply.set("OCI-Filters-Applied", "artifactType")


def _wrong_subject(environ: WSGIEnvironment, reply: Reply) -> None:
    if reply.get("OCI-Subject"):
        reply.set("OCI-Subject", DUMMY_DIGEST)


def _invent_artifact_types(environ: WSGIEnvironment, reply: Reply) -> None:
    if "/referrers/" in path(environ) and reply.code == 200:
        document = json.loads(reply.body)
        for descriptor in document.get("manifests", []):
            descriptor.setdefault("artifactType", "application/vnd.pax.invented")
        reply.body = json.dumps(document).encode()


def _malformed_referrers_404(environ: WSGIEnvironment, reply: Reply) -> None:
    if "/referrers/" in path(environ) and reply.code == 400:
        _status(reply, "404 Not Found")


def _drop_api_version(environ: WSGIEnvironment, reply: Reply) -> None:
    reply.drop("Docker-Distribution-API-Version")


def _wrong_api_version(environ: WSGIEnvironment, reply: Reply) -> None:
    reply.set("Docker-Distribution-API-Version", "registry/1.0")


def _ignore_if_none_match(environ: WSGIEnvironment) -> None:
    environ.pop("HTTP_IF_NONE_MATCH", None)


def _drop_etag(environ: WSGIEnvironment, reply: Reply) -> None:
    reply.drop("ETag")


def _manifest_as_json(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "GET" and is_manifest(environ) and reply.code == 200:
        reply.set("Content-Type", "application/json")


def _delete_200(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "DELETE" and is_manifest(environ) and reply.code == 202:
        _status(reply, "200 OK")


def _health_down(environ: WSGIEnvironment, reply: Reply) -> None:
    if path(environ) == "/health":
        reply.body = b'{"status":"DOWN"}'


def _no_health(environ: WSGIEnvironment) -> Reply | None:
    return not_found_text() if path(environ) == "/health" else None


def _v1_type_ignored(environ: WSGIEnvironment, reply: Reply) -> None:
    if path(environ).startswith("/v1/") and is_blob(environ):
        reply.set("Content-Type", "application/octet-stream")


def _no_v1(environ: WSGIEnvironment) -> Reply | None:
    return not_found_text() if path(environ).startswith("/v1/") else None


def _challenge_without_header(environ: WSGIEnvironment, reply: Reply) -> None:
    if reply.code == 401:
        reply.drop("WWW-Authenticate")


def _is_mount(environ: WSGIEnvironment, *, with_from: bool) -> bool:
    params = query(environ)
    return method(environ) == "POST" and "mount" in params and ("from" in params) == with_from


def _mount_elsewhere(environ: WSGIEnvironment, reply: Reply) -> None:
    location = reply.get("Location")
    if _is_mount(environ, with_from=True) and reply.code == 201:
        assert location is not None
        reply.set("Location", location.replace("/blobs/", "/elsewhere/blobs/"))


def _never_mount(environ: WSGIEnvironment) -> None:
    if _is_mount(environ, with_from=True):
        edit_query(environ, mount=None, **{"from": None})


def _automatic_mount_elsewhere(environ: WSGIEnvironment, reply: Reply) -> None:
    location = reply.get("Location")
    if _is_mount(environ, with_from=False) and reply.code == 201:
        assert location is not None
        reply.set("Location", location.replace("/blobs/", "/elsewhere/blobs/"))


def _never_mount_automatically(environ: WSGIEnvironment) -> None:
    if _is_mount(environ, with_from=False):
        edit_query(environ, mount=None)


def _single_post_ignored(environ: WSGIEnvironment) -> None:
    if method(environ) == "POST" and is_upload(environ) and "digest" in query(environ):
        edit_query(environ, digest=None)


def _single_post_claimed(environ: WSGIEnvironment) -> None:
    if method(environ) == "POST" and is_upload(environ) and "digest" in query(environ):
        environ["pax.claimed"] = query(environ)["digest"]
        edit_query(environ, digest=None)


def _claim_created(environ: WSGIEnvironment, reply: Reply) -> None:
    digest = environ.get("pax.claimed")
    if digest and reply.code == 202:
        name = path(environ).split("/blobs/uploads/", 1)[0]
        reply.status = "201 Created"
        reply.set("Location", f"{name}/blobs/{digest}")
        reply.set("Docker-Content-Digest", str(digest))


def _wrong_digest_header(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "HEAD" and is_blob(environ) and reply.code == 200:
        reply.set("Docker-Content-Digest", DUMMY_DIGEST)


def _wrong_head_size(environ: WSGIEnvironment, reply: Reply) -> None:
    length = reply.get("Content-Length")
    if method(environ) == "HEAD" and reply.code == 200 and length is not None:
        reply.set("Content-Length", str(int(length) + 1))


def _head_without_size(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "HEAD" and reply.code == 200:
        reply.drop("Content-Length")


def _corrupt_blob(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "GET" and is_blob(environ) and reply.code == 200 and reply.body:
        reply.body = bytes([reply.body[0] ^ 0xFF]) + reply.body[1:]


def _cut_blob_short(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "GET" and is_blob(environ) and reply.code == 200:
        reply.declared = len(reply.body) + 16


def _pretend_delete(kind: str) -> RequestEdit:
    def edit(environ: WSGIEnvironment) -> Reply | None:
        if method(environ) == "DELETE" and f"/{kind}/sha256:" in path(environ):
            return Reply("202 Accepted", [], b"")
        return None

    return edit


def _pretend_tag_delete(environ: WSGIEnvironment) -> Reply | None:
    if method(environ) == "DELETE" and is_tag(environ):
        return Reply("202 Accepted", [], b"")
    return None


def _tag_delete_digest_invalid(environ: WSGIEnvironment) -> Reply | None:
    if method(environ) == "DELETE" and is_tag(environ):
        return error("400 Bad Request", "DIGEST_INVALID")
    return None


def _refuse(kind: str) -> RequestEdit:
    """Refuse deletes of one kind (``tag``, ``manifest`` or ``blob``) as distribution does when off."""

    def edit(environ: WSGIEnvironment) -> Reply | None:
        if method(environ) != "DELETE":
            return None
        chosen = {
            "tag": is_tag(environ),
            "manifest": is_manifest(environ) and not is_tag(environ),
            "blob": is_blob(environ),
        }
        return error("405 Method Not Allowed", "UNSUPPORTED") if chosen[kind] else None

    return edit


def _refuse_deletes(environ: WSGIEnvironment) -> Reply | None:
    if method(environ) == "DELETE" and not is_upload(environ):
        return error("405 Method Not Allowed", "UNSUPPORTED")
    return None


def _lowercase_codes(environ: WSGIEnvironment, reply: Reply) -> None:
    if reply.code == 404 and reply.body.startswith(b"{"):
        document = json.loads(reply.body)
        for entry in document.get("errors", []):
            entry["code"] = str(entry.get("code", "")).lower()
        reply.body = json.dumps(document).encode()


def _plain_text_errors(environ: WSGIEnvironment, reply: Reply) -> None:
    if 400 <= reply.code < 500 and reply.body.startswith(b"{"):
        reply.body = b"something went wrong\n"
        reply.set("Content-Type", "text/plain; charset=utf-8")


def _dangling_manifest_code(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "PUT" and is_manifest(environ) and b"MANIFEST_BLOB_UNKNOWN" in reply.body:
        reply.body = reply.body.replace(b"MANIFEST_BLOB_UNKNOWN", b"MANIFEST_INVALID")


def _accept_dangling_manifest(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "PUT" and is_manifest(environ) and b"MANIFEST_BLOB_UNKNOWN" in reply.body:
        reply.status = "201 Created"
        reply.body = b""
        reply.set("Location", path(environ))


def _forget_cancelled_upload(environ: WSGIEnvironment) -> Reply | None:
    if method(environ) == "DELETE" and is_upload(environ):
        return error("404 Not Found", "BLOB_UPLOAD_UNKNOWN")
    return None


def _no_upload_cancel(environ: WSGIEnvironment) -> Reply | None:
    if method(environ) == "DELETE" and is_upload(environ):
        return error("405 Method Not Allowed", "UNSUPPORTED")
    return None


def _catalog_denied(environ: WSGIEnvironment) -> Reply | None:
    return error("403 Forbidden", "DENIED") if path(environ) == "/v2/_catalog" else None


def _no_catalog(environ: WSGIEnvironment) -> Reply | None:
    return not_found_text() if path(environ) == "/v2/_catalog" else None


def _unservable_accept_400(environ: WSGIEnvironment, reply: Reply) -> None:
    accept = str(environ.get("HTTP_ACCEPT", ""))
    if is_manifest(environ) and reply.code in (404, 406) and "vnd.oci.image.manifest" not in accept:
        _status(reply, "400 Bad Request")


def _ignore_accept(environ: WSGIEnvironment) -> None:
    if is_manifest(environ):
        environ["HTTP_ACCEPT"] = ALL_TYPES


def _ignore_range(environ: WSGIEnvironment) -> None:
    environ.pop("HTTP_RANGE", None)


def _unsatisfiable_range_200(environ: WSGIEnvironment, reply: Reply) -> None:
    if is_blob(environ) and reply.code == 416:
        _status(reply, "200 OK")


def _lose(kind: str, marker: str, code: str) -> RequestEdit:
    """Answer 404 to reads of the ``kind`` paths that hold ``marker``, as if never stored."""

    def edit(environ: WSGIEnvironment) -> Reply | None:
        if method(environ) in ("GET", "HEAD") and f"/{kind}/" in path(environ) and marker in path(environ):
            return error("404 Not Found", code)
        return None

    return edit


def _refuse_sha512(environ: WSGIEnvironment) -> Reply | None:
    if method(environ) != "PUT":
        return None
    upload = is_upload(environ) and query(environ).get("digest", "").startswith("sha512:")
    if upload or "/manifests/sha512:" in path(environ):
        return error("400 Bad Request", "DIGEST_INVALID")
    return None


def _drop_final_chunk(environ: WSGIEnvironment) -> None:
    if method(environ) == "PUT" and is_upload(environ) and environ.get("HTTP_CONTENT_RANGE"):
        read_body(environ)
        environ["wsgi.input"] = io.BytesIO(b"")
        environ["CONTENT_LENGTH"] = "0"
        environ.pop("HTTP_CONTENT_RANGE")


def _min_length_not_a_number(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "POST" and is_upload(environ) and reply.code == 202:
        reply.set("OCI-Chunk-Min-Length", "lots")


def _refuse_empty_blob(environ: WSGIEnvironment) -> Reply | None:
    if method(environ) == "PUT" and is_upload(environ) and query(environ).get("digest") == EMPTY_DIGEST:
        return error("400 Bad Request", "SIZE_INVALID")
    return None


def _empty_json_as_nothing(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "GET" and path(environ).endswith(f"/blobs/{EMPTY_JSON_DIGEST}"):
        reply.body = b""


def _refuse_empty_artifact(environ: WSGIEnvironment) -> Reply | None:
    if method(environ) == "PUT" and is_tag(environ) and path(environ).endswith("/emptyartifact"):
        return error("400 Bad Request", "MANIFEST_INVALID")
    return None


def _refuse_pack_archive(environ: WSGIEnvironment) -> Reply | None:
    if method(environ) == "POST" and "/spectro-packs/archive/" in path(environ):
        return error("403 Forbidden", "DENIED")
    return None


PULL = "test_pull::TestPullBlobs::"
MANIFESTS = "test_pull::TestPullManifests::"
RANGE = "test_pull::TestRangeRequests::test_blob_range_request"
SERVED_RANGES = tuple(f"{RANGE}[{case}]" for case in ("closed", "open-ended", "suffix", "past-the-end"))
REFUSED_RANGES = tuple(f"{RANGE}[{case}]" for case in ("reversed", "unsatisfiable"))
MONOLITHIC = "test_push::TestBlobUploadMonolithic::"
CHUNKED = "test_push::TestBlobUploadChunked::"
EDGE = "test_push::TestBlobUploadChunkedOutOfOrder::"
MOUNT = "test_push::TestCrossRepositoryBlobMount::"
MOUNTED = f"{MOUNT}test_get_request_to_test_digest_within_cross_mount_namespace_should_return_200"
AUTOMATIC_MOUNT = (
    f"{MOUNT}test_cross_mounting_without_from_and_automatic_content_discovery_enabled_should_return_a_201"
)
SHA512 = "test_push::TestSha512::"
EMPTY = "test_push::TestEmptyContent::"
TAGS = "test_discovery::TestListingTags::"
REFERRERS = "test_discovery::TestListingReferences::"
REFERRERS_SETUP = "test_discovery::TestSetup::test_references_setup"
FILTERED = tuple(
    f"{REFERRERS}test_get_request_to_existing_blob_with_filter_should_yield_200[{kind}]"
    for kind in ("type-a", "type-b")
)
DELETES = "test_management::TestManifestDelete::"
TAG_DELETE = (
    f"{DELETES}test_delete_request_to_manifest_tag_should_return_202_unless_tag_deletion_is_disallowed"
)
TAG_GONE = f"{DELETES}test_get_request_to_deleted_tag_should_yield_404_response"
MANIFEST_DELETE = (
    f"{DELETES}test_delete_request_to_manifest_digest_should_yield_202_response_unless_already_deleted"
)
BLOB_DELETE = "test_management::TestBlobDelete::test_delete_request_to_blob_url_should_yield_202_response"
HEADER_CHECKS = "test_docker::TestHeaders::"
API_VERSION = (
    "test_docker::TestApiVersion::test_base_answers_200_with_api_version_header",
    "test_docker::TestApiVersion::test_errors_carry_api_version_header",
)
ERROR_BODIES = (
    "test_docker::TestErrorBodies::test_unknown_blob_is_blob_unknown",
    "test_docker::TestErrorBodies::test_unknown_manifest_is_manifest_unknown",
)
CATALOG = "test_docker::TestCatalog::test_catalog_lists_repositories"
ETAGS = (
    "test_docker::TestConditionalRequests::test_manifest_if_none_match_answers_304[tag]",
    "test_docker::TestConditionalRequests::test_blob_if_none_match_answers_304",
)
NEGOTIATION = (
    "test_docker::TestAcceptNegotiation::test_oci_manifest_is_unknown_to_clients_that_do_not_accept_it",
    "test_docker::TestAcceptNegotiation::test_manifest_list_by_tag_resolves_to_the_platform_manifest",
)
DANGLING = "test_docker::TestDigestVerification::test_manifest_referencing_unknown_blob_is_rejected"
CANCEL = "test_docker::TestUploads::test_cancelled_upload_is_unknown"
V1 = (
    "test_pack::test_v1_base_answers_200",
    "test_pack::test_v1_catalog_lists_repositories",
    "test_pack::test_v1_blob_is_served_with_the_requested_type",
)
PACK_ARCHIVE = "test_pack::test_pack_archive_is_pushed_and_pulled_under_spectro_packs_archive"
CONFIG = "test_config::"

VARIANTS = [
    # -- rows of the verdict table: broken while offered (fails wherever the row is optional), and
    # -- declined (fails where a profile requires the feature, unsupported where none does)
    Variant(
        "has no referrers API",
        (
            REFERRERS_SETUP,
            f"{REFERRERS}test_get_request_to_nonexistent_blob_should_result_in_empty_200_response",
            f"{REFERRERS}test_get_request_to_missing_manifest_should_yield_200",
        ),
        request=_no_referrers_api,
        response=_drop_subject,
        row="referrers",
    ),
    Variant(
        "serves referrers as plain JSON",
        (f"{REFERRERS}test_get_request_to_nonexistent_blob_should_result_in_empty_200_response",),
        response=_referrers_as_json,
        row="referrers",
    ),
    Variant("forgets OCI-Subject", (REFERRERS_SETUP,), response=_drop_subject, row="referrers"),
    Variant(
        "claims a filter it did not apply",
        FILTERED,
        request=_filter_ignored,
        response=_filter_claimed,
        row="referrers-filter",
    ),
    Variant("ignores artifactType", unsupported=FILTERED, request=_filter_ignored, row="referrers-filter"),
    Variant(
        "claims a single POST it did not store",
        (f"{MONOLITHIC}test_single_post_upload_stores_the_blob",),
        request=_single_post_claimed,
        response=_claim_created,
        row="single-post",
    ),
    Variant(
        "ignores the digest of a single POST",
        unsupported=(f"{MONOLITHIC}test_single_post_upload_stores_the_blob",),
        request=_single_post_ignored,
        row="single-post",
    ),
    Variant("mounts to the wrong Location", (MOUNTED,), response=_mount_elsewhere, row="mount"),
    Variant("never mounts", (MOUNTED,), request=_never_mount, profile="docker", row="mount"),
    Variant("never mounts (oci)", unsupported=(MOUNTED,), request=_never_mount, row="mount"),
    Variant(
        "mounts without 'from' to the wrong Location",
        (AUTOMATIC_MOUNT,),
        response=_automatic_mount_elsewhere,
        row="automatic-mount",
    ),
    Variant(
        "never mounts without 'from'",
        unsupported=(AUTOMATIC_MOUNT,),
        request=_never_mount_automatically,
        row="automatic-mount",
    ),
    Variant(
        "loses sha512 blobs",
        (f"{SHA512}test_sha512_blob_push_and_pull", f"{SHA512}test_sha512_chunked_upload"),
        request=_lose("blobs", "sha512:", "BLOB_UNKNOWN"),
        row="sha512",
    ),
    Variant(
        "loses sha512 manifests",
        (f"{SHA512}test_sha512_manifest_by_digest", f"{SHA512}test_sha512_index_by_digest"),
        request=_lose("manifests", "sha512:", "MANIFEST_UNKNOWN"),
        row="sha512",
    ),
    Variant(
        "refuses sha512",
        unsupported=(
            f"{SHA512}test_sha512_blob_push_and_pull",
            f"{SHA512}test_sha512_chunked_upload",
            f"{SHA512}test_sha512_manifest_by_digest",
            f"{SHA512}test_sha512_index_by_digest",
        ),
        request=_refuse_sha512,
        row="sha512",
    ),
    Variant("serves a wrong Content-Range", SERVED_RANGES, response=_wrong_content_range, row="blob-range"),
    Variant(
        "serves unsatisfiable ranges with 200",
        REFUSED_RANGES,
        response=_unsatisfiable_range_200,
        row="blob-range",
    ),
    Variant(
        "ignores Range",
        SERVED_RANGES + REFUSED_RANGES,
        request=_ignore_range,
        profile="docker",
        row="blob-range",
    ),
    Variant(
        "ignores Range (oci)",
        unsupported=SERVED_RANGES + REFUSED_RANGES,
        request=_ignore_range,
        row="blob-range",
    ),
    Variant(
        "names the wrong digest on HEAD",
        (f"{PULL}test_head_request_to_existing_blob_should_yield_200",),
        response=_wrong_digest_header,
        row="digest-header",
    ),
    Variant(
        "drops Docker-Content-Digest",
        (
            f"{HEADER_CHECKS}test_manifest_put_returns_docker_content_digest",
            f"{HEADER_CHECKS}test_blob_head_reports_size_and_digest",
            f"{PULL}test_head_request_to_existing_blob_should_yield_200",
            f"{MANIFESTS}test_head_request_to_manifest_path_tag_should_yield_200_response",
        ),
        response=_drop_dcd,
        profile="docker",
        row="digest-header",
    ),
    Variant(
        "drops Docker-Content-Digest (oci)",
        unsupported=(
            f"{PULL}test_head_request_to_existing_blob_should_yield_200",
            f"{MANIFESTS}test_head_request_to_manifest_path_tag_should_yield_200_response",
        ),
        response=_drop_dcd,
        row="digest-header",
    ),
    Variant(
        "reports a wrong size on HEAD",
        (
            f"{PULL}test_head_request_to_existing_blob_should_yield_200",
            f"{MANIFESTS}test_head_request_to_manifest_path_tag_should_yield_200_response",
        ),
        response=_wrong_head_size,
        row="head-size",
    ),
    Variant(
        "omits Content-Length on HEAD",
        (
            f"{PULL}test_head_request_to_existing_blob_should_yield_200",
            f"{HEADER_CHECKS}test_manifest_head_matches_get",
        ),
        response=_head_without_size,
        profile="docker",
        row="head-size",
    ),
    Variant(
        "refuses tag deletes with DIGEST_INVALID",
        (TAG_DELETE, TAG_GONE),
        request=_tag_delete_digest_invalid,
        row="tag-delete",
    ),
    Variant(
        "refuses tag deletes", unsupported=(TAG_DELETE, TAG_GONE), request=_refuse("tag"), row="tag-delete"
    ),
    Variant(
        "answers 200 for a manifest delete", (MANIFEST_DELETE,), response=_delete_200, row="manifest-delete"
    ),
    Variant(
        "pretends to delete manifests",
        (
            f"{DELETES}"
            "test_get_request_to_deleted_manifest_url_should_yield_404_response_unless_delete_is_disallowed",
        ),
        request=_pretend_delete("manifests"),
        row="manifest-delete",
    ),
    Variant(
        "refuses manifest deletes",
        unsupported=(MANIFEST_DELETE,),
        request=_refuse("manifest"),
        row="manifest-delete",
    ),
    Variant(
        "pretends to delete blobs",
        ("test_management::TestBlobDelete::test_get_request_to_deleted_blob_url_should_yield_404_response",),
        request=_pretend_delete("blobs"),
        row="blob-delete",
    ),
    Variant("refuses blob deletes", unsupported=(BLOB_DELETE,), request=_refuse("blob"), row="blob-delete"),
    Variant(
        "writes error codes in lower case", ERROR_BODIES[:1], response=_lowercase_codes, row="error-bodies"
    ),
    Variant(
        "answers errors in plain text",
        (*ERROR_BODIES, CANCEL),
        response=_plain_text_errors,
        profile="docker",
        row="error-bodies",
    ),
    Variant(
        "answers errors in plain text (oci)",
        unsupported=ERROR_BODIES,
        response=_plain_text_errors,
        row="error-bodies",
    ),
    Variant(
        "rejects dangling manifests with the wrong code",
        (DANGLING,),
        response=_dangling_manifest_code,
        row="manifest-blob-check",
    ),
    Variant(
        "accepts dangling manifests",
        (DANGLING,),
        response=_accept_dangling_manifest,
        profile="docker",
        row="manifest-blob-check",
    ),
    Variant(
        "forgets uploads it is asked to cancel",
        (CANCEL,),
        request=_forget_cancelled_upload,
        row="upload-cancel",
    ),
    Variant(
        "cannot cancel uploads", (CANCEL,), request=_no_upload_cancel, profile="docker", row="upload-cancel"
    ),
    Variant(
        "cannot cancel uploads (oci)", unsupported=(CANCEL,), request=_no_upload_cancel, row="upload-cancel"
    ),
    Variant(
        "sends the wrong API version", API_VERSION, response=_wrong_api_version, row="api-version-header"
    ),
    Variant(
        "drops the API version header",
        API_VERSION,
        response=_drop_api_version,
        profile="docker",
        row="api-version-header",
    ),
    Variant(
        "forgets the catalog Link",
        ("test_docker::TestCatalog::test_catalog_n_limits_the_page_and_links_the_next",),
        response=_catalog_without_link,
        row="catalog",
    ),
    Variant("denies the catalog to the suite", (CATALOG,), request=_catalog_denied, row="catalog"),
    Variant("has no catalog", (CATALOG,), request=_no_catalog, profile="docker", row="catalog"),
    Variant("has no catalog (oci)", unsupported=(CATALOG,), request=_no_catalog, row="catalog"),
    Variant("ignores If-None-Match", ETAGS, request=_ignore_if_none_match, row="etag"),
    Variant("sends no ETag", ETAGS, response=_drop_etag, profile="docker", row="etag"),
    Variant(
        "answers 400 to an Accept it cannot serve",
        NEGOTIATION[:1],
        response=_unservable_accept_400,
        row="accept-negotiation",
    ),
    Variant(
        "ignores Accept", NEGOTIATION, request=_ignore_accept, profile="docker", row="accept-negotiation"
    ),
    Variant(
        "ignores Accept (oci)", unsupported=NEGOTIATION, request=_ignore_accept, row="accept-negotiation"
    ),
    Variant(
        "reports health DOWN",
        ("test_pack::test_health_answers_up",),
        response=_health_down,
        row="pack-health",
    ),
    Variant(
        "has no /health",
        ("test_pack::test_health_answers_up",),
        request=_no_health,
        profile="pack",
        row="pack-health",
    ),
    Variant(
        "ignores the ?type of a /v1/ blob",
        ("test_pack::test_v1_blob_is_served_with_the_requested_type",),
        response=_v1_type_ignored,
        row="pack-v1",
    ),
    Variant("has no /v1/", V1, request=_no_v1, profile="pack", row="pack-v1"),
    Variant("has no /v1/ (oci)", unsupported=V1, request=_no_v1, row="pack-v1"),
    Variant(
        "loses pack archives",
        (PACK_ARCHIVE,),
        request=_lose("manifests", "/spectro-packs/archive/", "MANIFEST_UNKNOWN"),
        row="pack-archive",
    ),
    Variant(
        "refuses spectro-packs/archive/",
        (PACK_ARCHIVE,),
        request=_refuse_pack_archive,
        profile="pack",
        row="pack-archive",
    ),
    Variant(
        "refuses spectro-packs/archive/ (oci)",
        unsupported=(PACK_ARCHIVE,),
        request=_refuse_pack_archive,
        row="pack-archive",
    ),
    # -- MUSTs
    Variant(
        "answers 200 for 201",
        (f"{MONOLITHIC}test_put_upload_of_a_blob_should_yield_a_201_response",),
        response=_put_200,
    ),
    Variant(
        "ignores last", (f"{TAGS}test_get_start_of_tag_is_set_by_last_query_parameter",), request=_ignore_last
    ),
    Variant(
        "ignores n",
        (
            f"{TAGS}test_get_number_of_tags_should_be_limitable_by_n_query_parameter",
            f"{TAGS}test_get_start_of_tag_is_set_by_last_query_parameter",
        ),
        request=_ignore_n,
    ),
    Variant(
        "skips digest verification",
        ("test_docker::TestDigestVerification::test_blob_put_with_wrong_digest_is_rejected",),
        request=_skip_digest_check,
    ),
    Variant(
        "omits a configured header",
        (
            f"{CONFIG}test_configured_headers_are_on_every_response[success]",
            f"{CONFIG}test_configured_headers_are_on_every_response[error]",
            f"{CONFIG}test_configured_headers_are_on_every_response[unauthorized]",
        ),
        response=_omit_header,
        config="secured",
    ),
    Variant(
        "accepts a wrong password",
        (
            f"{CONFIG}test_htpasswd_challenges_requests_with_a_wrong_password[base]",
            f"{CONFIG}test_htpasswd_challenges_requests_with_a_wrong_password[upload-start]",
        ),
        request=_accept_wrong_password,
        config="secured",
    ),
    Variant(
        "answers 500 for an unknown blob",
        (f"{PULL}test_get_nonexistent_blob_should_result_in_404_response",),
        response=_unknown_blob_500,
    ),
    Variant(
        "finds a blob that does not exist",
        (f"{PULL}test_head_request_to_nonexistent_blob_should_result_in_404_response",),
        response=_missing_blob_found,
    ),
    Variant(
        "sends the upload Range with a unit",
        (
            f"{CHUNKED}test_patch_request_with_first_chunk_should_return_202",
            f"{EDGE}test_first_chunk_should_return_202",
            f"{EDGE}test_second_chunk_should_return_202_with_the_range_of_both",
            "test_push::TestBlobUploadStreamed::test_patch_request_with_blob_in_body_should_yield_202_response",
        ),
        response=_range_with_unit,
    ),
    Variant(
        "answers 200 for upload status",
        (
            f"{CHUNKED}test_get_on_stale_blob_upload_should_return_204_with_a_range_and_location",
            f"{EDGE}test_get_on_an_upload_without_data_should_return_204_with_an_empty_range",
            f"{EDGE}test_chunk_before_any_data_out_of_order_should_return_416",
            f"{EDGE}test_chunk_skipping_ahead_should_return_416",
            f"{EDGE}test_chunk_sent_twice_should_return_416",
            f"{EDGE}test_final_chunk_out_of_order_in_put_should_return_416",
        ),
        response=_upload_status_200,
    ),
    Variant(
        "accepts chunks out of order",
        (
            f"{CHUNKED}test_out_of_order_blob_upload_should_return_416",
            f"{CHUNKED}test_retry_previous_blob_chunk_should_return_416",
            f"{EDGE}test_chunk_before_any_data_out_of_order_should_return_416",
            f"{EDGE}test_chunk_skipping_ahead_should_return_416",
            f"{EDGE}test_chunk_sent_twice_should_return_416",
        ),
        response=_accept_any_chunk,
    ),
    Variant(
        "drops the final chunk of a PUT",
        (
            f"{EDGE}test_final_chunk_out_of_order_in_put_should_return_416",
            f"{EDGE}test_final_chunk_in_put_should_return_201",
        ),
        request=_drop_final_chunk,
    ),
    Variant(
        "advertises a minimum chunk length that is no number",
        (f"{EDGE}test_minimum_chunk_length_is_a_number",),
        response=_min_length_not_a_number,
    ),
    Variant(
        "opens a session without Location",
        (f"{MONOLITHIC}test_post_request_should_yield_a_session_id",),
        response=_session_without_location,
    ),
    Variant(
        "lists tags unsorted",
        (f"{TAGS}test_get_request_to_list_tags_should_yield_200_response_and_be_in_sorted_order",),
        response=_unsorted_tags,
    ),
    Variant(
        "cuts a page short without Link",
        (f"{TAGS}test_get_number_of_tags_should_be_limitable_by_n_query_parameter",),
        response=_short_page,
    ),
    Variant("names the wrong OCI-Subject", (REFERRERS_SETUP,), response=_wrong_subject),
    Variant(
        "gives untyped indexes an artifactType",
        (f"{REFERRERS}test_get_request_to_existing_blob_should_yield_200",),
        response=_invent_artifact_types,
    ),
    Variant(
        "answers 404 to a malformed referrers digest",
        (f"{REFERRERS}test_get_request_with_an_invalid_digest_should_yield_400",),
        response=_malformed_referrers_404,
    ),
    Variant(
        "serves manifests as application/json",
        ("test_docker::TestAcceptNegotiation::test_manifest_is_served_as_pushed[oci]",),
        response=_manifest_as_json,
    ),
    Variant("pretends to delete tags", (TAG_GONE,), request=_pretend_tag_delete),
    Variant(
        "refuses deletes it is configured to allow",
        (
            f"{CONFIG}test_deletes_follow_storage_delete_enabled[manifest]",
            f"{CONFIG}test_deletes_follow_storage_delete_enabled[blob]",
        ),
        request=_refuse_deletes,
        config="secured",
    ),
    Variant(
        "challenges without WWW-Authenticate",
        (
            f"{CONFIG}test_htpasswd_challenges_requests_without_credentials[base]",
            f"{CONFIG}test_htpasswd_challenges_requests_without_credentials[manifest-put]",
        ),
        response=_challenge_without_header,
        config="secured",
    ),
    Variant(
        "corrupts blobs",
        (
            f"{HEADER_CHECKS}test_blob_get_returns_content_and_digest",
            f"{PULL}test_get_request_to_existing_blob_url_should_yield_200",
            f"{MONOLITHIC}test_get_request_to_existing_blob_should_yield_200_response",
        ),
        response=_corrupt_blob,
    ),
    Variant(
        "cuts blob bodies short",
        (f"{PULL}test_get_request_to_existing_blob_url_should_yield_200",),
        response=_cut_blob_short,
    ),
    Variant(
        "refuses empty blobs", (f"{EMPTY}test_zero_byte_blob_push_and_pull",), request=_refuse_empty_blob
    ),
    Variant(
        "serves the empty JSON blob empty",
        (f"{EMPTY}test_empty_json_blob_push_and_pull",),
        response=_empty_json_as_nothing,
    ),
    Variant(
        "refuses artifacts made of the empty descriptor",
        (f"{EMPTY}test_artifact_with_the_empty_descriptor_as_config_and_layer",),
        request=_refuse_empty_artifact,
    ),
]

#: Every check added with the verdict table; each must fail under some variant.
NEW_CHECKS = (
    *SERVED_RANGES,
    *REFUSED_RANGES,
    f"{MONOLITHIC}test_single_post_upload_stores_the_blob",
    f"{EDGE}test_minimum_chunk_length_is_a_number",
    f"{EDGE}test_get_on_an_upload_without_data_should_return_204_with_an_empty_range",
    f"{EDGE}test_chunk_before_any_data_out_of_order_should_return_416",
    f"{EDGE}test_first_chunk_should_return_202",
    f"{EDGE}test_chunk_skipping_ahead_should_return_416",
    f"{EDGE}test_chunk_sent_twice_should_return_416",
    f"{EDGE}test_second_chunk_should_return_202_with_the_range_of_both",
    f"{EDGE}test_final_chunk_out_of_order_in_put_should_return_416",
    f"{EDGE}test_final_chunk_in_put_should_return_201",
    f"{SHA512}test_sha512_blob_push_and_pull",
    f"{SHA512}test_sha512_chunked_upload",
    f"{SHA512}test_sha512_manifest_by_digest",
    f"{SHA512}test_sha512_index_by_digest",
    f"{EMPTY}test_empty_json_blob_push_and_pull",
    f"{EMPTY}test_zero_byte_blob_push_and_pull",
    f"{EMPTY}test_artifact_with_the_empty_descriptor_as_config_and_layer",
    *FILTERED,
    f"{REFERRERS}test_get_request_with_an_invalid_digest_should_yield_400",
    TAG_GONE,
    PACK_ARCHIVE,
)


# -- the counts ------------------------------------------------------------------------------------------


def test_every_row_has_a_variant_that_fails_where_the_row_is_optional() -> None:
    missing = [
        row.key
        for row in TABLE
        if any(p not in row.required_in for p in PROFILES)
        and not any(v.row == row.key and v.fails and v.profile not in row.required_in for v in VARIANTS)
    ]
    assert not missing, f"rows without a variant that fails while the feature is optional: {missing}"


def test_every_required_row_has_a_variant_that_fails_by_declining() -> None:
    missing = [
        (row.key, profile)
        for row in TABLE
        for profile in row.required_in
        if not any(v.row == row.key and v.fails and v.profile in row.required_in for v in VARIANTS)
    ]
    assert not missing, f"required rows without a variant that declines them and fails: {missing}"


def test_every_variant_names_a_row_of_the_table() -> None:
    rows = {row.key for row in TABLE}
    assert {v.row for v in VARIANTS if v.row is not None} == rows
    assert len({v.name for v in VARIANTS}) == len(VARIANTS), "two variants share a name"


def test_every_new_check_has_a_variant_that_fails_it() -> None:
    failing = {name for variant in VARIANTS for name in variant.fails}
    assert not [name for name in NEW_CHECKS if name not in failing]


# -- running the suite ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | None]:
    """``plain``: the emulator's development default; ``secured``: a file with htpasswd and headers."""
    directory = tmp_path_factory.mktemp("secured")
    htpasswd = write_htpasswd(directory / "htpasswd", {USER: PASSWORD})
    document = {
        "version": "0.1",
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"inmemory": {}, "delete": {"enabled": True}},
        "http": {"headers": HEADERS},
        "auth": {"htpasswd": {"realm": REALM, "path": str(htpasswd)}},
    }
    secured = directory / "config.yml"
    secured.write_text(yaml.safe_dump(document))
    return {"plain": None, "secured": secured}


def suite_args(config: Path | None, profile: str = "oci") -> list[str]:
    args = [f"--pax-registry-profile={profile}"]
    if config is None:
        return args
    return [
        *args,
        f"--pax-registry-config={config}",
        f"--pax-registry-username={USER}",
        f"--pax-registry-password={PASSWORD}",
    ]


def node(name: str) -> str:
    module, rest = name.split("::", 1)
    return f"{module}.py::{rest}"


def serve_and_run(
    app: WSGIApplication, config: Path | None, select: t.Sequence[str] = (), profile: str = "oci"
) -> SuiteResult:
    with emulator.serve_wsgi(app) as server:
        return run(server.url, select=select, args=suite_args(config, profile))


def emulator_app(config: Path | None) -> WSGIApplication:
    return t.cast("WSGIApplication", emulator.make_app(emulator.load_config(config)))


@pytest.mark.parametrize("variant", VARIANTS, ids=[variant.name.replace(" ", "-") for variant in VARIANTS])
def test_broken_registry_fails_the_matching_checks(variant: Variant, configs: dict[str, Path | None]) -> None:
    config = configs[variant.config]
    selected = [node(name) for name in variant.checks]
    result = serve_and_run(variant.wrap(emulator_app(config)), config, selected, variant.profile)
    assert set(variant.fails) <= result.failed, result.output[-6000:]
    assert set(variant.unsupported) <= set(result.unsupported), result.output[-6000:]


def clean(result: SuiteResult) -> None:
    assert not result.failed, result.output[-6000:]
    assert not result.unsupported, result.unsupported


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("config_name", ["plain", "secured"])
def test_sound_registry_behind_a_neutral_middleware_passes(
    config_name: str, profile: str, configs: dict[str, Path | None]
) -> None:
    config = configs[config_name]
    clean(serve_and_run(broken(emulator_app(config), None, None), config, profile=profile))


@pytest.mark.parametrize("profile", PROFILES)
def test_in_process_emulator_passes(profile: str) -> None:
    clean(run(args=suite_args(None, profile)))


@pytest.mark.parametrize("profile", PROFILES)
def test_emulator_process_passes(profile: str, configs: dict[str, Path | None]) -> None:
    config = configs["secured"]
    with RegistryProcess(config) as registry:
        clean(run(registry.url, args=suite_args(config, profile)))
