"""The registry's side of notifications: :class:`Notifier` hands each event to every endpoint that does
not ignore it, and :class:`RequestNotifier` records the events of one request for the handlers, as
:class:`~.events.Captured` values that each endpoint's sender turns into JSON in its own thread.

Handlers call a :class:`RequestNotifier` only after the storage call succeeded, so a failed request
notifies nobody. Where the emulator can do more than distribution 2.8, it notifies as 3.x does: a
``DELETE`` of a tag (2.8 refuses it) sends ``delete`` with the repository and tag.
"""

from __future__ import annotations

import logging
import socket
import time
import typing as t
import uuid

from .. import routes
from . import events
from .events import BLOB_MEDIA_TYPE
from .events import DELETE
from .events import MOUNT
from .events import PULL
from .events import PUSH
from .events import Captured
from .events import CapturedRequest
from .events import Encoder
from .events import Ids
from .events import Target
from .sender import EndpointMetrics
from .sender import EndpointSender

if t.TYPE_CHECKING:
    from werkzeug.routing import MapAdapter
    from werkzeug.wrappers import Request

    from ..config import EndpointConfig
    from ..config import HTTPConfig
    from ..config import NotificationsConfig

log = logging.getLogger("emulator.notifications")


class RequestView(t.Protocol):
    """What the events of a request are built from: the handler's context (:class:`emulator.context.Context`)
    offers it, and this package needs nothing else of it, so the context may name this package."""

    request: Request
    adapter: MapAdapter
    api: str


class _Filter:
    """What an endpoint ignores: events whose target media type or action is listed."""

    def __init__(self, endpoint: EndpointConfig) -> None:
        self.media_types = frozenset(endpoint.ignoredmediatypes)
        self.actions = frozenset(endpoint.ignoredactions)
        #: Whether anything is ignored at all: most endpoints take every event.
        self.active = bool(self.media_types or self.actions)

    def drops(self, event: Captured) -> bool:
        return event.target.action in self.actions or event.target.media_type in self.media_types


class Notifier:
    """Every enabled endpoint's sender; a :class:`~emulator.app.Service` that starts and stops them all.

    :param http: the ``http`` section: the port of ``http.addr`` goes into each event's ``source``,
        ``http.prefix``, ``http.host`` and ``http.relativeurls`` shape the targets' URLs.
    """

    def __init__(self, config: NotificationsConfig, http: HTTPConfig) -> None:
        self.include_references = config.includereferences
        self.ids = Ids()
        self.source = events.source_fields(socket.gethostname(), http.addr, str(uuid.uuid4()))
        self.senders: list[tuple[EndpointSender[Captured], _Filter]] = []
        url_map = routes.build_map(http.prefix)  # the app's own: built once per prefix
        for endpoint in config.endpoints:
            if endpoint.disabled:
                log.info("notifications endpoint %s (%s) is disabled", endpoint.name, endpoint.url)
                continue
            encoder = Encoder(
                self.ids, self.source, url_map, host_setting=http.host, relative=http.relativeurls
            )
            sender = EndpointSender(endpoint, encoder)
            self.senders.append((sender, _Filter(endpoint)))
        #: Queues an event for every endpoint that does not ignore it. Most registries have one endpoint
        #: that ignores nothing, and then it is that endpoint's ``put``: one call less per event.
        self.notify: t.Callable[[Captured], None] = self._notify_each
        if len(self.senders) == 1 and not self.senders[0][1].active:
            self.notify = self.senders[0][0].put

    def _notify_each(self, event: Captured) -> None:
        for sender, ignored in self.senders:
            if not (ignored.active and ignored.drops(event)):
                sender.put(event)

    def endpoint_metrics(self) -> list[EndpointMetrics]:
        """The counters of every enabled endpoint, in configuration order."""
        return [sender.metrics() for sender, _ in self.senders]

    def start(self) -> None:
        for sender, _ in self.senders:
            sender.start()

    def stop(self) -> None:
        for sender, _ in self.senders:
            sender.stop()

    def for_request(self, context: RequestView, user: str | None) -> RequestNotifier:
        return RequestNotifier(self, context, user)


class RequestNotifier:
    """The events of one request. Every method is called after its storage call succeeded.

    :param user: the authenticated user; without one, the Basic-auth user name the client sent (even
        with no authentication configured), as distribution reports it.
    """

    __slots__ = ("_context", "_notifier", "_request", "_user")

    def __init__(self, notifier: Notifier, context: RequestView, user: str | None) -> None:
        self._notifier = notifier
        self._context = context
        self._user = user
        self._request: CapturedRequest | None = None

    # Pushes, pulls and mounts make their Target with every field in order (action, media type, size,
    # digest, repository, source repository, route, tag) and hand it straight to _emit: they are most
    # events, and keyword arguments passed on through two calls cost a request more than the event itself.

    def blob_pushed(self, repository: str, digest: str, size: int) -> None:
        self._emit(Target(PUSH, BLOB_MEDIA_TYPE, size, digest, repository, "", routes.BLOB, ""))

    def blob_pulled(self, repository: str, digest: str, size: int) -> None:
        self._emit(Target(PULL, BLOB_MEDIA_TYPE, size, digest, repository, "", routes.BLOB, ""))

    def blob_mounted(self, repository: str, digest: str, size: int, from_repository: str | None) -> None:
        source = from_repository or ""
        self._emit(Target(MOUNT, BLOB_MEDIA_TYPE, size, digest, repository, source, routes.BLOB, ""))

    def blob_deleted(self, repository: str, digest: str) -> None:
        self._emit(Target(DELETE, digest=digest, repository=repository))

    def manifest_pushed(
        self, repository: str, digest: str, media_type: str, content: bytes, tag: str | None
    ) -> None:
        size = len(content)
        self._emit(
            Target(PUSH, media_type, size, digest, repository, "", routes.MANIFEST, tag or ""), content
        )

    def manifest_pulled(
        self, repository: str, digest: str, media_type: str, content: bytes, tag: str | None
    ) -> None:
        size = len(content)
        self._emit(
            Target(PULL, media_type, size, digest, repository, "", routes.MANIFEST, tag or ""), content
        )

    def manifest_deleted(self, repository: str, digest: str, tags: t.Iterable[str]) -> None:
        """A manifest deleted by digest, then each tag that pointed at it and went with it."""
        self._emit(Target(DELETE, digest=digest, repository=repository))
        for tag in tags:
            self.tag_deleted(repository, tag)

    def tag_deleted(self, repository: str, tag: str) -> None:
        self._emit(Target(DELETE, repository=repository, tag=tag))

    def _emit(self, target: Target, manifest: bytes | None = None) -> None:
        """Queue ``target``'s event; ``manifest`` is the content its references are read from."""
        request = self._request
        if request is None:
            request = self._request = self._capture()
        notifier = self._notifier
        if not notifier.include_references:
            manifest = None
        notifier.notify(Captured(request, notifier.ids.take(), time.time(), target, manifest))

    def _capture(self) -> CapturedRequest:
        """What every event of this request repeats; one id for them all, as distribution's request
        context has one. Only references are copied here: the sender builds the fields."""
        context = self._context
        environ = context.request.environ
        actor = self._user
        if actor is None and "HTTP_AUTHORIZATION" in environ:
            authorization = context.request.authorization
            if authorization is not None and authorization.type == "basic":
                actor = authorization.username
        notifier = self._notifier
        return CapturedRequest.of(
            notifier.ids.take(),
            environ,
            actor or "",
            context.adapter.script_name,
            context.api,
        )
