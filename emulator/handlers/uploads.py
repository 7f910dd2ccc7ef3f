"""``/v2/<name>/blobs/uploads/``: start, continue, finish, inspect and cancel blob uploads."""

from __future__ import annotations

import re

from werkzeug.wrappers import Response

from .. import routes
from .. import uploadstate
from ..context import Context
from ..errors import BlobUploadInvalid
from ..errors import RangeInvalid
from ..errors import SizeInvalid
from ..errors import range_header
from ..reference import Digest
from ..reference import InvalidDigest
from ..reference import is_valid_name
from ..storage.uploads import UploadStatus
from ..turns import leave_turn
from .common import body_chunks
from .common import parse_digest

#: ``start-end`` as the spec writes it; ``bytes=`` and ``bytes `` prefixes and a ``/total`` suffix
#: are tolerated because some clients send them.
_CONTENT_RANGE_RE = re.compile(r"(?:bytes[= ])?(\d+)-(\d+)(?:/(?:\d+|\*))?")


def start(ctx: Context, name: str) -> Response:
    args = ctx.request.args
    mount = args.get("mount")
    if mount:
        mounted = _try_mount(ctx, name, mount, args.get("from"))
        if mounted is not None:
            return mounted
    digest_param = args.get("digest")
    if digest_param is not None:
        digest = parse_digest(digest_param)
        status = ctx.registry.uploads.start(name)
        descriptor = ctx.registry.uploads.finish(name, status.id, digest, body_chunks(ctx.request))
        if ctx.notifier is not None:
            ctx.notifier.blob_pushed(name, str(digest), descriptor.size)
        return _created(ctx, name, digest)
    status = ctx.registry.uploads.start(name)
    return _accepted(ctx, name, status, 202)


def dispatch(ctx: Context, name: str, upload_id: str) -> Response:
    method = ctx.request.method
    if method in ("GET", "HEAD"):
        status = ctx.registry.uploads.status(name, upload_id)
        return _accepted(ctx, name, status, 204)
    if method == "DELETE":
        ctx.registry.uploads.cancel(name, upload_id)
        return Response(status=204, headers={"Content-Length": "0"})
    _check_state(ctx, name, upload_id)
    if method == "PATCH":
        return patch(ctx, name, upload_id)
    return finish(ctx, name, upload_id)


def patch(ctx: Context, name: str, upload_id: str) -> Response:
    start_at, length = _content_range(ctx)
    status = ctx.registry.uploads.append(
        name, upload_id, body_chunks(ctx.request), start=start_at, length=length
    )
    return _accepted(ctx, name, status, 202)


def finish(ctx: Context, name: str, upload_id: str) -> Response:
    digest = parse_digest(ctx.request.args.get("digest"))
    start_at, length = _content_range(ctx)
    # Without the running hash (after a restart, or an upload another process began) the whole upload
    # is read again: never while other clients wait for the turn.
    leave_turn(ctx.request.environ)
    descriptor = ctx.registry.uploads.finish(
        name, upload_id, digest, body_chunks(ctx.request), start=start_at, length=length
    )
    if ctx.notifier is not None:
        ctx.notifier.blob_pushed(name, str(digest), descriptor.size)
    return _created(ctx, name, digest)


def _try_mount(ctx: Context, name: str, mount: str, source: str | None) -> Response | None:
    try:
        digest = Digest.parse(mount)
    except InvalidDigest:
        return None
    if source is not None and not is_valid_name(source):
        return None
    descriptor = ctx.registry.mount(name, digest, source)
    if descriptor is None:
        return None
    if ctx.notifier is not None:
        ctx.notifier.blob_mounted(name, str(digest), descriptor.size, source)
    return _created(ctx, name, digest)


def _check_state(ctx: Context, name: str, upload_id: str) -> None:
    """Refuse a forged token, and a stale one whose offset the upload has moved past."""
    token = ctx.request.args.get("_state")
    status = ctx.registry.uploads.status(name, upload_id)
    if token is None:
        return
    state = uploadstate.decode(token, ctx.secret)
    if state.name != name or state.upload_id != upload_id:
        raise BlobUploadInvalid({"reason": "upload state does not match this upload"})
    if state.offset != status.size:
        raise RangeInvalid(
            {"size": status.size, "state": state.offset},
            message="upload location is stale: the upload has moved on",
            headers={"Range": range_header(status.size)},
        )


def _content_range(ctx: Context) -> tuple[int | None, int | None]:
    """The chunk's start and length from ``Content-Range`` (both ``None`` for a streamed body)."""
    header = ctx.request.headers.get("Content-Range")
    declared = ctx.request.content_length
    if not header:
        return None, declared
    match = _CONTENT_RANGE_RE.fullmatch(header.strip())
    if match is None:
        raise RangeInvalid({"Content-Range": header}, message="malformed Content-Range")
    first, last = int(match.group(1)), int(match.group(2))
    if last < first:
        raise RangeInvalid({"Content-Range": header}, message="Content-Range ends before it starts")
    length = last - first + 1
    if declared is not None and declared != length:
        raise SizeInvalid({"Content-Range": header, "Content-Length": declared})
    return first, length


def _accepted(ctx: Context, name: str, status: UploadStatus, code: int) -> Response:
    state = uploadstate.UploadState(name, status.id, status.size, status.started_at.isoformat())
    location = ctx.url_for(
        routes.UPLOAD, name=name, upload_id=status.id, _state=uploadstate.encode(state, ctx.secret)
    )
    return Response(
        status=code,
        headers={
            "Location": location,
            "Range": range_header(status.size),
            "Docker-Upload-UUID": status.id,
            "Content-Length": "0",
        },
    )


def _created(ctx: Context, name: str, digest: Digest) -> Response:
    return Response(
        status=201,
        headers={
            "Location": ctx.url_for(routes.BLOB, name=name, digest=str(digest)),
            "Docker-Content-Digest": str(digest),
            "Content-Length": "0",
        },
    )
