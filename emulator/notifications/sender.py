"""Delivery to one notification endpoint: a bounded in-order queue drained by one daemon thread.

Events go out in batches: one POST carries every event queued when it leaves, up to
:data:`MAX_BATCH_EVENTS` events and :data:`MAX_BATCH_BYTES` of JSON, in the ``events`` array of
distribution's envelope. The envelope was made for this (2.8's sinks write blocks of events), though
distribution itself puts one event in each POST, so an endpoint written for it must read the whole
array, as the envelope's format asks. Batching is what keeps notifications cheap: a POST costs the
registry's interpreter far more than the event it carries, and each time the thread wakes it takes the
interpreter from the requests being served. A sender that finds its queue empty sleeps until an event
arrives, which then leaves at once; while events keep coming, it wakes once per :data:`SEND_INTERVAL`
(sooner only when a whole batch waits), so a busy registry sends a few large POSTs instead of one per
request, and an event waits at most that long for the events that share its POST. Measured on the
benchmark's manifest GET row (c=32): at 10 ms the sender held the interpreter for 14% of the samples
(py-spy --gil), a third of it in the POST; 50 ms keeps a registry serving 2,500 requests/s to about
20 POSTs/s.

A failed POST is retried forever with the same batch, as distribution's retrying sink does: up to
``threshold`` tries back to back, then one try per ``backoff`` until one succeeds, which resets the
count. Later events wait behind it, so an endpoint sees events in the order they happened. A request
only ever appends to the queue (waking the sender only when it sleeps), so a slow or dead endpoint
never slows the registry. The counters count events, as distribution's do: a POST of ten events that
fails adds ten failures.

One connection is kept open to the endpoint and reused (HTTP/1.1 keep-alive); a connection the
endpoint closed while idle is replaced once without counting a failure, as Go's client does. The POST
is made with :mod:`http.client` rather than urllib: urllib turns a redirected POST into a GET or raises
on 307, while a plain status check counts any 2xx or 3xx as delivered, which is what distribution's
status check sees for a redirect it could follow.
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
from .events import envelope

if t.TYPE_CHECKING:
    from ..config import EndpointConfig

log = logging.getLogger("emulator.notifications")

#: What Go's HTTP client says it is: endpoints written for distribution may look at it.
USER_AGENT = "Go-http-client/1.1"
#: How long :meth:`EndpointSender.stop` waits for the thread, beyond aborting a POST in flight.
STOP_WAIT = 2.0
#: The most events one POST carries.
MAX_BATCH_EVENTS = 500
#: The most JSON one POST carries, unless a single event is larger.
MAX_BATCH_BYTES = 1 << 20
#: The least time between two POSTs while events keep coming, in seconds.
SEND_INTERVAL = 0.05

_T = t.TypeVar("_T")


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
    #: Events in POSTs answered 2xx or 3xx.
    successes: int
    #: Events in POSTs answered with any other status.
    failures: int
    #: Events in POSTs that got no answer: connection refused, timeout, reset.
    errors: int
    #: Events by the status line of the answer to their POST, such as ``"500 Internal Server Error"``.
    statuses: dict[str, int] = field(default_factory=dict)
    #: Dropped unsent because the queue was full (an extension of ours: distribution's queue is unbounded).
    dropped: int = 0


class DeliveryError(Exception):
    """A POST that was not delivered; ``status`` is its status line, ``None`` when nothing answered."""

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


class EndpointSender(t.Generic[_T]):
    """The queue and delivery thread of one endpoint; a :class:`~emulator.app.Service`.

    :param encode: one queued event's JSON; called in the delivery thread.
    """

    def __init__(self, endpoint: EndpointConfig, encode: t.Callable[[_T], bytes]) -> None:
        self.endpoint = endpoint
        self._encode = encode
        self._url = urllib.parse.urlsplit(endpoint.url)
        self._limit = max(endpoint.queuesize, 1)
        # Credentials in the URL become Basic auth unless a configured header already authorizes, as Go's
        # client does.
        self._basic_auth: str | None = None
        configured = {name.lower() for name in endpoint.headers}
        if self._url.username is not None and "authorization" not in configured:
            user = urllib.parse.unquote(self._url.username)
            password = urllib.parse.unquote(self._url.password or "")
            self._basic_auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._queue: collections.deque[_T] = collections.deque()
        # A plain lock under the condition: put() takes it once per event.
        self._changed = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        # Set by stop(): each thread has its own, so a thread that outlives stop() cannot resume after a
        # later start().
        self._stopping = threading.Event()
        # True while the thread waits for an event with nothing queued: only then does put() wake it.
        self._sleeping = False
        self._in_flight = 0
        self._connection: http.client.HTTPConnection | None = None
        # Circuit breaker state: failed tries since the last success, and when the last one happened.
        self._failures = 0
        self._last_failure = 0.0
        #: Events the thread took off the queue and did not put back.
        self._taken = 0
        self._successes = 0
        self._failed = 0
        self._errors = 0
        self._dropped = 0
        self._statuses: collections.Counter[str] = collections.Counter()

    @property
    def name(self) -> str:
        return self.endpoint.name

    def put(self, event: _T) -> None:
        """Queue ``event``; a full queue drops its oldest event to make room. Never blocks: appending
        to the deque needs no lock, which is taken only to wake a sleeping sender or to drop."""
        queue = self._queue
        queue.append(event)
        if len(queue) > self._limit:
            self._drop_oldest()
        if self._sleeping:
            with self._changed:
                if self._sleeping:
                    self._sleeping = False
                    self._changed.notify()

    def _drop_oldest(self) -> None:
        with self._changed:
            if len(self._queue) <= self._limit:
                return  # another request dropped one first
            self._queue.popleft()
            self._dropped += 1
        log.warning(
            "notifications endpoint %s: queue full (%d events), dropped the oldest event",
            self.name,
            self._limit,
        )

    def metrics(self) -> EndpointMetrics:
        with self._changed:
            return EndpointMetrics(
                name=self.endpoint.name,
                url=self.endpoint.url,
                pending=len(self._queue) + self._in_flight,
                # Every accepted event was taken by the thread, dropped or is still queued.
                events=self._taken + self._dropped + len(self._queue),
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
        last_post = -SEND_INTERVAL
        try:
            while True:
                batch = self._next_batch(stopping, last_post)
                if batch is None:
                    return
                events, body = batch
                try:
                    if not self._deliver(events, body, stopping):
                        return
                finally:
                    with self._changed:
                        self._in_flight = 0
                last_post = time.monotonic()
        finally:
            self._disconnect()

    def _next_batch(self, stopping: threading.Event, last_post: float) -> tuple[list[_T], bytes] | None:
        """The events of the next POST, taken off the queue, and the POST's body; ``None`` once stopped."""
        with self._changed:
            while not stopping.is_set():
                if not self._queue:
                    # Flag first, look again, then sleep: put() appends before it reads the flag, so an
                    # event appended meanwhile is either seen here or wakes the thread.
                    self._sleeping = True
                    if not self._queue:
                        self._changed.wait()
                    self._sleeping = False
                    continue
                wait = last_post + SEND_INTERVAL - time.monotonic()
                if wait <= 0 or len(self._queue) >= MAX_BATCH_EVENTS:
                    break
                self._changed.wait(wait)
            if stopping.is_set():
                return None
            events = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH_EVENTS))]
            self._in_flight = len(events)
            self._taken += len(events)
        parts: list[bytes] = []
        kept: list[_T] = []
        size = 0
        for number, event in enumerate(events):
            try:
                encoded = self._encode(event)
            except Exception:
                # A bug in encoding must not stop delivery of the events after this one.
                log.exception("notifications endpoint %s: an event could not be encoded", self.name)
                with self._changed:
                    self._dropped += 1
                    self._taken -= 1
                    self._in_flight -= 1
                continue
            if parts and size + len(encoded) > MAX_BATCH_BYTES:
                self._put_back(events[number:])
                break
            parts.append(encoded)
            kept.append(event)
            size += len(encoded)
        return kept, envelope(parts)

    def _deliver(self, events: list[_T], body: bytes, stopping: threading.Event) -> bool:
        """POST ``body`` until it is delivered; ``False`` when stopped first (the events are put back)."""
        if not events:
            return True
        count = len(events)
        while True:
            with self._changed:
                wait = self._breaker_wait()
                while wait > 0 and not stopping.is_set():
                    self._changed.wait(wait)
                    wait = self._breaker_wait()
                if stopping.is_set():
                    self._put_back_locked(events)
                    return False
            try:
                status = self._post(body, stopping)
            except DeliveryError as error:
                with self._changed:
                    if stopping.is_set():
                        self._put_back_locked(events)
                        return False
                    self._failures += 1
                    self._last_failure = time.monotonic()
                    if error.status is None:
                        self._errors += count
                    else:
                        self._failed += count
                        self._statuses[error.status] += count
                log.warning(
                    "notifications endpoint %s: delivery of %d events to %s failed: %s",
                    self.name,
                    count,
                    self.endpoint.url,
                    error,
                )
                continue
            with self._changed:
                self._failures = 0
                self._successes += count
                self._statuses[status] += count
            return True

    def _put_back(self, events: list[_T]) -> None:
        with self._changed:
            self._put_back_locked(events)

    def _put_back_locked(self, events: list[_T]) -> None:
        # At the head, in their order: the next batch (or the next start) delivers them first.
        self._queue.extendleft(reversed(events))
        self._in_flight -= len(events)
        self._taken -= len(events)

    def _breaker_wait(self) -> float:
        """Seconds until another try is allowed: none while fewer than ``threshold`` tries failed in a
        row, else until ``backoff`` after the last failure."""
        if self._failures < _positive(self.endpoint.threshold, 10):
            return 0.0
        return self._last_failure + _positive(self.endpoint.backoff, 1.0) - time.monotonic()

    def _post(self, body: bytes, stopping: threading.Event) -> str:
        """POST ``body``; the answer's status line when it is 2xx or 3xx, else :class:`DeliveryError`."""
        connection = self._connection
        if connection is not None:
            try:
                return self._post_on(connection, body)
            except _StaleConnection:
                # The endpoint closed the connection while it was idle: nothing reached it.
                self._disconnect()
        return self._post_on(self._connect(stopping), body)

    def _connect(self, stopping: threading.Event) -> http.client.HTTPConnection:
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
        return connection

    def _post_on(self, connection: http.client.HTTPConnection, body: bytes) -> str:
        reused = connection.sock is not None
        url = self._url
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
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
            self._disconnect()
            if reused:
                raise _StaleConnection() from None
            raise DeliveryError(str(error) or type(error).__name__) from None
        except (OSError, ValueError, http.client.HTTPException) as error:
            # ValueError: a configured header value that HTTP cannot carry (a line break).
            self._disconnect()
            raise DeliveryError(str(error) or type(error).__name__) from None
        if response.will_close:
            self._disconnect()
        status = f"{response.status} {response.reason}".strip()
        if not 200 <= response.status < 400:
            raise DeliveryError(f"the endpoint answered {status}", status)
        return status

    def _disconnect(self) -> None:
        with self._changed:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


class _StaleConnection(Exception):
    """A kept-alive connection that the endpoint had closed before this POST."""


def _positive(value: float, default: float) -> float:
    # distribution replaces a zero or negative timeout, threshold or backoff by its default.
    return value if value > 0 else default
