"""In-process registries: :func:`start` one in a background thread, or :func:`serve_wsgi` any WSGI app.

Re-exported by the package (``emulator.start``); a module of its own so that importing :mod:`emulator`
costs nothing until one of these is used.
"""

from __future__ import annotations

import os
import typing as t

from .app import make_app
from .config import Config
from .serving import IDLE_TIMEOUT
from .serving import MAX_CONNECTIONS
from .serving import BackgroundServer

if t.TYPE_CHECKING:
    import ssl


def load_config(
    config: t.Mapping[str, t.Any] | str | os.PathLike[str] | Config | None = None,
) -> Config:
    """A :class:`Config` from a dict (merged over the development default), YAML text or a path.

    No ``REGISTRY_*`` variables are applied: in-process registries do not depend on the environment.
    """
    from . import config as configuration

    if isinstance(config, Config):
        return config
    # Only a mapping is a change to the default; YAML text and files are whole configurations.
    base = configuration.development_default() if config is None or isinstance(config, t.Mapping) else None
    raw = configuration.document(config, base=base)
    return configuration.parse(raw, source=configuration.source_name(config)).config


def serve_wsgi(
    app: t.Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    max_connections: int = MAX_CONNECTIONS,
    idle_timeout: float = IDLE_TIMEOUT,
) -> BackgroundServer:
    """Serve any WSGI app (a registry, or one wrapped in middleware) in a background thread."""
    return BackgroundServer(
        app,
        host=host,
        port=port,
        ssl_context=ssl_context,
        max_connections=max_connections,
        idle_timeout=idle_timeout,
    )


def start(
    config: t.Mapping[str, t.Any] | str | os.PathLike[str] | Config | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
) -> BackgroundServer:
    """Start a registry in a background thread on ``host:port`` (a free port by default).

    With ``http.tls`` configured and no ``ssl_context``, the configured certificates are used.
    ``http.maxconnections`` caps the connections served at once; ``idle_timeout`` bounds every socket
    read and write (seconds).
    """
    loaded = load_config(config)
    if ssl_context is None:
        from .tls import configured_context

        ssl_context = configured_context(loaded.http.tls)
    app = make_app(loaded)
    app.open()
    try:
        return BackgroundServer(
            app,
            host=host,
            port=port,
            ssl_context=ssl_context,
            max_connections=loaded.http.maxconnections,
            idle_timeout=idle_timeout,
        )
    except BaseException:
        # A port that cannot be bound leaves no debug server or checker threads behind.
        app.close()
        raise
