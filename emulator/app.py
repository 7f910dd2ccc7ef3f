"""The WSGI application: everything every request goes through, once.

Routing, the API-version and configured headers, authentication, the grammar check of every
identifier in the path, error rendering and the access log live here; handlers in
:mod:`emulator.handlers` only do their one job.
"""

from __future__ import annotations

import datetime
import http
import logging
import secrets
import typing as t

from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.exceptions import NotFound as RoutingNotFound
from werkzeug.routing import MapAdapter
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from . import routes
from .context import Context
from .drivers.base import InvalidPath
from .drivers.base import StorageDriver
from .drivers.base import StorageUnavailable
from .drivers.filesystem import StorageFailure
from .errors import BlobUploadUnknown
from .errors import ManifestUnknown
from .errors import NameInvalid
from .errors import NotFound
from .errors import RegistryError
from .errors import TagInvalid
from .errors import Unavailable
from .errors import Unknown
from .errors import Unsupported
from .errors import error_for
from .handlers import blobs
from .handlers import catalog
from .handlers import manifests
from .handlers import referrers
from .handlers import tags
from .handlers import uploads
from .handlers import version_check
from .handlers.common import parse_digest
from .health import HealthGate
from .health import build_checkers
from .health import refusal
from .logs import access_log
from .logs import combined_log_line
from .logs import log
from .logs import request_uri
from .reference import is_valid_name
from .reference import is_valid_tag
from .reference import is_valid_upload_id
from .reference import looks_like_digest
from .storage.errors import Problem

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIEnvironment

    from .auth import HtpasswdAuthenticator as Authenticator
    from .config import Config
    from .debug import DebugServer
    from .metrics import Metrics
    from .notifications import Notifier
    from .storage.registry import Registry

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
_REASONS = {status.value: status.phrase for status in http.HTTPStatus}


Handler = t.Callable[..., Response]


