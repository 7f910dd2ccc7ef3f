"""``/v2/<name>/tags/list``: a repository's tags in lexical order, paged by ``n`` and ``last``."""

from __future__ import annotations

import json

from werkzeug.wrappers import Response

from .. import routes
from ..context import Context
from .common import next_link
from .common import page_size
from .common import paginate

#: Deletes every printable ASCII character but the two that JSON escapes: tags it leaves nothing of are
#: written into the JSON text as they are.
_VERBATIM = str.maketrans(dict.fromkeys(chr(code) for code in range(0x20, 0x7F) if chr(code) not in '"\\'))


def _body(name: str, tags: list[str] | None) -> str:
    """``json.dumps({"name": name, "tags": tags})``, without encoding 10,000 strings one by one when none
    needs escaping, as no tag a client can push does: that took 0.5 ms of a 10,000-tag list."""
    if not tags or "".join(tags).translate(_VERBATIM):
        return json.dumps({"name": name, "tags": tags})
    return '{"name": ' + json.dumps(name) + ', "tags": ["' + '", "'.join(tags) + '"]}'


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
    response = Response(_body(name, page if tags else None), content_type="application/json; charset=utf-8")
    if more and page:
        path = ctx.adapter.build(f"{ctx.api}.{routes.TAGS}", {"name": name})
        response.headers["Link"] = next_link(path, page[-1], n)
    return response
