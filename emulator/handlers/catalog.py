"""``/v2/_catalog``: the repositories, paged by ``n`` and ``last``."""

from __future__ import annotations

from werkzeug.wrappers import Response

from .. import routes
from ..context import Context
from ..context import json_response
from .common import next_link
from .common import page_size
from .common import paginate

#: Page size when the client gives no ``n``, as in distribution.
DEFAULT_ENTRIES = 100


def get_catalog(ctx: Context) -> Response:
    maximum = ctx.config.catalog_maxentries
    n = page_size(ctx.request, DEFAULT_ENTRIES, maximum, clamp=False)
    last = ctx.request.args.get("last")
    page, more = paginate(ctx.registry.catalog(), last, n)
    response = json_response({"repositories": page})
    if more and page:
        path = ctx.adapter.build(f"{ctx.api}.{routes.CATALOG}")
        response.headers["Link"] = next_link(path, page[-1], n)
    return response
