"""Small request helpers shared by handlers."""

from __future__ import annotations

import bisect
import typing as t
from urllib.parse import urlencode

from werkzeug.wrappers import Request

from ..drivers.base import CHUNK_SIZE
from ..errors import DigestInvalid
from ..errors import PaginationNumberInvalid
from ..reference import Digest
from ..reference import InvalidDigest


def parse_digest(text: str | None) -> Digest:
    if not text:
        raise DigestInvalid({"digest": text}, message="digest parameter missing")
    try:
        return Digest.parse(text)
    except InvalidDigest as e:
        raise DigestInvalid({"digest": text}, message=str(e)) from None


def if_none_match(request: Request) -> set[str]:
    """The entity tags in ``If-None-Match``, unquoted, weak or not."""
    # From the environ: a header view built for a header most requests do not send costs more than the rest.
    header = request.environ.get("HTTP_IF_NONE_MATCH")
    if not header:
        return set()
    return {value.strip().removeprefix("W/").strip('"') for value in header.split(",")}


def body_chunks(request: Request) -> t.Iterator[bytes]:
    """The request body in chunks, never whole: blobs may be larger than memory."""
    stream = request.stream
    while chunk := stream.read(CHUNK_SIZE):
        yield chunk


def page_size(request: Request, default: int, maximum: int, *, clamp: bool) -> int:
    """The ``n`` query parameter: a non-negative integer; above ``maximum`` it is clamped or refused."""
    raw = request.args.get("n")
    if raw is None or raw == "":
        return min(default, maximum)
    try:
        n = int(raw)
    except ValueError:
        raise PaginationNumberInvalid({"n": raw}) from None
    if n < 0 or (n > maximum and not clamp):
        raise PaginationNumberInvalid({"n": raw})
    return min(n, maximum)


def paginate(items: list[str], last: str | None, n: int) -> tuple[list[str], bool]:
    """The page of sorted ``items`` after ``last`` holding at most ``n``, and whether more follow."""
    start = 0
    if last:
        start = bisect.bisect_right(items, last)
    page = items[start : start + n]
    return page, start + n < len(items)


def next_link(path: str, last: str, n: int) -> str:
    return f'<{path}?{urlencode({"last": last, "n": n})}>; rel="next"'
