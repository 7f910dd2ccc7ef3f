"""The registry's side of notifications: :class:`Notifier` hands each event to every endpoint that does
not ignore it, and :class:`RequestNotifier` builds the events of one request for the handlers.

Handlers call a :class:`RequestNotifier` only after the storage call succeeded, so a failed request
notifies nobody. Where the emulator can do more than distribution 2.8, it notifies as 3.x does: a
``DELETE`` of a tag (2.8 refuses it) sends ``delete`` with the repository and tag.
"""

from __future__ import annotations

import logging
import socket
import typing as t
import uuid

from . import events
from .events import Event
from .sender import EndpointMetrics
from .sender import EndpointSender

if t.TYPE_CHECKING:
    from werkzeug.wrappers import Request

    from ..config import EndpointConfig
    from ..config import NotificationsConfig

log = logging.getLogger("emulator.notifications")


class _Filter:
    """What an endpoint ignores: events whose target media type or action is listed."""

    def __init__(self, endpoint: EndpointConfig) -> None:
        self.media_types = frozenset(endpoint.ignoredmediatypes)
        self.actions = frozenset(endpoint.ignoredactions)

    def drops(self, event: Event) -> bool:
        return event["action"] in self.actions or event["target"].get("mediaType") in self.media_types


class Notifier:
    """Every enabled endpoint's sender; a :class:`~emulator.app.Service` that starts and stops them all.

    :param addr: ``http.addr``, whose port goes into each event's ``source``.
    """

    def __init__(self, config: NotificationsConfig, addr: str) -> None:
        self.include_references = config.includereferences
        self.source = events.source_fields(socket.gethostname(), addr, str(uuid.uuid4()))
        self.senders: list[tuple[EndpointSender, _Filter]] = []
        for endpoint in config.endpoints:
            if endpoint.disabled:
                log.info("notifications endpoint %s (%s) is disabled", endpoint.name, endpoint.url)
                continue
            self.senders.append((EndpointSender(endpoint), _Filter(endpoint)))

    def notify(self, event: Event) -> None:
        for sender, ignored in self.senders:
            if not ignored.drops(event):
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

    def for_request(
        self,
        request: Request,
        user: str | None,
        blob_url: t.Callable[[str, str], str],
        manifest_url: t.Callable[[str, str], str],
    ) -> RequestNotifier:
        return RequestNotifier(self, request, user, blob_url, manifest_url)


class RequestNotifier:
    """The events of one request. Every method is called after its storage call succeeded.

    :param user: the authenticated user; without one, the Basic-auth user name the client sent (even
        with no authentication configured), as distribution reports it.
    :param blob_url: the URL of ``(repository, digest)`` as a blob, as the registry's own links are built.
    :param manifest_url: the same for a manifest.
    """

    def __init__(
        self,
        notifier: Notifier,
        request: Request,
        user: str | None,
        blob_url: t.Callable[[str, str], str],
        manifest_url: t.Callable[[str, str], str],
    ) -> None:
        self._notifier = notifier
        self._request = request
        self._user = user
        self._blob_url = blob_url
        self._manifest_url = manifest_url
        self._request_fields: dict[str, t.Any] | None = None

    def blob_pushed(self, repository: str, digest: str, size: int) -> None:
        self._emit(events.PUSH, self._blob_target(repository, digest, size))

    def blob_pulled(self, repository: str, digest: str, size: int) -> None:
        self._emit(events.PULL, self._blob_target(repository, digest, size))

    def blob_mounted(self, repository: str, digest: str, size: int, from_repository: str | None) -> None:
        self._emit(
            events.MOUNT, self._blob_target(repository, digest, size, from_repository=from_repository or "")
        )

    def blob_deleted(self, repository: str, digest: str) -> None:
        self._emit(events.DELETE, events.target(digest=digest, repository=repository))

    def manifest_pushed(
        self, repository: str, digest: str, media_type: str, content: bytes, tag: str | None
    ) -> None:
        self._emit(events.PUSH, self._manifest_target(repository, digest, media_type, content, tag))

    def manifest_pulled(
        self, repository: str, digest: str, media_type: str, content: bytes, tag: str | None
    ) -> None:
        self._emit(events.PULL, self._manifest_target(repository, digest, media_type, content, tag))

    def manifest_deleted(self, repository: str, digest: str, tags: t.Iterable[str]) -> None:
        """A manifest deleted by digest, then each tag that pointed at it and went with it."""
        self._emit(events.DELETE, events.target(digest=digest, repository=repository))
        for tag in tags:
            self.tag_deleted(repository, tag)

    def tag_deleted(self, repository: str, tag: str) -> None:
        self._emit(events.DELETE, events.target(repository=repository, tag=tag))

    def _blob_target(
        self, repository: str, digest: str, size: int, *, from_repository: str = ""
    ) -> dict[str, t.Any]:
        return events.target(
            media_type=events.BLOB_MEDIA_TYPE,
            size=size,
            digest=digest,
            repository=repository,
            from_repository=from_repository,
            url=self._blob_url(repository, digest),
        )

    def _manifest_target(
        self, repository: str, digest: str, media_type: str, content: bytes, tag: str | None
    ) -> dict[str, t.Any]:
        return events.target(
            media_type=media_type,
            size=len(content),
            digest=digest,
            repository=repository,
            url=self._manifest_url(repository, digest),
            tag=tag or "",
            references=events.references(content) if self._notifier.include_references else None,
        )

    def _emit(self, action: str, target: dict[str, t.Any]) -> None:
        if self._request_fields is None:
            # One id for every event of a request, as distribution's request context has one.
            request = self._request
            self._request_fields = events.request_fields(
                request_id=str(uuid.uuid4()),
                environ=request.environ,
                host=request.headers.get("Host", ""),
                method=request.method,
                user_agent=request.headers.get("User-Agent", ""),
            )
        actor = self._user
        if actor is None:
            authorization = self._request.authorization
            if authorization is not None and authorization.type == "basic":
                actor = authorization.username
        event = events.event(action, target, self._request_fields, actor, self._notifier.source)
        self._notifier.notify(event)
