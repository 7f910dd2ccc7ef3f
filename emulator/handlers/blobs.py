"""``/v2/<name>/blobs/<digest>``: read (whole or by range) and delete blobs."""

from __future__ import annotations

import re
import typing as t

from werkzeug.wrappers import Response
from werkzeug.wsgi import wrap_file

from ..context import Context
from ..drivers.base import CHUNK_SIZE
from ..errors import RangeInvalid
from ..errors import Unsupported
from ..reference import Digest
from .common import if_none_match

_MEDIA_TYPE_RE = re.compile(r"[\w.+-]+/[\w.+-]+")
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


def dispatch(ctx: Context, name: str, digest: Digest) -> Response:
    if ctx.request.method == "DELETE":
        return delete_blob(ctx, name, digest)
    return get_blob(ctx, name, digest)


def get_blob(ctx: Context, name: str, digest: Digest) -> Response:
    descriptor = ctx.registry.blobs.stat(name, digest)
    if not ctx.config.storage.redirect_disable:
        url = ctx.registry.blobs.redirect_url(digest, ctx.request.method)
        if url is not None:
            if ctx.notifier is not None:
                ctx.notifier.blob_pulled(name, str(digest), descriptor.size)
            return Response(status=307, headers={"Location": url})
    etag = f'"{digest}"'
    headers = {
        "Docker-Content-Digest": str(digest),
        "ETag": etag,
        "Cache-Control": "max-age=31536000",
        "Accept-Ranges": "bytes",
        "Content-Type": _content_type(ctx),
    }
    wanted = if_none_match(ctx.request)
    if str(digest) in wanted or "*" in wanted:
        return Response(status=304, headers=headers)
    if ctx.notifier is not None:
        # Before the body streams, where distribution notifies after: the blob exists and is served.
        ctx.notifier.blob_pulled(name, str(digest), descriptor.size)
    size = descriptor.size
    span = _requested_range(ctx.request.headers.get("Range"), size)
    if span is None:
        headers["Content-Length"] = str(size)
        status = 200
        start, length = 0, size
    else:
        start, end = span
        length = end - start + 1
        headers["Content-Length"] = str(length)
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        status = 206
    if ctx.request.method == "HEAD":
        return Response(status=status, headers=headers)
    reader: t.BinaryIO = ctx.registry.blobs.open(name, digest, start)
    if span is not None:
        reader = t.cast(t.BinaryIO, _Window(reader, length))
    # wrap_file lets the server hand a real file to sendfile(); others get 1 MiB reads.
    body = wrap_file(ctx.request.environ, reader, CHUNK_SIZE)
    return Response(body, status=status, headers=headers, direct_passthrough=True)


def delete_blob(ctx: Context, name: str, digest: Digest) -> Response:
    if not ctx.config.storage.delete_enabled:
        raise Unsupported({"reason": "deletes are disabled: storage.delete.enabled is false"})
    ctx.registry.delete_blob(name, digest)
    if ctx.notifier is not None:
        ctx.notifier.blob_deleted(name, str(digest))
    return Response(status=202, headers={"Content-Length": "0"})


def _content_type(ctx: Context) -> str:
    # The pack registry serves pack logos with the type the client names (?type=image/png).
    wanted = ctx.request.args.get("type", "")
    if ctx.api == "v1" and wanted:
        wanted = wanted if "/" in wanted else wanted.replace(".", "/", 1)
        if _MEDIA_TYPE_RE.fullmatch(wanted):
            return wanted
    return "application/octet-stream"


def _requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The single byte range asked for, or ``None`` for the whole blob.

    Several ranges, or a header we cannot read, get the whole blob: RFC 9110 lets a server ignore
    ``Range``. A well-formed range that lies outside the blob is refused with 416.
    """
    if not header:
        return None
    match = _RANGE_RE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            raise _unsatisfiable(size)
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> RangeInvalid:
    error = RangeInvalid(
        {"size": size},
        message="requested range not satisfiable",
        headers={"Content-Range": f"bytes */{size}"},
    )
    return error


class _Window:
    """The next ``length`` bytes of ``file``, as a file: reads stop there, and ``fileno``/``tell`` let
    a server ``sendfile`` the same bytes (it sends no more than the Content-Length)."""

    def __init__(self, file: t.BinaryIO, length: int) -> None:
        self._file = file
        self._left = length

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > self._left:
            size = self._left
        data = self._file.read(size) if size else b""
        self._left -= len(data)
        return data

    def fileno(self) -> int:
        return self._file.fileno()

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
