"""``/v2/``: tells clients this is a registry (and, through the app, whether they are authorised)."""

from __future__ import annotations

from werkzeug.wrappers import Response

from ..context import Context
from ..context import json_response


def version_check(ctx: Context) -> Response:
    return json_response({})
