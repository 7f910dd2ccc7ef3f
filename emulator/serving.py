"""How the registry is served: the one place that knows which HTTP server runs the WSGI app.

Werkzeug's threaded server is used: it keeps every TLS feature (client CAs, minimum version,
ciphers through an :class:`ssl.SSLContext`), serves in-memory storage from one process, starts in
milliseconds and can run in a thread for tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import threading
import time
import typing as t

from werkzeug.serving import BaseWSGIServer
from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment


class _Handler(WSGIRequestHandler):
    # The app writes its own access log in distribution's format; Werkzeug's would duplicate it.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log_error(self, format: str, *args: t.Any) -> None:
        pass


class _InFlight:
    """Counts requests being served, so a graceful stop can wait for them."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.count = 0
        self.lock = threading.Condition()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        with self.lock:
            self.count += 1
        try:
            yield from self.app(environ, start_response)
        finally:
            with self.lock:
                self.count -= 1
                self.lock.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.lock.wait(remaining)
        return True


def create_server(
    app: WSGIApplication, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> BaseWSGIServer:
    """A threaded server bound to ``host:port`` (``port`` 0 picks a free one); ``host`` may be
    ``unix://PATH`` for a Unix socket."""
    server = make_server(host, port, app, threaded=True, request_handler=_Handler, ssl_context=ssl_context)
    # Large blobs move faster with a large socket buffer than with Python's 8 KiB default.
    if server.address_family != socket.AF_UNIX:
        server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    return server


class BackgroundServer:
    """A server running in a daemon thread: what tests and the pytest plugin use."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.app = app
        self._server = create_server(app, host, port, ssl_context)
        self.port: int = self._server.socket.getsockname()[1]
        scheme = "https" if ssl_context is not None else "http"
        self.host = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self.url = f"{scheme}://{self.host}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"registry-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(
    app: WSGIApplication,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    drain_timeout: float = 0.0,
    on_ready: t.Callable[[BaseWSGIServer], None] | None = None,
) -> None:
    """Serve in the foreground until SIGTERM or SIGINT, then drain for up to ``drain_timeout``."""
    counted = _InFlight(app)
    server = create_server(counted, host, port, ssl_context)
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            # shutdown() waits for serve_forever to return, so it must run off the main thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if on_ready is not None:
        on_ready(server)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        if drain_timeout > 0:
            counted.wait_idle(drain_timeout)
        server.server_close()
        if host.startswith("unix://"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(host[len("unix://") :])