class Service(t.Protocol):
    """Background work that lives while the registry serves: notification senders, health checkers,
    the debug server. Both methods are idempotent; ``start`` after ``stop`` starts again."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


#: The handler of each endpoint of :mod:`emulator.routes`.
HANDLERS: dict[str, Handler] = {
    routes.VERSION_CHECK: version_check.version_check,
    routes.CATALOG: catalog.get_catalog,
    routes.TAGS: tags.list_tags,
    routes.MANIFEST: manifests.dispatch,
    routes.BLOB: blobs.dispatch,
    routes.UPLOAD_START: uploads.start,
    routes.UPLOAD: uploads.dispatch,
    routes.REFERRERS: referrers.list_referrers,
}


class RegistryApp:
    """A registry as a WSGI application, built from a :class:`~emulator.config.Config`."""

    def __init__(self, config: Config, registry: Registry, authenticator: Authenticator | None) -> None:
        self.config = config
        self.registry = registry
        self.authenticator = authenticator
        self.url_map = routes.build_map(config.http.prefix)
        self.handlers = HANDLERS
        self.headers = [(k, v) for k, values in config.http.headers.items() for v in values]
        # Without a configured secret, upload state tokens are signed with a key that lives as long
        # as the process, as distribution does (and warns about at start).
        self.secret = (config.http.secret or secrets.token_hex(32)).encode()
        prefix = config.http.prefix.rstrip("/")
        self.health_path = f"{prefix}/health"
        self.root_path = f"{prefix}/"
        #: Started by :meth:`open`, stopped by :meth:`close`, in this order (and the reverse).
        self.services: list[Service] = []
        #: Sends ``notifications.endpoints`` their events; ``None`` when no endpoint is enabled.
        self.notifier: Notifier | None = None
        #: Prometheus metrics (``http.debug.prometheus.enabled``); ``None`` measures nothing.
        self.metrics: Metrics | None = None
        #: The failing health checks; ``None`` when no check is configured.
        self.health: HealthGate | None = None
        #: The server on ``http.debug.addr``, once :meth:`open` started it (see its ``url``).
        self.debug: DebugServer | None = None

    def open(self) -> None:
        """Start the background services; whoever serves the app calls this before the first request."""
        started: list[Service] = []
        try:
            for service in self.services:
                service.start()
                started.append(service)
        except BaseException:
            # A service that cannot start (a debug port in use) must not leave the others running.
            for service in reversed(started):
                service.stop()
            raise

    def close(self) -> None:
        """Stop the background services (idempotent). Storage stays usable."""
        for service in reversed(self.services):
            service.stop()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        request = Request(environ)
        response = self.respond(request)
        self._log_access(request, response)
        if log.isEnabledFor(logging.DEBUG):
            # Like distribution's request log: method, path and status, never headers (credentials).
            fields = {
                "http.request.method": request.method,
                "http.request.uri": request_uri(request.environ),
                "http.request.remoteaddr": request.remote_addr,
                "http.response.status": response.status_code,
            }
            log.debug("response completed", extra={"fields": fields})
        return response(environ, start_response)

    def respond(self, request: Request) -> Response:
        path = request.path
        if self.health is not None and self.health.failing:
            # distribution's health gate sits in front of everything, the pack surface's /health aside.
            if path != self.health_path:
                return refusal()
            return self._finish(Response('{"status":"DOWN"}', 503, mimetype="application/json"), routed=True)
        if path == self.health_path:
            return self._finish(Response('{"status":"UP"}', mimetype="application/json"), routed=True)
        if path == self.root_path:
            return self._finish(Response(b"", headers={"Cache-Control": "no-cache"}), routed=False)
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
        except RoutingNotFound:
            return self._finish(NotFound().get_response(), routed=False)
        except MethodNotAllowed as e:
            allowed = sorted(e.valid_methods or ())
            error: RegistryError = Unsupported(
                {"method": request.method}, headers={"Allow": ", ".join(allowed)}
            )
            if self.authenticator is not None and allowed:
                # distribution authenticates before it looks at the method: no 405 without credentials.
                matched, values = adapter.match(method=allowed[0])
                try:
                    self.authenticator.authorize(request, str(matched).partition(".")[2], values)
                except RegistryError as denied:
                    error = denied
            response = self._finish(error.get_response(), routed=True)
            if self.metrics is not None and allowed:
                # distribution's dispatchers answer these 405s, so they count under their route.
                matched, _ = adapter.match(method=allowed[0])
                route = str(matched).partition(".")[2]
                self.metrics.end(self.metrics.begin(route, request), request, response)
            return response
        api, _, name = str(endpoint).partition(".")
        begun = self.metrics.begin(name, request) if self.metrics is not None else None
        try:
            response = self._dispatch(request, adapter, api, name, values)
        except RegistryError as e:
            response = e.get_response()
        except Problem as e:
            response = error_for(e).get_response()
        except StorageUnavailable as e:
            response = Unavailable({"reason": "storage backend unavailable, retry later"}).get_response()
            log.warning("storage unavailable serving %s %s: %s", request.method, request.path, e)
        except InvalidPath as e:
            # The route checks keep every identifier inside the storage alphabet, so this is a gap in
            # them: the request still names nothing that can be stored, a client error, not a crash.
            log.warning("storage refused a path serving %s %s: %s", request.method, request.path, e)
            response = Unknown({"reason": "the request names no valid storage path"}).get_response()
            response.status_code = 400
        except StorageFailure as e:
            # The operating system refused a file under the storage root: its path and error say it all.
            log.error("storage failed serving %s %s: %s", request.method, request.path, e)
            response = Unknown().get_response()
        except HTTPException as e:
            # Werkzeug's own errors (a client that disconnected mid-body, a malformed request).
            response = Unknown({"reason": e.description}, message=e.name).get_response()
            response.status_code = e.code or 400
        except Exception:
            log.exception("unexpected error serving %s %s", request.method, request.path)
            response = Unknown().get_response()
        response = self._finish(response, routed=True)
        if begun is not None and self.metrics is not None:
            self.metrics.end(begun, request, response)
        return response

    def _dispatch(
        self, request: Request, adapter: MapAdapter, api: str, endpoint: str, values: t.Mapping[str, t.Any]
    ) -> Response:
        if self.authenticator is not None:
            self.authenticator.authorize(request, endpoint, values)
        if self.config.storage.readonly and request.method in routes.WRITE_METHODS:
            # distribution leaves write routes out in read-only mode, so clients see 405.
            raise Unsupported(
                {"method": request.method},
                message="registry is in read-only mode",
                headers={"Allow": "GET, HEAD"},
            )
        if self.config.proxy is not None and request.method in routes.WRITE_METHODS:
            # A pull-through cache takes no writes: distribution answers them with this plain 405.
            raise Unsupported()
        checked = check_route_values(request.method, values)
        context = Context(request, self.registry, self.config, self.secret, adapter, api)
        if self.notifier is not None:
            user = self.authenticator.username(request) if self.authenticator is not None else None
            context.notifier = self.notifier.for_request(context, user)
        return self.handlers[endpoint](context, **checked)

    def _finish(self, response: Response, *, routed: bool) -> Response:
        # Go writes reason phrases as RFC 9110 spells them ("401 Unauthorized"), Werkzeug in capitals.
        response.status = f"{response.status_code} {_REASONS.get(response.status_code, '')}".rstrip()
        response.headers.set(*API_VERSION_HEADER)
        if routed:
            for key, value in self.headers:
                response.headers.add(key, value)
        return response

    def _log_access(self, request: Request, response: Response) -> None:
        if access_log.disabled or not access_log.isEnabledFor(logging.INFO):
            return
        access_log.info(
            combined_log_line(
                remote=request.remote_addr or "-",
                user=self.authenticator.username(request) if self.authenticator else None,
                method=request.method,
                uri=request_uri(request.environ),
                protocol=request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                status=response.status_code,
                size=response.content_length,
                referer=request.referrer,
                user_agent=request.user_agent.string,
                when=datetime.datetime.now().astimezone(),
            )
        )


def check_route_values(method: str, values: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The route's values, each checked against the grammar of what it names, with the spec's error
    for one that does not fit; a digest is handed on parsed. Handlers (and so storage paths) only
    ever see values that passed."""
    checked = dict(values)
    name = values.get("name")
    if name is not None and not is_valid_name(name):
        raise NameInvalid({"name": name})
    upload_id = values.get("upload_id")
    if upload_id is not None and not is_valid_upload_id(upload_id):
        # No upload can have such an id: unknown, as for any id this registry never gave out.
        raise BlobUploadUnknown({"uuid": upload_id})
    if "digest" in values:
        checked["digest"] = parse_digest(values["digest"])
    reference = values.get("reference")
    if reference is not None:
        if looks_like_digest(reference):
            parse_digest(reference)
        elif not is_valid_tag(reference):
            if method == "PUT":
                raise TagInvalid({"tag": reference})
            # Something that is neither tag nor digest names no manifest: 404, as the spec requires.
            raise ManifestUnknown({"reference": reference})
    return checked


