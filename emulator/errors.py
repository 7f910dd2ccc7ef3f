"""The registry's error vocabulary: every failure a client sees is one of these.

Each class is a Werkzeug :class:`~werkzeug.exceptions.HTTPException` that renders as the spec's JSON
body ``{"errors": [{"code", "message", "detail"}]}`` with its status. The app, the handlers and the
authenticator raise them; the storage raises the problems of :mod:`emulator.storage.errors` instead,
which :func:`error_for` turns into these through the one table :data:`PROBLEMS`.
"""

from __future__ import annotations

import json
import typing as t

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from .storage import errors as problems

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

#: distribution 2.8 answers errors with this exact Content-Type; some clients compare it.
JSON_CONTENT_TYPE = "application/json; charset=utf-8"


class RegistryError(HTTPException):
    """An error with an OCI (or distribution) error code."""

    code = 500
    error_code = "UNKNOWN"
    message = "unknown error"

    def __init__(
        self,
        detail: t.Any = None,
        *,
        message: str | None = None,
        headers: t.Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(description=message or self.message)
        self.detail = detail
        self.extra_headers = dict(headers or {})
        if message is not None:
            self.message = message

    def to_dict(self) -> dict[str, t.Any]:
        return {"code": self.error_code, "message": self.message, "detail": self.detail}

    def get_body(self, environ: WSGIEnvironment | None = None, scope: dict[str, t.Any] | None = None) -> str:
        return json.dumps({"errors": [self.to_dict()]}) + "\n"

    def get_headers(
        self, environ: WSGIEnvironment | None = None, scope: dict[str, t.Any] | None = None
    ) -> list[tuple[str, str]]:
        return [("Content-Type", JSON_CONTENT_TYPE), *self.extra_headers.items()]


class BlobUnknown(RegistryError):
    code, error_code, message = 404, "BLOB_UNKNOWN", "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    # distribution maps this code to 404, and clients written against it expect that.
    code, error_code, message = 404, "BLOB_UPLOAD_INVALID", "blob upload invalid"


class BlobUploadUnknown(RegistryError):
    code, error_code, message = 404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry"


class DigestInvalid(RegistryError):
    code, error_code, message = 400, "DIGEST_INVALID", "provided digest did not match uploaded content"


class ManifestBlobUnknown(RegistryError):
    code, error_code, message = 400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry"


class ManifestInvalid(RegistryError):
    code, error_code, message = 400, "MANIFEST_INVALID", "manifest invalid"


class ManifestUnknown(RegistryError):
    code, error_code, message = 404, "MANIFEST_UNKNOWN", "manifest unknown"


class NameInvalid(RegistryError):
    code, error_code, message = 400, "NAME_INVALID", "invalid repository name"


class NameUnknown(RegistryError):
    code, error_code, message = 404, "NAME_UNKNOWN", "repository name not known to registry"


class SizeInvalid(RegistryError):
    code, error_code, message = 400, "SIZE_INVALID", "provided length did not match content length"


class TagInvalid(RegistryError):
    code, error_code, message = 400, "TAG_INVALID", "manifest tag did not match URI"


class Unauthorized(RegistryError):
    code, error_code, message = 401, "UNAUTHORIZED", "authentication required"


class Denied(RegistryError):
    code, error_code, message = 403, "DENIED", "requested access to the resource is denied"


class Unsupported(RegistryError):
    code, error_code, message = 405, "UNSUPPORTED", "The operation is unsupported."


class TooManyRequests(RegistryError):
    code, error_code, message = 429, "TOOMANYREQUESTS", "too many requests"


class RangeInvalid(RegistryError):
    code, error_code, message = 416, "RANGE_INVALID", "invalid content range"


class PaginationNumberInvalid(RegistryError):
    code, error_code, message = 400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested"


class Unavailable(RegistryError):
    code, error_code, message = 503, "UNAVAILABLE", "service unavailable"


class Unknown(RegistryError):
    code, error_code, message = 500, "UNKNOWN", "unknown error"


class NotFound(RegistryError):
    """A path that is no route at all: distribution answers these with a plain-text 404."""

    code, error_code, message = 404, "NOT_FOUND", "404 page not found"

    def get_body(self, environ: WSGIEnvironment | None = None, scope: dict[str, t.Any] | None = None) -> str:
        return "404 page not found\n"

    def get_headers(
        self, environ: WSGIEnvironment | None = None, scope: dict[str, t.Any] | None = None
    ) -> list[tuple[str, str]]:
        return [("Content-Type", "text/plain; charset=utf-8")]


class ManifestTooLarge(ManifestInvalid):
    # The spec asks for 413 above the limit (distribution answers 400); the code stays the same.
    code = 413


class BadRequestNoBody(RegistryError):
    """distribution answers an unreadable or malformed htpasswd file with a bare 400 and no body
    ("just return a bad request with no information")."""

    code, error_code, message = 400, "", ""

    def get_body(self, environ: WSGIEnvironment | None = None, scope: dict[str, t.Any] | None = None) -> str:
        return ""

    def get_headers(
        self, environ: WSGIEnvironment | None = None, scope: dict[str, t.Any] | None = None
    ) -> list[tuple[str, str]]:
        return []

    def get_response(self, environ: t.Any = None, scope: t.Any = None) -> Response:
        response = t.cast(Response, super().get_response(environ))
        # Werkzeug fills in text/plain; Go sends no Content-Type for an empty body.
        del response.headers["Content-Type"]
        return response


#: The error a client sees for each problem the storage reports.
PROBLEMS: dict[type[problems.Problem], type[RegistryError]] = {
    problems.BlobUnknown: BlobUnknown,
    problems.BlobUploadUnknown: BlobUploadUnknown,
    problems.DigestInvalid: DigestInvalid,
    problems.RangeInvalid: RangeInvalid,
    problems.SizeInvalid: SizeInvalid,
    problems.ManifestBlobUnknown: ManifestBlobUnknown,
    problems.ManifestInvalid: ManifestInvalid,
    problems.ManifestUnknown: ManifestUnknown,
    problems.NameUnknown: NameUnknown,
    problems.TagInvalid: TagInvalid,
    problems.RemoteFailed: Unknown,
}


def error_for(problem: problems.Problem) -> RegistryError:
    """The error ``problem`` reaches the client as, with its detail and message; a refused chunk
    carries the ``Range`` to resume from."""
    error_class = next(PROBLEMS[cls] for cls in type(problem).__mro__ if cls in PROBLEMS)
    headers = {}
    if isinstance(problem, problems.RangeInvalid):
        headers["Range"] = range_header(problem.committed)
    return error_class(problem.detail, message=problem.message, headers=headers)


def range_header(size: int) -> str:
    """The ``Range`` an upload reports: the inclusive last byte, ``0-0`` when empty."""
    return f"0-{max(size - 1, 0)}"
