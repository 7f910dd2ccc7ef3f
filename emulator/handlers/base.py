"""``/v2/``: tells clients this is a registry (and, through the app, whether they are authorised)."""

from __future__ import annotations

from werkzeug.wrappers import Response

from ..app import Context


def api_base(ctx: Context) -> Response:
    return Response("{}", content_type="application/json; charset=utf-8")