def make_app(config: Config) -> RegistryApp:
    """Build the WSGI app, its storage and its authenticator from a configuration.

    :raises emulator.extras.MissingExtraError: the configuration needs an extra that is not installed.
    """
    from .drivers.factory import create
    from .extras import require

    require(config)
    from .storage.cache import BlobDescriptorCache
    from .storage.cache import NoCache
    from .storage.foreign import URLRules
    from .storage.registry import Registry

    cache: BlobDescriptorCache = (
        BlobDescriptorCache(config.storage.blobdescriptorsize)
        if config.storage.blobdescriptor == "inmemory"
        else NoCache()
    )
    if config.storage.blobdescriptor == "redis" and config.redis is not None:
        # Only configurations that name redis pay for importing its client.
        from .storage.rediscache import RedisDescriptorCache

        cache = RedisDescriptorCache(config.redis)
    driver = create(config.storage)
    metrics = None
    if config.http.debug.prometheus.enabled:
        from .metrics import CountingCache
        from .metrics import Metrics
        from .metrics import instrument_driver

        metrics = Metrics()
        driver = instrument_driver(driver, metrics)
        if not isinstance(cache, NoCache):
            cache = CountingCache(cache, metrics)
    registry = Registry(driver, cache, URLRules.from_config(config.validation))
    proxy = None
    if config.proxy is not None:
        from .proxy import build as build_proxy

        registry = proxy = build_proxy(config, registry.driver, cache)
    authenticator = None
    if config.auth.htpasswd is not None:
        from .auth import HtpasswdAuthenticator

        authenticator = HtpasswdAuthenticator(config.auth.htpasswd)
    app = RegistryApp(config, registry, authenticator)
    if proxy is not None:
        app.services.extend(proxy.services)
    if config.notifications.endpoints:
        # Only configurations with endpoints pay for importing the notifier.
        from .notifications import make_notifier

        app.notifier = make_notifier(config)
        if app.notifier is not None:
            app.services.append(app.notifier)
    _add_health_and_metrics(app, driver, metrics)
    return app


def _add_health_and_metrics(app: RegistryApp, driver: StorageDriver, metrics: Metrics | None) -> None:
    """The health checks and their gate, the metrics and the debug server that shows both."""
    gate = HealthGate()
    checkers = build_checkers(app.config, driver, gate)
    if checkers:
        app.health = gate
        app.services.extend(checkers)
    app.metrics = metrics
    if metrics is not None and app.notifier is not None:
        metrics.watch_notifier(app.notifier)
    if app.config.http.debug.addr:
        from .debug import DebugServer

        app.debug = DebugServer(app.config, gate, metrics)
        app.services.append(app.debug)
