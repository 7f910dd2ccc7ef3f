"""The verdict table: the only features a registry may lack, and how a check tells that it lacks one.

A check passes or fails. It ends as *unsupported* only through a row of :data:`TABLE`, by calling
:func:`end_if_not_offered` with the response that may decline the feature: each row names a feature the
specification lets a registry lack (a MAY or SHOULD of distribution-spec 1.1 or of the image spec, a
feature the spec lets a registry switch off such as deletion, or a Docker or pack registry behaviour
outside OCI), and exactly which responses mean "not offered". A profile may require the feature: then
the same response fails the check. Any other response is judged by the check's own assertions, so a
broken implementation of an optional feature fails like a broken MUST.

Profiles (``--pax-registry-profile``): ``oci`` requires distribution-spec 1.1 and nothing else,
``docker`` also requires what Docker's registry (distribution) offers beyond OCI, ``pack`` also requires
the Spectro Cloud pack registry's surface. :func:`markdown` renders the table the README shows.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing as t

import pytest

from conformance.client import error_codes
from conformance.client import path_of
from conformance.plugin import PROFILES as plugin_profiles
from conformance.plugin import UNSUPPORTED

if t.TYPE_CHECKING:
    import requests

__all__ = [
    "PROFILES",
    "ROWS",
    "TABLE",
    "Row",
    "end_if_not_offered",
    "markdown",
    "profile_of",
    "required",
]

#: Every profile, the default first.
#: The profiles, the default first: the plugin's option declares them.
PROFILES = tuple(plugin_profiles)
ALL = frozenset(PROFILES)
DOCKER = frozenset({"docker"})
PACK = frozenset({"pack"})
NONE: frozenset[str] = frozenset()

DS = "distribution-spec 1.1"
DS_MAIN = "distribution-spec main (unreleased)"
IMAGE_SPEC = "image-spec 1.1"
DOCKER_API = "Docker Registry HTTP API v2 (distribution `docs/spec/api.md`)"
PALETTE = "Palette pack registry docs"


def profile_of(config: pytest.Config) -> str:
    """The profile the run judges by (``--pax-registry-profile``, ``oci`` when the option is absent)."""
    return str(config.getoption("pax_registry_profile", "oci") or "oci")


# -- what "not offered" looks like ---------------------------------------------------------------------


def _header(response: requests.Response, name: str) -> str | None:
    return response.headers.get(name)


def _is_json(response: requests.Response) -> bool:
    try:
        json.loads(response.content)
    except ValueError:
        return False
    return True


def _is_index(response: requests.Response) -> bool:
    try:
        document = json.loads(response.content)
    except ValueError:
        return False
    return isinstance(document, dict) and isinstance(document.get("manifests"), list)


def _session(response: requests.Response) -> bool:
    """A 202 that opens an upload session instead of doing what was asked."""
    return response.status_code == 202 and bool(_header(response, "Location"))


def _refused_delete(response: requests.Response) -> bool:
    """The refusals the spec allows when deletes are off: 405, or 400 that says ``UNSUPPORTED``."""
    if response.status_code == 405:
        return True
    return response.status_code == 400 and "UNSUPPORTED" in error_codes(response)


def _referrers_absent(response: requests.Response) -> bool:
    return response.status_code == 404 and not _is_index(response)


def _unfiltered(response: requests.Response) -> bool:
    return response.status_code == 200 and _header(response, "OCI-Filters-Applied") is None


def _without(name: str) -> t.Callable[[requests.Response], bool]:
    def declined(response: requests.Response) -> bool:
        return 200 <= response.status_code < 300 and _header(response, name) is None

    return declined


def _whole_blob(response: requests.Response) -> bool:
    return response.status_code == 200 and _header(response, "Content-Range") is None


def _algorithm_refused(response: requests.Response) -> bool:
    if response.status_code != 400:
        return False
    codes = error_codes(response)
    return not codes or bool({"DIGEST_INVALID", "UNSUPPORTED"} & set(codes))


def _route_absent(response: requests.Response) -> bool:
    return response.status_code in (404, 405)


def _not_found(response: requests.Response) -> bool:
    return response.status_code == 404


def _not_accepted_type(response: requests.Response) -> bool:
    """A 200 whose ``Content-Type`` is not one the request's ``Accept`` named."""
    if response.status_code != 200:
        return False
    accept = str(response.request.headers.get("Accept", ""))
    accepted = {part.split(";", 1)[0].strip() for part in accept.split(",")}
    served = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
    return served not in accepted


