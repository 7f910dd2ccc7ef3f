"""Delivery to one notification endpoint: a bounded in-order queue drained by one daemon thread.

Each event is one POST. A failed POST is retried forever, as distribution's retrying sink does: up to
``threshold`` tries back to back, then one try per ``backoff`` until one succeeds, which resets the
count. Later events wait behind it, so an endpoint sees events in the order they happened. A request
only ever appends to the queue, so a slow or dead endpoint never slows the registry.

The POST is made with :mod:`http.client` rather than urllib: urllib turns a redirected POST into a GET
or raises on 307, while a plain status check counts any 2xx or 3xx as delivered, which is what
distribution's status check sees for a redirect it could follow.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import http.client
import logging
import socket
import threading
import time
import typing as t
import urllib.parse
from dataclasses import dataclass
from dataclasses import field

from .events import ENVELOPE_MEDIA_TYPE
from .events import Event
from .events import envelope

if t.TYPE_CHECKING:
    from ..config import EndpointConfig

log = logging.getLogger("emulator.notifications")

#: What Go's HTTP client says it is: endpoints written for distribution may look at it.
USER_AGENT = "Go-http-client/1.1"
#: How long :meth:`EndpointSender.stop` waits for the thread, beyond aborting a POST in flight.
STOP_WAIT = 2.0


@dataclass(frozen=True)
class EndpointMetrics:
    """One endpoint's counters, as distribution keeps them (and 3.x publishes them as
    ``registry_notifications_*``). Every count is of events; a retried event counts once per try."""

    name: str
    url: str
    #: Queued or being delivered.
    pending: int
    #: Accepted for delivery (ignored events are not).
    events: int
    #: POSTs answered 2xx or 3xx.
    successes: int
    #: POSTs answered with any other status.
    failures: int
    #: POSTs that got no answer: connection refused, timeout, reset.
    errors: int
    #: Answers by status line, such as ``"500 Internal Server Error"``.
    statuses: dict[str, int] = field(default_factory=dict)
    #: Dropped unsent because the queue was full (an extension of ours: distribution's queue is unbounded).
    dropped: int = 0


class DeliveryError(Exception):
    """A POST that was not delivered; ``status`` is its status line, ``None`` when nothing answered."""

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


class EndpointSender:
    """The queue and delivery thread of one endpoint; a :class:`~emulator.app.Service`."""

    def __init__(self, endpoint: EndpointConfig) -> None:
        self.endpoint = endpoint
        self._url = urllib.parse.urlsplit(endpoint.url)
        # Credentials in the URL become Basic auth unless a configured header already authorizes, as Go's
        # client does.
        self._basic_auth: str | None = None
        configured = {name.lower() for name in endpoint.headers}
        if self._url.username is not None and "authorization" not in configured:
            user = urllib.parse.unquote(self._url.username)
            password = urllib.parse.unquote(self._url.password or "")
            self._basic_auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._queue: collections.deque[Event] = collections.deque()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        # Set by stop(): each thread has its own, so a thread that outlives stop() cannot resume after a
        # later start().
        self._stopping = threading.Event()
        self._in_flight = 0
        self._connection: http.client.HTTPConnection | None = None
        # Circuit breaker state: failures since the last success, and when the last one happened.
        self._failures = 0
        self._last_failure = 0.0
        self._events = 0
        self._successes = 0
        self._failed = 0
        self._errors = 0
        self._dropped = 0
        self._statuses: collections.Counter[str] = collections.Counter()

    @property
    def name(self) -> str:
        return self.endpoint.name

    def put(self, event: Event) -> None:
        """Queue ``event``; a full queue drops its oldest event to make room. Never blocks."""
        with self._changed:
            if len(self._queue) >= max(self.endpoint.queuesize, 1):
                self._queue.popleft()
                self._dropped += 1
                log.warning(
                    "notifications endpoint %s: queue full (%d events), dropped the oldest event",
                    self.name,
                    len(self._queue) + 1,
                )
            self._queue.append(event)
            self._events += 1
            self._changed.notify()

    def metrics(self) -> EndpointMetrics:
        with self._changed:
            return EndpointMetrics(
                name=self.endpoint.name,
                url=self.endpoint.url,
                pending=len(self._queue) + self._in_flight,
                events=self._events,
                successes=self._successes,
                failures=self._failed,
                errors=self._errors,
                statuses=dict(self._statuses),
                dropped=self._dropped,
            )

    def start(self) -> None:
        with self._changed:
            if self._thread is not None:
                return
            self._stopping = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stopping,), name=f"notifications-{self.name}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Deliver nothing more; events still queued stay for a later :meth:`start`."""
        with self._changed:
            thread, self._thread = self._thread, None
            self._stopping.set()
            self._changed.notify_all()
            connection = self._connection
        if connection is not None and connection.sock is not None:
            # Wakes a POST blocked on a slow endpoint now instead of after its timeout.
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_WAIT)

    def _run(self, stopping: threading.Event) -> None:
        while True:
            with self._changed:
                while not self._queue and not stopping.is_set():
                    self._changed.wait()
                if stopping.is_set():
                    return
                event = self._queue.popleft()
                self._in_flight = 1
            try:
                if not self._deliver(event, stopping):
                    return
            finally:
                with self._changed:
                    self._in_flight = 0

    def _deliver(self, event: Event, stopping: threading.Event) -> bool:
        """POST ``event`` until it is delivered; ``False`` when stopped first (the event is put back)."""
        body = envelope([event])
        while True:
            with self._changed:
                wait = self._breaker_wait()
                while wait > 0 and not stopping.is_set():
                    self._changed.wait(wait)
                    wait = self._breaker_wait()
                if stopping.is_set():
                    self._put_back(event)
                    return False
            try:
                self._post(body, stopping)
            except DeliveryError as error:
                with self._changed:
                    if stopping.is_set():
                        self._put_back(event)
                        return False
                    self._failures += 1
                    self._last_failure = time.monotonic()
                    if error.status is None:
                        self._errors += 1
                    else:
                        self._failed += 1
                        self._statuses[error.status] += 1
                log.warning(
                    "notifications endpoint %s: delivery to %s failed: %s",
                    self.name,
                    self.endpoint.url,
                    error,
                )
                continue
            with self._changed:
                self._failures = 0
                self._successes += 1
            return True

    def _put_back(self, event: Event) -> None:
        # At the head, where it was: the next start delivers it first. Called holding the lock.
        self._queue.appendleft(event)
        self._in_flight = 0

    def _breaker_wait(self) -> float:
        """Seconds until another try is allowed: none while fewer than ``threshold`` tries failed in a
        row, else until ``backoff`` after the last failure."""
        if self._failures < _positive(self.endpoint.threshold, 10):
            return 0.0
        return self._last_failure + _positive(self.endpoint.backoff, 1.0) - time.monotonic()

    def _post(self, body: bytes, stopping: threading.Event) -> None:
        url = self._url
        timeout = _positive(self.endpoint.timeout, 1.0)
        connection: http.client.HTTPConnection
        try:
            host, port = url.hostname or "", url.port
        except ValueError as error:
            raise DeliveryError(f"invalid URL: {error}") from None
        if url.scheme == "https":
            connection = http.client.HTTPSConnection(host, port, timeout=timeout)
        elif url.scheme == "http":
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        else:
            raise DeliveryError(f"unsupported URL scheme {url.scheme!r}")
        with self._changed:
            if stopping.is_set():
                raise DeliveryError("stopped")
            # Published for stop(), which shuts its socket down to end a POST waiting on the endpoint.
            self._connection = connection
        try:
            connection.putrequest(
                "POST",
                urllib.parse.urlunsplit(("", "", url.path or "/", url.query, "")),
                skip_accept_encoding=True,
            )
            connection.putheader("Content-Type", ENVELOPE_MEDIA_TYPE)
            connection.putheader("Content-Length", str(len(body)))
            connection.putheader("User-Agent", USER_AGENT)
            for name, values in self.endpoint.headers.items():
                for value in values:
                    connection.putheader(name, value)
            if self._basic_auth is not None:
                connection.putheader("Authorization", self._basic_auth)
            connection.endheaders(body)
            response = connection.getresponse()
            response.read()
        except (OSError, ValueError, http.client.HTTPException) as error:
            # ValueError: a configured header value that HTTP cannot carry (a line break).
            raise DeliveryError(str(error) or type(error).__name__) from None
        finally:
            with self._changed:
                self._connection = None
            connection.close()
        status = f"{response.status} {response.reason}".strip()
        if not 200 <= response.status < 400:
            raise DeliveryError(f"the endpoint answered {status}", status)
        with self._changed:
            self._statuses[status] += 1


def _positive(value: float, default: float) -> float:
    # distribution replaces a zero or negative timeout, threshold or backoff by its default.
    return value if value > 0 else default
