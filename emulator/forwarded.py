"""The registry's own URL as its client sees it, which ``Location`` headers and notification events carry.

``http.host`` wins when set. Otherwise a proxy's ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` count
only when well formed (a forged value must not end up in a ``Location``), else the request's own scheme
and ``Host`` (Werkzeug's :func:`~werkzeug.wsgi.get_host`, which falls back to the server's address).

It reads only the WSGI environ, so the notification sender can build an event's URL in its own thread from
the few environ values a request left behind.
"""

from __future__ import annotations

import typing as t

from werkzeug.wsgi import get_host

from .reference import is_valid_host

#: The environ keys :func:`base_url` reads.
ENVIRON_KEYS = (
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_HOST",
    "wsgi.url_scheme",
    "SERVER_NAME",
    "SERVER_PORT",
)


def base_url(environ: t.Mapping[str, t.Any], host_setting: str | None = None) -> str:
    """``scheme://host`` of the registry for the request of ``environ``; ``host_setting`` is ``http.host``."""
    if host_setting:
        return host_setting.rstrip("/")
    scheme = str(environ.get("HTTP_X_FORWARDED_PROTO", "")).split(",")[0].strip().lower()
    if scheme not in ("http", "https"):
        scheme = str(environ.get("wsgi.url_scheme", "http"))
    host = str(environ.get("HTTP_X_FORWARDED_HOST", "")).split(",")[0].strip()
    if not is_valid_host(host):
        host = get_host(t.cast("dict[str, t.Any]", environ))
    return f"{scheme}://{host}"
