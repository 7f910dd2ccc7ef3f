"""Prometheus metrics with distribution's family names, types, labels and buckets.

With ``http.debug.prometheus.enabled`` the app gets a :class:`Metrics`: its own
:class:`~prometheus_client.CollectorRegistry` (two registries in one process never share a counter),
which the debug server exposes at ``http.debug.prometheus.path`` (:mod:`emulator.debug`). Without it
nothing is measured and the request path does no metrics work at all.

The families (distribution 2.8):

* ``registry_http_requests_total{code,method,handler}``, ``registry_http_request_duration_seconds
  {method,handler}``, ``registry_http_request_size_bytes{handler}``, ``registry_http_response_size_bytes
  {handler}``, ``registry_http_in_flight_requests{handler}``: every request that reached a route; requests
  that match none (404) and those the health gate refuses are not counted, as in distribution.
* ``registry_storage_action_seconds{driver,action}``: the storage driver's calls
  (:func:`instrument_driver`).
* ``registry_storage_cache_total{type}``: lookups in the blob-descriptor cache, when one is configured
  (:class:`CountingCache`).
* With notification endpoints, distribution 3.x's ``registry_notifications_events_total{type,endpoint}``,
  ``registry_notifications_pending_total{endpoint}`` (a gauge, despite its name) and
  ``registry_notifications_status_total{code,endpoint}`` (:class:`NotificationsCollector`): 2.8 keeps
  these counters in expvar only.

Handler labels are distribution's route names. Two routes distribution 2.8 does not have get labels of
their own kind: the referrers API is ``referrers``, and the pack registry's ``/v1/`` mirror of the API
shares the label of its ``/v2/`` twin (``/v1/<name>/manifests/<ref>`` is a ``manifest`` request), so the
families describe the same API whichever root a client uses.

Where the measurements differ from Go's: a request's duration and in-flight time end when the handler
has built its response, since blob bodies leave afterwards through ``sendfile``, which wrapping the
response body to time it would defeat; and a response's size is its ``Content-Length`` (0 for HEAD and
for bodies of unknown length) rather than the bytes written. A request's size is client_golang's
estimate: URL, method, protocol, headers and ``Content-Length``.

The values are kept here rather than in prometheus_client's ``Counter``/``Histogram``: one of their
``observe`` calls takes 5 us (a lock per bucket and per sum, a linear bucket search), and a manifest GET
makes five of them (three request histograms, two timed ``Stat`` calls). Here the request path only
appends: a request adds one tuple to its route's pending list at :meth:`~Metrics.end`, a timed driver call
one float to its series', a cache lookup one flag. The pending values are folded into the buckets (by
bisection, counted by ``collections.Counter``, so the loop over them runs in C) under the :class:`Metrics`
lock, at every scrape and whenever a list reaches :data:`FOLD_AT` (by the request that filled it, unless
another thread is folding). Measured in instructions per manifest GET (cachegrind, in-process): metrics
took 14% more than the same request without them when each request updated the series under the lock
and walked the environ for its size, 5% now. A scrape reads the series under the same lock into
prometheus_client's metric families (:class:`_Collector`), so the exposition format is still
prometheus_client's.

The process collectors are Python's (``process_*``, ``python_gc_*``, ``python_info``) in place of Go's
``go_*``. As with Go's client, there are no ``*_created`` samples.
"""

from __future__ import annotations

import bisect
import collections
import functools
import itertools
import threading
import time
import typing as t

from prometheus_client import CollectorRegistry
from prometheus_client import gc_collector
from prometheus_client import platform_collector
from prometheus_client import process_collector
from prometheus_client.core import CounterMetricFamily
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from . import routes
from .serving import HEAD_SIZE
from .storage.cache import BlobDescriptorCache

if t.TYPE_CHECKING:
    from werkzeug.wrappers import Request
    from werkzeug.wrappers import Response

    from .drivers.base import StorageDriver
    from .notifications import Notifier
    from .reference import Digest
    from .storage.cache import Descriptor

