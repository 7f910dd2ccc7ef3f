"""The conformance suite notices broken registries, and passes a sound one.

Each variant puts a WSGI middleware in front of the emulator that breaks exactly one rule (drops a header,
answers 200 for 201, ignores ``last``, accepts a wrong password, ...). The suite runs, in a child
``pytest``, the checks that guard that rule, and every one of them must fail. The controls run the whole
suite against the unbroken emulator: in process, served behind a do-nothing middleware, and as a
``python -m emulator serve`` process, with 0 failures and 0 unsupported features.
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

from conformance.runner import SuiteResult
from conformance.runner import run
from fixtures.distribution import write_htpasswd

emulator = pytest.importorskip("emulator")
if not hasattr(emulator, "serve_wsgi") or not hasattr(emulator, "make_app"):
    pytest.skip("the emulator cannot serve a WSGI app yet", allow_module_level=True)

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

USER, PASSWORD = "conformance", "right password"
REALM = "pax realm"
HEADERS = {"X-Content-Type-Options": ["nosniff"], "X-Frame-Options": ["DENY"]}
DUMMY_DIGEST = "sha256:" + hashlib.sha256(b"hello world").hexdigest()


# -- a toolkit for breaking a WSGI app ------------------------------------------------------------------


@dataclasses.dataclass
class Reply:
    """A whole response, buffered so that a middleware can change any part of it."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes

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
            reply.set("Content-Length", str(len(reply.body)))
        start_response(reply.status, reply.headers)
        return [reply.body]

    return middleware


def path(environ: WSGIEnvironment) -> str:
    return str(environ.get("PATH_INFO", ""))


def method(environ: WSGIEnvironment) -> str:
    return str(environ["REQUEST_METHOD"])


def edit_query(environ: WSGIEnvironment, **changes: str | None) -> None:
    query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    environ["QUERY_STRING"] = urllib.parse.urlencode(query)


def is_blob(environ: WSGIEnvironment) -> bool:
    return "/blobs/sha256:" in path(environ)


def is_upload(environ: WSGIEnvironment) -> bool:
    return "/blobs/uploads/" in path(environ)


# -- the variants ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    #: The checks that must fail, as the runner names them.
    fails: tuple[str, ...]
    request: RequestEdit | None = None
    response: ResponseEdit | None = None
    #: ``secured`` runs the emulator with htpasswd and configured headers, and the suite with its config.
    config: str = "plain"

    def wrap(self, app: WSGIApplication) -> WSGIApplication:
        return broken(app, self.request, self.response)


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
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if body:
            # Claim whatever digest the content has, so the registry can never see a mismatch.
            edit_query(environ, digest="sha256:" + hashlib.sha256(body).hexdigest())
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))


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


def _referrers_as_json(environ: WSGIEnvironment, reply: Reply) -> None:
    if "/referrers/" in path(environ):
        reply.set("Content-Type", "application/json")


def _filter_ignored(environ: WSGIEnvironment) -> None:
    if "/referrers/" in path(environ):
        edit_query(environ, artifactType=None)


def _filter_claimed(environ: WSGIEnvironment, reply: Reply) -> None:
    if "/referrers/" in path(environ):
        reply.set("OCI-Filters-Applied", "artifactType")


def _wrong_subject(environ: WSGIEnvironment, reply: Reply) -> None:
    if reply.get("OCI-Subject"):
        reply.set("OCI-Subject", DUMMY_DIGEST)


def _drop_api_version(environ: WSGIEnvironment, reply: Reply) -> None:
    reply.drop("Docker-Distribution-API-Version")


def _ignore_if_none_match(environ: WSGIEnvironment) -> None:
    environ.pop("HTTP_IF_NONE_MATCH", None)


