"""What a handler gets from the app: the request's :class:`Context`, and the JSON response helper.

It sits below both :mod:`emulator.app` and :mod:`emulator.handlers`, so that the app imports the
handlers and no handler imports the app.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass

from werkzeug.routing import MapAdapter
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from .forwarded import base_url

if t.TYPE_CHECKING:
    from .config import Config
    from .notifications import RequestNotifier
    from .storage.registry import Registry


@dataclass
class Context:
    """What a handler needs about the request it serves."""

    request: Request
    registry: Registry
    config: Config
    secret: bytes
    adapter: MapAdapter
    api: str
    #: Builds this request's notification events; ``None`` when no endpoint is configured.
    notifier: RequestNotifier | None = None

    def url_for(self, endpoint: str, **values: t.Any) -> str:
        """A ``Location`` for ``endpoint``: absolute unless ``http.relativeurls`` is set."""
        return self.url_base() + self.adapter.build(f"{self.api}.{endpoint}", values)

    def url_base(self) -> str:
        """What :meth:`url_for` puts before a route's path: ``""`` with ``http.relativeurls``."""
        return "" if self.config.http.relativeurls else self.base_url()

    def base_url(self) -> str:
        return base_url(self.request.environ, self.config.http.host)


def json_response(document: t.Any, *, status: int = 200, mimetype: str = "application/json") -> Response:
    body = json.dumps(document)
    return Response(body, status=status, content_type=f"{mimetype}; charset=utf-8")