#: The ``handler`` label of each route of :mod:`emulator.routes`: distribution's route names, ``-`` as
#: ``_``; ``referrers`` is ours (distribution 2.8 has no such route).
HANDLER_LABELS: dict[str, str] = {
    routes.VERSION_CHECK: "base",
    routes.MANIFEST: "manifest",
    routes.TAGS: "tags",
    routes.BLOB: "blob",
    routes.UPLOAD_START: "blob_upload",
    routes.UPLOAD: "blob_upload_chunk",
    routes.CATALOG: "catalog",
    routes.REFERRERS: "referrers",
}

#: go-metrics' request duration buckets (seconds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60)
#: go-metrics' size buckets: 1 KiB doubling 21 times, to 2 GiB.
SIZE_BUCKETS = tuple(1024 * 2**k for k in range(22))

#: The methods whose requests are labelled by their name (RFC 9110's and PATCH).
KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"))

#: client_golang's default buckets, which distribution's storage timer uses (prometheus_client's add
#: 0.075, 0.75 and 7.5).
STORAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: The ``driver`` label: what distribution's drivers call themselves (its S3 driver is ``s3aws``).
DRIVER_LABELS = {"s3": "s3aws"}
#: The timed driver operations, with distribution's ``action`` names. Readers and writers are not timed
#: (distribution's base driver does not time them either): their work happens while bytes stream.
DRIVER_ACTIONS = {
    "get_content": "GetContent",
    "put_content": "PutContent",
    "stat": "Stat",
    "list": "List",
    # The filesystem's listing of bare names, which tag lists use: still distribution's List.
    "names": "List",
    "move": "Move",
    "delete": "Delete",
    "redirect_url": "URLFor",
}
#: The ``type`` label of each blob-descriptor cache count, in distribution's order.
CACHE_TYPES = ("Request", "Hit", "Miss")
#: Observations a series keeps before the request that adds one more folds them in (see :class:`Metrics`):
#: about a millisecond of folding, once per this many requests.
FOLD_AT = 1024

_T = t.TypeVar("_T")