def _manifest_as_json(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "GET" and "/manifests/" in path(environ) and reply.code == 200:
        reply.set("Content-Type", "application/json")


def _delete_200(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "DELETE" and "/manifests/" in path(environ) and reply.code == 202:
        _status(reply, "200 OK")


def _health_down(environ: WSGIEnvironment, reply: Reply) -> None:
    if path(environ) == "/health":
        reply.body = b'{"status":"DOWN"}'


def _v1_type_ignored(environ: WSGIEnvironment, reply: Reply) -> None:
    if path(environ).startswith("/v1/") and is_blob(environ):
        reply.set("Content-Type", "application/octet-stream")


def _challenge_without_header(environ: WSGIEnvironment, reply: Reply) -> None:
    if reply.code == 401:
        reply.drop("WWW-Authenticate")


def _mount_elsewhere(environ: WSGIEnvironment, reply: Reply) -> None:
    location = reply.get("Location")
    if method(environ) == "POST" and "mount=" in str(environ.get("QUERY_STRING")) and reply.code == 201:
        assert location is not None
        reply.set("Location", location.replace("/blobs/", "/elsewhere/blobs/"))


def _wrong_digest_header(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "HEAD" and is_blob(environ) and reply.code == 200:
        reply.set("Docker-Content-Digest", DUMMY_DIGEST)


def _corrupt_blob(environ: WSGIEnvironment, reply: Reply) -> None:
    if method(environ) == "GET" and is_blob(environ) and reply.code == 200 and reply.body:
        reply.body = bytes([reply.body[0] ^ 0xFF]) + reply.body[1:]


def _pretend_delete(kind: str) -> RequestEdit:
    def edit(environ: WSGIEnvironment) -> Reply | None:
        if method(environ) == "DELETE" and f"/{kind}/sha256:" in path(environ):
            return Reply("202 Accepted", [], b"")
        return None

    return edit


def _lowercase_codes(environ: WSGIEnvironment, reply: Reply) -> None:
    if reply.code == 404 and reply.body.startswith(b"{"):
        document = json.loads(reply.body)
        for error in document.get("errors", []):
            error["code"] = str(error.get("code", "")).lower()
        reply.body = json.dumps(document).encode()


def _refuse_deletes(environ: WSGIEnvironment) -> Reply | None:
    if method(environ) == "DELETE" and not is_upload(environ):
        body = b'{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}'
        return Reply("405 Method Not Allowed", [("Content-Type", "application/json")], body)
    return None


PULL = "test_pull::TestPullBlobs::"
CHUNKED = "test_push::TestBlobUploadChunked::"
TAGS = "test_discovery::TestListingTags::"
REFERRERS = "test_discovery::TestListingReferences::"
HEADER_CHECKS = "test_docker::TestHeaders::"
CONFIG = "test_config::"

VARIANTS = [
    Variant(
        "drops Docker-Content-Digest",
        (
            f"{HEADER_CHECKS}test_manifest_put_returns_docker_content_digest",
            f"{HEADER_CHECKS}test_blob_head_reports_size_and_digest",
        ),
        response=_drop_dcd,
    ),
    Variant(
        "answers 200 for 201",
        ("test_push::TestBlobUploadMonolithic::test_put_upload_of_a_blob_should_yield_a_201_response",),
        response=_put_200,
    ),
    Variant(
        "ignores last", (f"{TAGS}test_get_start_of_tag_is_set_by_last_query_parameter",), request=_ignore_last
    ),
    Variant(
        "forgets the catalog Link",
        ("test_docker::TestCatalog::test_catalog_n_limits_the_page_and_links_the_next",),
        response=_catalog_without_link,
    ),
    Variant(
        "serves a wrong Content-Range",
        ("test_docker::TestRangeRequests::test_blob_range_answers_206_with_content_range",),
        response=_wrong_content_range,
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
        (f"{CHUNKED}test_patch_request_with_first_chunk_should_return_202",),
        response=_range_with_unit,
    ),
    Variant(
        "answers 200 for upload status",
        (f"{CHUNKED}test_get_on_stale_blob_upload_should_return_204_with_a_range_and_location",),
        response=_upload_status_200,
    ),
    Variant(
        "accepts chunks out of order",
        (
            f"{CHUNKED}test_out_of_order_blob_upload_should_return_416",
            f"{CHUNKED}test_retry_previous_blob_chunk_should_return_416",
        ),
        response=_accept_any_chunk,
    ),
    Variant(
        "opens a session without Location",
        ("test_push::TestBlobUploadMonolithic::test_post_request_should_yield_a_session_id",),
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
    Variant(
        "serves referrers as plain JSON",
        (f"{REFERRERS}test_get_request_to_nonexistent_blob_should_result_in_empty_200_response",),
        response=_referrers_as_json,
    ),
    Variant(
        "claims a filter it did not apply",
        (f"{REFERRERS}test_get_request_to_existing_blob_with_filter_should_yield_200",),
        request=_filter_ignored,
        response=_filter_claimed,
    ),
    Variant(
        "names the wrong OCI-Subject",
        ("test_discovery::TestSetup::test_references_setup",),
        response=_wrong_subject,
    ),
    Variant(
        "drops the API version header",
        (
            "test_docker::TestApiVersion::test_base_answers_200_with_api_version_header",
            "test_docker::TestApiVersion::test_errors_carry_api_version_header",
        ),
        response=_drop_api_version,
    ),
    Variant(
        "ignores If-None-Match",
        (
            "test_docker::TestConditionalRequests::test_manifest_if_none_match_answers_304[tag]",
            "test_docker::TestConditionalRequests::test_blob_if_none_match_answers_304",
        ),
        request=_ignore_if_none_match,
    ),
    Variant(
        "serves manifests as application/json",
        ("test_docker::TestAcceptNegotiation::test_manifest_is_served_as_pushed[oci]",),
        response=_manifest_as_json,
    ),
    Variant(
        "answers 200 for a manifest delete",
        (
            "test_management::TestManifestDelete::"
            "test_delete_request_to_manifest_digest_should_yield_202_response_unless_already_deleted",
        ),
        response=_delete_200,
    ),
    Variant(
        "pretends to delete manifests",
        (
            "test_management::TestManifestDelete::"
            "test_get_request_to_deleted_manifest_url_should_yield_404_response_unless_delete_is_disallowed",
        ),
        request=_pretend_delete("manifests"),
    ),
    Variant(
        "pretends to delete blobs",
        ("test_management::TestBlobDelete::test_get_request_to_deleted_blob_url_should_yield_404_response",),
        request=_pretend_delete("blobs"),
    ),
    Variant(
        "refuses deletes it is configured to allow",
        (
            f"{CONFIG}test_deletes_follow_storage_delete_enabled[manifest]",
            f"{CONFIG}test_deletes_follow_storage_delete_enabled[blob]",
        ),
        request=_refuse_deletes,
        config="secured",
    ),
    Variant("reports health DOWN", ("test_pack::test_health_answers_up",), response=_health_down),
    Variant(
        "ignores the ?type of a /v1/ blob",
        ("test_pack::test_v1_blob_is_served_with_the_requested_type",),
        response=_v1_type_ignored,
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
        "mounts to the wrong Location",
        (
            "test_push::TestCrossRepositoryBlobMount::"
            "test_get_request_to_test_digest_within_cross_mount_namespace_should_return_200",
        ),
        response=_mount_elsewhere,
    ),
    Variant(
        "names the wrong digest on HEAD",
        (f"{PULL}test_head_request_to_existing_blob_should_yield_200",),
        response=_wrong_digest_header,
    ),
    Variant(
        "corrupts blobs",
        (f"{HEADER_CHECKS}test_blob_get_returns_content_and_digest",),
        response=_corrupt_blob,
    ),
    Variant(
        "writes error codes in lower case",
        ("test_docker::TestErrorBodies::test_unknown_blob_is_blob_unknown",),
        response=_lowercase_codes,
    ),
]


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


def suite_args(config: Path | None) -> list[str]:
    if config is None:
        return []
    return [
        f"--pax-registry-config={config}",
        f"--pax-registry-username={USER}",
        f"--pax-registry-password={PASSWORD}",
    ]


def node(name: str) -> str:
    module, rest = name.split("::", 1)
    return f"{module}.py::{rest}"


def serve_and_run(app: WSGIApplication, config: Path | None, select: t.Sequence[str] = ()) -> SuiteResult:
    with emulator.serve_wsgi(app) as server:
        return run(server.url, select=select, args=suite_args(config))


def emulator_app(config: Path | None) -> WSGIApplication:
    return t.cast("WSGIApplication", emulator.make_app(emulator.load_config(config)))


@pytest.mark.parametrize("variant", VARIANTS, ids=[variant.name.replace(" ", "-") for variant in VARIANTS])
def test_broken_registry_fails_the_matching_checks(variant: Variant, configs: dict[str, Path | None]) -> None:
    config = configs[variant.config]
    result = serve_and_run(variant.wrap(emulator_app(config)), config, [node(name) for name in variant.fails])
    assert set(variant.fails) <= result.failed, result.output[-6000:]


def clean(result: SuiteResult) -> None:
    assert not result.failed, result.output[-6000:]
    assert not result.unsupported, result.unsupported


@pytest.mark.parametrize("config_name", ["plain", "secured"])
def test_sound_registry_behind_a_neutral_middleware_passes(
    config_name: str, configs: dict[str, Path | None]
) -> None:
    config = configs[config_name]
    clean(serve_and_run(broken(emulator_app(config), None, None), config))


def test_in_process_emulator_passes() -> None:
    clean(run())


def test_emulator_process_passes(configs: dict[str, Path | None]) -> None:
    process = pytest.importorskip("fixtures.process")
    config = configs["secured"]
    with process.RegistryProcess(config) as registry:
        clean(run(registry.url, args=suite_args(config)))
