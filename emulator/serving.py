"""How the registry is served: the one place that knows which HTTP server runs the WSGI app.

Werkzeug's threaded server is used: it keeps every TLS feature (client CAs, minimum version,
ciphers through an :class:`ssl.SSLContext`), serves in-memory storage from one process, starts in
milliseconds and can run in a thread for tests.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import ssl
import threading
import time
import typing as t

from werkzeug.serving import BaseWSGIServer
from werkzeug.serving import ThreadedWSGIServer
from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import get_sockaddr
from werkzeug.serving import select_address_family

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


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket for ``host:port`` (or ``unix://PATH``); errors are raised, not printed."""
    family = select_address_family(host, port)
    address = get_sockaddr(host, port, family)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_UNIX:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(t.cast(str, address))
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Large blobs move faster with a large socket buffer than with the small default.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except BaseException:
        sock.close()
        raise
    return sock


#: How long a client may take over its TLS handshake before its connection is dropped.
HANDSHAKE_TIMEOUT = 10.0


class _Server(ThreadedWSGIServer):
    """Werkzeug's threaded server, with the TLS handshake moved into each connection's thread.

    Werkzeug wraps the listening socket, so every handshake runs inside ``accept()``: one client
    that connects and says nothing would hold up every other TLS client.
    """

    tls_context: ssl.SSLContext | None = None

    def process_request_thread(self, request: t.Any, client_address: t.Any) -> None:
        if self.tls_context is not None:
            try:
                request.settimeout(HANDSHAKE_TIMEOUT)
                request = self.tls_context.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (OSError, ValueError):
                # A failed handshake (no client certificate, an old protocol) is the client's problem.
                self.shutdown_request(request)
                return
        super().process_request_thread(request, client_address)


def create_server(
    app: WSGIApplication, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> BaseWSGIServer:
    """A threaded server bound to ``host:port`` (``port`` 0 picks a free one); ``host`` may be
    ``unix://PATH`` for a Unix socket. A failure to bind raises :class:`OSError`."""
    # Werkzeug prints bind errors and exits; binding first lets the caller report them its own way.
    sock = bind_socket(host, port)
    try:
        server = _Server(host, port, app, _Handler, fd=sock.fileno())
    finally:
        sock.close()  # the server holds its own duplicate of the descriptor
    if ssl_context is not None:
        server.tls_context = ssl_context
        server.ssl_context = ssl_context  # tells Werkzeug's handler the scheme is https
    return server


class BackgroundServer:
    """A server running in a daemon thread: what tests and the pytest plugin use.

    Its loop waits on the listening socket and on a wake-up pipe, so :meth:`stop` returns within a
    millisecond instead of waiting out a poll interval: a test suite that starts one registry per test
    would otherwise spend most of its time stopping them.
    """

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
        self._stopping = False
        self._wake_read, self._wake_write = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name=f"registry-{self.port}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # socketserver's serve_forever can only notice shutdown() at its next poll; this loop is the
        # same accept-and-dispatch, plus the wake-up socket.
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self._server and not self._stopping:
                        self._server._handle_request_noblock()  # type: ignore[attr-defined]
                self._server.service_actions()

    def stop(self) -> None:
        """Stop accepting connections and close the socket; requests being served finish on their own."""
        if self._stopping:
            return
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")
        self._thread.join()
        self._server.server_close()
        self._wake_read.close()
        self._wake_write.close()

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