class _Histogram:
    """One histogram series: how many observations fell in each bucket (the last is ``+Inf``) and their
    sum, plus the observations not folded in yet (:attr:`pending`). Only folded or read under its
    :class:`Metrics`' lock."""

    __slots__ = ("bounds", "counts", "pending", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        #: Observations appended by the request path since the last fold.
        self.pending: list[float] = []

    def add(self, values: t.Sequence[float]) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (``le``). map and Counter
        # keep the loop over the values in C.
        counts = self.counts
        for index, count in collections.Counter(
            map(bisect.bisect_left, itertools.repeat(self.bounds), values)
        ).items():
            counts[index] += count
        self.sum += sum(values)

    def fold(self) -> None:
        self.add(_take(self.pending))

    def sample(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative buckets as prometheus_client takes them, and the sum."""
        cumulative, total = [], 0
        for bound, count in zip(_bucket_labels(self.bounds), self.counts, strict=True):
            total += count
            cumulative.append((bound, float(total)))
        return cumulative, self.sum


def _take(pending: list[_T]) -> list[_T]:
    """The items appended to ``pending`` so far, removed from it. Requests append without a lock while
    this runs: the slice and the deletion are one step each for the interpreter, and an item appended
    between them lands after the ones taken, so it stays for the next fold."""
    taken = pending[: len(pending)]
    del pending[: len(taken)]
    return taken


#: The metrics kept for one request until a fold: method label, status, seconds, request and response size.
_Served = tuple[str, int, float, int, int]


#: prometheus_client's spelling of a bound in ``le`` (Go's, such as ``1.0`` and ``+Inf``), typed.
_go_float = t.cast(t.Callable[[float], str], floatToGoString)


@functools.cache
def _bucket_labels(bounds: tuple[float, ...]) -> tuple[str, ...]:
    return (*map(_go_float, bounds), "+Inf")


class _Route:
    """The series of one handler, made once: a request only picks among them."""

    __slots__ = ("counts", "durations", "handler", "in_flight", "pending", "request_size", "response_size")

    def __init__(self, handler: str) -> None:
        self.handler = handler
        #: The requests being served: the in-flight gauge is its size.
        self.in_flight: set[Request] = set()
        #: What each request served since the last fold measured.
        self.pending: list[_Served] = []
        self.request_size = _Histogram(SIZE_BUCKETS)
        self.response_size = _Histogram(SIZE_BUCKETS)
        #: By HTTP method, as the request spelled it.
        self.durations: dict[str, _Histogram] = {}
        #: By status code and method.
        self.counts: collections.Counter[tuple[int, str]] = collections.Counter()

    def fold(self) -> None:
        served = _take(self.pending)
        if not served:
            return
        methods, statuses, seconds, request_sizes, response_sizes = zip(*served, strict=True)
        self.counts.update(zip(statuses, methods, strict=True))
        self.request_size.add(request_sizes)
        self.response_size.add(response_sizes)
        distinct = set(methods)
        for method in distinct:
            duration = self.durations.get(method)
            if duration is None:
                duration = self.durations[method] = _Histogram(DURATION_BUCKETS)
            if len(distinct) == 1:
                duration.add(seconds)
            else:
                duration.add([value for m, value in zip(methods, seconds, strict=True) if m == method])


class Metrics:
    """One app's measurements, exposed through a registry of its own (:attr:`registry`)."""

    def __init__(self) -> None:
        #: Held while pending observations are folded into the series and while a scrape reads them.
        self.lock = threading.Lock()
        # Every handler's series exists from the start (in-flight at 0), as distribution registers them.
        self._routes = {endpoint: _Route(label) for endpoint, label in HANDLER_LABELS.items()}
        #: ``registry_storage_action_seconds`` by driver and action label, made by :func:`instrument_driver`.
        self._storage: dict[tuple[str, str], _Histogram] = {}
        #: ``registry_storage_cache_total`` by type; ``None`` until a :class:`CountingCache` is made.
        self._cache: dict[str, int] | None = None
        #: Blob-descriptor cache lookups since the last fold: whether each was a hit.
        self._cache_pending: list[bool] = []
        self.registry = CollectorRegistry()
        self.registry.register(_Collector(self))
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)

    def begin(self, endpoint: str, request: Request) -> tuple[_Route, float]:
        """``request`` reached ``endpoint`` (a name of :mod:`emulator.routes`); hand the result to
        :meth:`end` once its response is built."""
        route = self._routes.get(endpoint)
        if route is None:
            with self.lock:
                # A route this table does not name yet is counted under its own name, never dropped.
                route = self._routes.setdefault(endpoint, _Route(endpoint))
        route.in_flight.add(request)
        return route, time.perf_counter()

    def end(self, begun: tuple[_Route, float], request: Request, response: Response) -> None:
        route, started = begun
        elapsed = time.perf_counter() - started
        # A client may send any token as a method; each would be a new series without bound. Methods
        # outside the standard ones count as "UNKNOWN", as client_golang since 1.15 labels them.
        method = request.method if request.method in KNOWN_METHODS else "UNKNOWN"
        pending = route.pending
        pending.append(
            (method, response.status_code, elapsed, request_size(request), response_size(request, response))
        )
        route.in_flight.discard(request)
        if len(pending) >= FOLD_AT:
            self.fold_if_free()

    def fold_if_free(self) -> None:
        """Fold every pending observation into its series, unless another thread is folding or reading
        them: a request never waits for another's fold."""
        if self.lock.acquire(blocking=False):
            try:
                self._fold()
            finally:
                self.lock.release()

    def _fold(self) -> None:
        for route in list(self._routes.values()):
            route.fold()
        for series in self._storage.values():
            series.fold()
        hits = _take(self._cache_pending)
        if hits:
            if self._cache is None:
                self._cache = dict.fromkeys(CACHE_TYPES, 0)
            found = sum(hits)
            self._cache["Request"] += len(hits)
            self._cache["Hit"] += found
            self._cache["Miss"] += len(hits) - found

    def storage_series(self, driver: str, action: str) -> _Histogram:
        """The ``registry_storage_action_seconds`` series of ``driver``'s ``action``."""
        with self.lock:
            return self._storage.setdefault((driver, action), _Histogram(STORAGE_BUCKETS))

    def count_cache(self, hit: bool) -> None:
        """Count one blob-descriptor cache lookup: a ``Request``, and a ``Hit`` or a ``Miss``."""
        pending = self._cache_pending
        pending.append(hit)
        if len(pending) >= FOLD_AT:
            self.fold_if_free()

    def enable_cache_counts(self) -> None:
        """Publish ``registry_storage_cache_total`` (at zero until used): distribution only has it when a
        blob-descriptor cache is configured."""
        with self.lock:
            if self._cache is None:
                self._cache = dict.fromkeys(CACHE_TYPES, 0)

    def watch_notifier(self, notifier: Notifier) -> None:
        """Publish ``notifier``'s delivery counters (:class:`NotificationsCollector`)."""
        self.registry.register(NotificationsCollector(notifier))


class _Collector(Collector):
    """The registry's HTTP, storage and cache families, copied under the lock at each scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> t.Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        requests = CounterMetricFamily(
            "registry_http_requests",
            "HTTP requests served, by status code, method and handler.",
            labels=["code", "method", "handler"],
        )
        durations = HistogramMetricFamily(
            "registry_http_request_duration_seconds",
            "Time spent serving HTTP requests, in seconds.",
            labels=["method", "handler"],
        )
        request_sizes = HistogramMetricFamily(
            "registry_http_request_size_bytes",
            "Approximate HTTP request sizes (URL, headers and body), in bytes.",
            labels=["handler"],
        )
        response_sizes = HistogramMetricFamily(
            "registry_http_response_size_bytes",
            "HTTP response body sizes, in bytes.",
            labels=["handler"],
        )
        in_flight = GaugeMetricFamily(
            "registry_http_in_flight_requests", "HTTP requests being served.", labels=["handler"]
        )
        storage = HistogramMetricFamily(
            "registry_storage_action_seconds",
            "Time spent in storage driver calls, in seconds.",
            labels=["driver", "action"],
        )
        cache = CounterMetricFamily(
            "registry_storage_cache",
            "Blob descriptor cache lookups: requests, hits and misses.",
            labels=["type"],
        )
        metrics = self.metrics
        with metrics.lock:
            metrics._fold()
            for route in list(metrics._routes.values()):
                handler = route.handler
                for (code, method), count in route.counts.items():
                    requests.add_metric([str(code), method.lower(), handler], count)
                for method, duration in route.durations.items():
                    durations.add_metric([method.lower(), handler], *duration.sample())
                request_sizes.add_metric([handler], *route.request_size.sample())
                response_sizes.add_metric([handler], *route.response_size.sample())
                in_flight.add_metric([handler], len(route.in_flight))
            for (driver, action), series in metrics._storage.items():
                storage.add_metric([driver, action], *series.sample())
            cached = None if metrics._cache is None else dict(metrics._cache)
        yield from (requests, durations, request_sizes, response_sizes, in_flight, storage)
        if cached is not None:
            for kind, count in cached.items():
                cache.add_metric([kind], count)
            yield cache


def request_size(request: Request) -> int:
    """client_golang's approximate request size: URL, method, protocol, header names and values, and
    the declared body length.

    The head is counted as it arrived when our server counted it (:data:`~emulator.serving.HEAD_SIZE`:
    every header the client sent, ``Host`` with its name); under another WSGI server, from the environ,
    which lacks the headers a server dropped and joins repeated ones by commas.
    """
    environ = request.environ
    content_length = environ.get("CONTENT_LENGTH")
    size = environ.get(HEAD_SIZE)
    if size is None:
        size = len(environ.get("REQUEST_URI", "")) + len(environ.get("REQUEST_METHOD", ""))
        size += len(environ.get("SERVER_PROTOCOL", ""))
        # A walk over the whole environ: a twentieth of a manifest GET's instructions, which is why our
        # server counts the head while it reads it.
        size += sum([len(key) - 5 + len(value) for key, value in environ.items() if key[:5] == "HTTP_"])
        content_type = environ.get("CONTENT_TYPE")
        if content_type:
            size += len("Content-Type") + len(content_type)
        if content_length:
            size += len("Content-Length") + len(content_length)
    return size + int(content_length) if content_length else size


def response_size(request: Request, response: Response) -> int:
    """The body's ``Content-Length``: 0 for HEAD and for a body of unknown length."""
    if request.method == "HEAD":
        return 0
    body = response.response
    if type(body) is list and len(body) == 1 and type(body[0]) is bytes:
        # Werkzeug's set_data keeps a bytes body so, and its Content-Length is that length: reading the
        # header back costs seven times as much (a case-insensitive walk over every header).
        return len(body[0])
    length = response.headers.get("Content-Length")
    try:
        return int(length) if length else 0
    except ValueError:
        return 0  # not a length at all: a size the response cannot be said to have


def instrument_driver(driver: StorageDriver, metrics: Metrics) -> StorageDriver:
    """Time ``driver``'s calls into ``registry_storage_action_seconds``; returns the same driver.

    The timed methods are replaced on the instance rather than behind a wrapper class, so the driver
    keeps its class, its capabilities (:attr:`~emulator.drivers.base.StorageDriver.local`,
    ``local_files``), its own attributes and its methods' results and errors; calls it makes to itself
    (``exists`` to ``stat``, ``walk`` to ``list``) are timed as the operation they are.
    """
    label = DRIVER_LABELS.get(driver.name, driver.name)
    for attribute, action in DRIVER_ACTIONS.items():
        if not hasattr(driver, attribute):
            continue  # an entry point only some drivers have (the filesystem's names)
        series = metrics.storage_series(label, action)
        setattr(driver, attribute, _timed(getattr(driver, attribute), series, metrics))
    return driver


_F = t.TypeVar("_F", bound=t.Callable[..., t.Any])


def _timed(method: _F, series: _Histogram, metrics: Metrics) -> _F:
    pending, perf_counter = series.pending, time.perf_counter

    def timed(*args: t.Any, **kwargs: t.Any) -> t.Any:
        started = perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            pending.append(perf_counter() - started)
            if len(pending) >= FOLD_AT:
                metrics.fold_if_free()

    return t.cast(_F, timed)


class CountingCache(BlobDescriptorCache):
    """A blob-descriptor cache that counts its lookups (``Request``, then ``Hit`` or ``Miss``) as
    distribution's cached statter does, and otherwise is ``cache``."""

    def __init__(self, cache: BlobDescriptorCache, metrics: Metrics) -> None:
        super().__init__(0)
        self.cache = cache
        self._metrics = metrics
        metrics.enable_cache_counts()

    def get(self, digest: Digest, repository: str = "") -> Descriptor | None:
        found = self.cache.get(digest, repository)
        self._metrics.count_cache(found is not None)
        return found

    def set(self, descriptor: Descriptor, repository: str = "") -> None:
        self.cache.set(descriptor, repository)

    def clear(self, digest: Digest, repository: str = "") -> None:
        self.cache.clear(digest, repository)

    def __len__(self) -> int:
        return len(self.cache)


class NotificationsCollector(Collector):
    """distribution 3.x's notification families, read from the senders' own counters at each scrape
    (so the delivery path keeps one set of counters)."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def collect(self) -> t.Iterator[CounterMetricFamily | GaugeMetricFamily]:
        events = CounterMetricFamily(
            "registry_notifications_events",
            "Notification events by outcome (Events queued, Successes, Failures, Errors) and endpoint.",
            labels=["type", "endpoint"],
        )
        pending = GaugeMetricFamily(
            "registry_notifications_pending_total",
            "Notification events queued or being delivered, by endpoint.",
            labels=["endpoint"],
        )
        statuses = CounterMetricFamily(
            "registry_notifications_status",
            "Answers of notification endpoints, by status line and endpoint.",
            labels=["code", "endpoint"],
        )
        for endpoint in self.notifier.endpoint_metrics():
            name = endpoint.name
            events.add_metric(["Events", name], endpoint.events)
            events.add_metric(["Successes", name], endpoint.successes)
            events.add_metric(["Failures", name], endpoint.failures)
            events.add_metric(["Errors", name], endpoint.errors)
            pending.add_metric([name], endpoint.pending)
            for code, count in sorted(endpoint.statuses.items()):
                statuses.add_metric([code, name], count)
        yield from (events, pending, statuses)
