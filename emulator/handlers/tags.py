"""``/v2/<name>/tags/list``: a repository's tags in lexical order, paged by ``n`` and ``last``."""

from __future__ import annotations

from werkzeug.wrappers import Response

from .. import routes
from ..context import Context
from ..context import json_response
from .common import next_link
from .common import page_size
from .common import paginate


def list_tags(ctx: Context, name: str) -> Response:
    tags = ctx.registry.tags.list(name)
    if "n" in ctx.request.args:
        # Above tags.maxtags, n is clamped and a Link offers the rest, as distribution does.
        n = page_size(ctx.request, ctx.config.tags_maxtags, ctx.config.tags_maxtags, clamp=True)
    else:
        n = len(tags)  # without n every tag is returned: clients that never page expect it
    page, more = paginate(tags, ctx.request.args.get("last"), n)
    # A repository whose tags were all deleted is listed as ``null``, as distribution's Go encoder does
    # with its empty slice; an empty page of a non-empty list stays ``[]``.
    response = json_response({"name": name, "tags": page if tags else None})
    if more and page:
        path = ctx.adapter.build(f"{ctx.api}.{routes.TAGS}", {"name": name})
        response.headers["Link"] = next_link(path, page[-1], n)
    return response
