"""The debug server (``http.debug.addr``): a second, plain-HTTP port without authentication.

It serves, as distribution's debug mux does:

* ``GET /debug/health``: 200 ``{}`` while every health check passes, else 503 with each failing check's
  name and message (``{"127.0.0.1:5999":"connection to 127.0.0.1:5999 failed"}``); any other method gets
  Go's text 404;
* with ``http.debug.prometheus.enabled``, the app's metrics at ``http.debug.prometheus.path`` (default
  ``/metrics``) in Prometheus' text format, to any method, as ``promhttp`` answers;
* a text 404 for anything else. Go's ``/debug/pprof`` and ``/debug/vars`` have no Python counterpart here.

:class:`DebugServer` is one of the app's services: :meth:`~emulator.app.RegistryApp.open` binds the port,
so ``"127.0.0.1:0"`` gets a free one, read back from :attr:`DebugServer.url`.
"""

from __future__ import annotations

import json
import typing as t

from prometheus_client import exposition

from .config.model import ConfigError
from .config.model import split_addr
from .errors import NotFound
from .health import HealthGate

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIEnvironment

    from .config import Config
    from .metrics import Metrics
    from .serving import BackgroundServer

#: The text exposition format distribution's promhttp serves (prometheus_client's own latest is 1.0.0).
METRICS_CONTENT_TYPE = exposition.CONTENT_TYPE_PLAIN_0_0_4
HEALTH_PATH = "/debug/health"
_JSON = "application/json; charset=utf-8"


class DebugApp:
    """The debug port's WSGI app; ``metrics`` is ``None`` without Prometheus."""

    def __init__(
        self, gate: HealthGate, metrics: Metrics | None = None, metrics_path: str = "/metrics"
    ) -> None:
        self.gate = gate
        self.metrics = metrics
        self.metrics_path = metrics_path

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == HEALTH_PATH and method == "GET":
            failing = self.gate.failing  # one snapshot for the status and the body
            status = "503 Service Unavailable" if failing else "200 OK"
            return _respond(
                start_response, status, _JSON, json.dumps(failing, separators=(",", ":")).encode()
            )
        if self.metrics is not None and path == self.metrics_path:
            return _respond(
                start_response,
                "200 OK",
                METRICS_CONTENT_TYPE,
                exposition.generate_latest(self.metrics.registry),
            )
        return _respond(
            start_response, "404 Not Found", "text/plain; charset=utf-8", NotFound().get_body().encode()
        )


def _respond(start_response: StartResponse, status: str, content_type: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


class DebugServer:
    """Serves a :class:`DebugApp` on ``http.debug.addr`` while the registry serves; a
    :class:`~emulator.app.Service`.

    :raises ConfigError: from :meth:`start`, when the address cannot be bound (key ``http.debug.addr``).
    """

    def __init__(self, config: Config, gate: HealthGate, metrics: Metrics | None) -> None:
        self.addr = config.http.debug.addr
        self.source = config.source
        prometheus = config.http.debug.prometheus
        self.app = DebugApp(gate, metrics if prometheus.enabled else None, prometheus.path)
        self._server: BackgroundServer | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server (``127.0.0.1`` when it listens on every interface)."""
        if self._server is None:
            raise RuntimeError(f"the debug server on {self.addr} is not running")
        host = self._server.host
        return f"http://127.0.0.1{host}" if host.startswith(":") else f"http://{host}"

    def start(self) -> None:
        if self._server is not None:
            return
        from .serving import BackgroundServer

        try:
            host, port = split_addr(self.addr)
        except ValueError as e:
            raise ConfigError(self.source, "http.debug.addr", str(e)) from None
        try:
            self._server = BackgroundServer(self.app, host=host, port=port)
        except OSError as e:
            raise ConfigError(
                self.source, "http.debug.addr", f"cannot listen on {self.addr}: {e.strerror or e}"
            ) from None

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