def _not_json_error(response: requests.Response) -> bool:
    return 400 <= response.status_code < 500 and not _is_json(response)


def _accepted(response: requests.Response) -> bool:
    return response.status_code == 201


def _method_not_allowed(response: requests.Response) -> bool:
    return response.status_code == 405


def _name_refused(response: requests.Response) -> bool:
    return response.request.method == "POST" and response.status_code in (400, 403, 404)


def _no_api_version(response: requests.Response) -> bool:
    return _header(response, "Docker-Distribution-API-Version") is None


# -- the table -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    """A feature a registry may lack, and the responses that say it does."""

    #: The name checks use (``end_if_not_offered("referrers", ...)``).
    key: str
    #: What the feature is, as reports name it.
    feature: str
    #: The requirement level the spec gives it.
    keyword: str
    #: Where the spec says so.
    section: str
    #: The spec's words that let a registry lack it (or, for a required row, that require it).
    quote: str
    #: Profiles under which lacking it fails.
    required_in: frozenset[str]
    #: Exactly which responses mean "not offered", in words.
    not_offered: str
    #: The same, as a test on the response.
    declined: t.Callable[[requests.Response], bool]


TABLE: tuple[Row, ...] = (
    Row(
        key="referrers",
        feature="referrers API",
        keyword="MUST (claimed category)",
        section=f"{DS} §Requirements, §Listing Referrers",
        quote="A registry claiming conformance with one of these specification categories MUST implement "
        "all APIs in the claimed category.",
        required_in=ALL,
        not_offered="404 to `GET /v2/<name>/referrers/<digest>` without an OCI image index body (and so no "
        "`OCI-Subject` on manifest PUTs)",
        declined=_referrers_absent,
    ),
    Row(
        key="referrers-filter",
        feature="referrers filtering by artifactType",
        keyword="SHOULD",
        section=f"{DS} §Listing Referrers",
        quote="The registry SHOULD support filtering on `artifactType`.",
        required_in=NONE,
        not_offered="200 to `?artifactType=` without `OCI-Filters-Applied`, listing every referrer",
        declined=_unfiltered,
    ),
    Row(
        key="single-post",
        feature="single-POST blob upload",
        keyword="MAY",
        section=f"{DS} §Single POST",
        quote="Registries MAY support pushing blobs using a single POST request.",
        required_in=NONE,
        not_offered="202 with a `Location` (an upload session) to `POST /v2/<name>/blobs/uploads/?digest=`",
        declined=_session,
    ),
    Row(
        key="mount",
        feature="cross-repository blob mount",
        keyword="SHOULD (202 if not)",
        section=f"{DS} §Mounting a blob from another repository",
        quote="if a registry does not support cross-repository mounting or is unable to mount the requested "
        "blob, it SHOULD return a `202`.",
        required_in=DOCKER,
        not_offered="202 with a `Location` to `POST ?mount=<digest>&from=<repo>` for a blob `<repo>` has",
        declined=_session,
    ),
    Row(
        key="automatic-mount",
        feature="cross-repository mount without 'from'",
        keyword="MAY",
        section=f"{DS} §Mounting a blob from another repository",
        quote="The registry MAY treat the `from` parameter as optional, and it MAY cross-mount the blob if "
        "it can be found.",
        required_in=NONE,
        not_offered="202 with a `Location` to `POST ?mount=<digest>` (no `from`) for a blob the registry has",
        declined=_session,
    ),
    Row(
        key="sha512",
        feature="sha512 digests",
        keyword="MAY",
        section=f"{IMAGE_SPEC} §Digests (SHA-512); {DS_MAIN} §Pushing blobs",
        quote="Implementations MAY implement SHA-512 digest verification for use in descriptors.",
        required_in=NONE,
        not_offered="400 with `DIGEST_INVALID`, `UNSUPPORTED` or no error code to the PUT that closes a "
        "sha512 upload or pushes a manifest by its sha512 digest",
        declined=_algorithm_refused,
    ),
    Row(
        key="blob-range",
        feature="Range requests on blobs",
        keyword="SHOULD",
        section=f"{DS} §Pulling blobs",
        quote="A registry SHOULD support the `Range` request header in accordance with RFC 9110.",
        required_in=DOCKER,
        not_offered="200 without `Content-Range` to `GET /v2/<name>/blobs/<digest>` with "
        "`Range: bytes=500-1499` (the check first asserts the whole blob came back)",
        declined=_whole_blob,
    ),
    Row(
        key="digest-header",
        feature="Docker-Content-Digest header",
        keyword="SHOULD",
        section=f"{DS} §Pulling manifests, §Pulling blobs, §Checking if content exists",
        quote="A successful response SHOULD contain the digest of the uploaded blob in the header "
        "`Docker-Content-Digest`.",
        required_in=DOCKER,
        not_offered="a 2xx to a blob or manifest GET or HEAD, or to a manifest PUT, without "
        "`Docker-Content-Digest` (when present it must be a digest of the content)",
        declined=_without("Docker-Content-Digest"),
    ),
    Row(
        key="head-size",
        feature="Content-Length on HEAD",
        keyword="SHOULD",
        section=f"{DS} §Checking if content exists",
        quote="A successful response SHOULD contain the size in bytes of the uploaded blob in the header "
        "`Content-Length`.",
        required_in=DOCKER,
        not_offered="200 to a blob or manifest HEAD without `Content-Length` (when present it must be the "
        "size)",
        declined=_without("Content-Length"),
    ),
    Row(
        key="tag-delete",
        feature="tag deletion",
        keyword="MAY",
        section=f"{DS} §Content Management, §Deleting tags",
        quote="a registry MAY implement tag deletion, while others MAY allow deletion only by manifest. If "
        "tag deletion is disabled, the registry MUST respond with either a `400 Bad Request` or a `405`.",
        required_in=NONE,
        not_offered="405, or 400 with an `UNSUPPORTED` error code, to `DELETE /v2/<name>/manifests/<tag>`",
        declined=_refused_delete,
    ),
    Row(
        key="manifest-delete",
        feature="manifest deletion",
        keyword="MAY",
        section=f"{DS} §Content Management, §Deleting Manifests",
        quote="Registries MAY implement deletion or they MAY disable it.",
        required_in=NONE,
        not_offered="405, or 400 with an `UNSUPPORTED` error code, to `DELETE /v2/<name>/manifests/<digest>`",
        declined=_refused_delete,
    ),
    Row(
        key="blob-delete",
        feature="blob deletion",
        keyword="MAY",
        section=f"{DS} §Content Management, §Deleting Blobs",
        quote="Registries MAY implement deletion or they MAY disable it.",
        required_in=NONE,
        not_offered="405, or 400 with an `UNSUPPORTED` error code, to `DELETE /v2/<name>/blobs/<digest>`",
        declined=_refused_delete,
    ),
    Row(
        key="error-bodies",
        feature="JSON error bodies",
        keyword="MAY",
        section=f"{DS} §Error Codes; {DOCKER_API} §Errors",
        quote="A `4XX` response code from the registry MAY return a body in any format.",
        required_in=DOCKER,
        not_offered='a 4xx whose body is not JSON (a JSON body must be `{"errors": [...]}` with the '
        "expected code)",
        declined=_not_json_error,
    ),
    Row(
        key="manifest-blob-check",
        feature="rejecting manifests that name unknown blobs",
        keyword="MAY",
        section=f"{DS} §Push",
        quote="A registry MAY reject a manifest uploaded to the manifest endpoint with descriptors in other "
        "fields that reference a manifest or blob that does not exist in the registry.",
        required_in=DOCKER,
        not_offered="201 to a manifest PUT whose layer the registry does not have",
        declined=_accepted,
    ),
    Row(
        key="upload-cancel",
        feature="upload cancellation",
        keyword="SHOULD (unreleased)",
        section=f"{DS_MAIN} §Cancel a blob upload; {DOCKER_API} §Canceling an Upload",
        quote="If successful, the response SHOULD be a `204 No Content` response code.",
        required_in=DOCKER,
        not_offered="405 to `DELETE` on the `Location` of a session just opened",
        declined=_method_not_allowed,
    ),
    Row(
        key="api-version-header",
        feature="Docker-Distribution-API-Version header",
        keyword="OPTIONAL",
        section=f"{DS} §Legacy Docker support HTTP headers; {DOCKER_API} §API Version Check",
        quote="the client MAY encounter Docker-specific headers, such as `Docker-Content-Digest`, or "
        "`Docker-Distribution-API-Version`. These headers are OPTIONAL.",
        required_in=DOCKER,
        not_offered="a response without `Docker-Distribution-API-Version` (when present it must be "
        "`registry/2.0`)",
        declined=_no_api_version,
    ),
    Row(
        key="catalog",
        feature="repository catalog",
        keyword="not in OCI",
        section=f"{DOCKER_API} §Listing Repositories",
        quote="`_catalog` is no valid `<name>`, so a registry without it answers as for any unknown route.",
        required_in=DOCKER,
        not_offered="404 or 405 to `GET /v2/_catalog` (401 and 403 fail: the route exists and refused the "
        "suite's credentials)",
        declined=_route_absent,
    ),
    Row(
        key="etag",
        feature="ETag and If-None-Match",
        keyword="not in OCI",
        section=f"{DOCKER_API} §Pulling an Image Manifest; RFC 9110 §8.8.3, §13.1.2",
        quote='distribution sends `ETag: "<digest>"` and answers a matching `If-None-Match` with 304.',
        required_in=DOCKER,
        not_offered="a 2xx to a manifest or blob GET without `ETag`",
        declined=_without("ETag"),
    ),
    Row(
        key="accept-negotiation",
        feature="Docker Accept negotiation and manifest-list resolution",
        keyword="not in OCI",
        section=f"{DS} §Pulling manifests (SHOULD send Accept); {DOCKER_API} §Manifest",
        quote="content negotiation is not specified by OCI (`content-negotiation.md` is a placeholder).",
        required_in=DOCKER,
        not_offered="200 whose `Content-Type` is not among the request's `Accept` types (the stored manifest "
        "served whatever the client accepts)",
        declined=_not_accepted_type,
    ),
    Row(
        key="pack-health",
        feature="pack registry health endpoint",
        keyword="pack registry",
        section=f"{PALETTE} (deploy-pack)",
        quote='You should get a `{"status":"UP"}` response.',
        required_in=PACK,
        not_offered="404 to `GET /health`",
        declined=_not_found,
    ),
    Row(
        key="pack-v1",
        feature="pack registry /v1/ API",
        keyword="pack registry",
        section=f"{PALETTE} (adding a custom registry)",
        quote="You can now access the pack registry at `https://<host>/v1/`.",
        required_in=PACK,
        not_offered="404 to `GET /v1/`",
        declined=_not_found,
    ),
    Row(
        key="pack-archive",
        feature="pack archive repositories (spectro-packs/archive/)",
        keyword="pack registry",
        section=f"{PALETTE} (OCI pack registries)",
        quote="Make sure to include the spectro-packs/archive path in all your repositories.",
        required_in=PACK,
        not_offered="400, 403 or 404 to the POST that opens an upload under "
        "`<namespace>/spectro-packs/archive/<pack>`",
        declined=_name_refused,
    ),
)

#: The rows by key.
ROWS: dict[str, Row] = {row.key: row for row in TABLE}


def required(key: str, profile: str) -> bool:
    """Whether the profile requires the feature of row ``key``."""
    return profile in ROWS[key].required_in


#: A digest's hex part beyond its first 12 characters: enough to tell digests apart in a message.
_LONG_HEX = re.compile(r"(?<=:)([0-9a-f]{12})[0-9a-f]{20,}")


def _evidence(response: requests.Response) -> str:
    request = response.request
    codes = " ".join(error_codes(response))
    status = f"{response.status_code} {codes}".strip()
    where = _LONG_HEX.sub(r"\1...", path_of(request.url or ""))
    return f"{request.method} {where} answered {status}"


def end_if_not_offered(key: str, response: requests.Response, profile: str) -> None:
    """End the check when ``response`` is how the registry declines the feature of row ``key``.

    It ends as *unsupported* when ``profile`` lets the registry lack the feature, and fails when the
    profile requires it. Any other response returns: the check's own assertions judge it.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; profiles are {', '.join(PROFILES)}")
    row = ROWS[key]
    if not row.declined(response):
        return
    evidence = _evidence(response)
    if profile in row.required_in:
        pytest.fail(
            f"{row.feature} is required under the {profile} profile ({row.section}), but {evidence}",
            pytrace=False,
        )
    pytest.skip(f"{UNSUPPORTED} {row.feature} ({evidence})")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown() -> str:
    """The table as the README shows it (between its ``verdicts`` markers)."""
    lines = [
        "| Feature | Keyword | Section | Required by | Not offered (unsupported unless required) |",
        "|---|---|---|---|---|",
    ]
    for row in TABLE:
        profiles = ", ".join(p for p in PROFILES if p in row.required_in) or "none"
        cells = (row.feature, row.keyword, row.section, profiles, row.not_offered)
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
