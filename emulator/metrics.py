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

The request path pays a few label lookups per request: each route's labelled series are made once
(:class:`_Route`), and the metrics are per app, so nothing global is locked beyond prometheus_client's
own per-value locks.

The process collectors are Python's (``process_*``, ``python_gc_*``, ``python_info``) in place of Go's
``go_*``; prometheus_client adds a ``*_created`` sample to counters and histograms, which Go's client
does not.
"""

from __future__ import annotations

import time
import typing as t

from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram
from prometheus_client import gc_collector
from prometheus_client import platform_collector
from prometheus_client import process_collector
from prometheus_client.core import CounterMetricFamily
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import routes
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
    "move": "Move",
    "delete": "Delete",
    "redirect_url": "URLFor",
}


class _Route:
    """The labelled series of one handler, looked up once: a request only picks among them."""

    def __init__(self, metrics: Metrics, handler: str) -> None:
        self.handler = handler
        self.in_flight = metrics.in_flight.labels(handler)
        self.request_size = metrics.request_size.labels(handler)
        self.response_size = metrics.response_size.labels(handler)
        self._metrics = metrics
        self._durations: dict[str, Histogram] = {}
        self._counts: dict[tuple[int, str], Counter] = {}

    def duration(self, method: str) -> Histogram:
        child = self._durations.get(method)
        if child is None:
            child = self._durations[method] = self._metrics.duration.labels(method.lower(), self.handler)
        return child

    def count(self, status: int, method: str) -> Counter:
        child = self._counts.get((status, method))
        if child is None:
            child = self._metrics.requests.labels(str(status), method.lower(), self.handler)
            self._counts[(status, method)] = child
        return child


class Metrics:
    """One app's metric families, in a registry of its own (:attr:`registry`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "registry_http_requests",
            "HTTP requests served, by status code, method and handler.",
            ["code", "method", "handler"],
            registry=registry,
        )
        self.duration = Histogram(
            "registry_http_request_duration_seconds",
            "Time spent serving HTTP requests, in seconds.",
            ["method", "handler"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.request_size = Histogram(
            "registry_http_request_size_bytes",
            "Approximate HTTP request sizes (URL, headers and body), in bytes.",
            ["handler"],
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self.response_size = Histogram(
            "registry_http_response_size_bytes",
            "HTTP response body sizes, in bytes.",
            ["handler"],
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "registry_http_in_flight_requests",
            "HTTP requests being served.",
            ["handler"],
            registry=registry,
        )
        self.storage_action = Histogram(
            "registry_storage_action_seconds",
            "Time spent in storage driver calls, in seconds.",
            ["driver", "action"],
            buckets=STORAGE_BUCKETS,
            registry=registry,
        )
        self._cache: Counter | None = None
        # Every handler's series exists from the start (in-flight at 0), as distribution registers them.
        self._routes = {endpoint: _Route(self, label) for endpoint, label in HANDLER_LABELS.items()}
        process_collector.ProcessCollector(registry=registry)
        platform_collector.PlatformCollector(registry=registry)
        gc_collector.GCCollector(registry=registry)

    def begin(self, endpoint: str) -> tuple[_Route, float]:
        """A request reached ``endpoint`` (a name of :mod:`emulator.routes`); hand the result to
        :meth:`end` once its response is built."""
        route = self._routes.get(endpoint)
        if route is None:
            # A route this table does not name yet is counted under its own name, never dropped.
            route = self._routes[endpoint] = _Route(self, endpoint)
        route.in_flight.inc()
        return route, time.perf_counter()

    def end(self, begun: tuple[_Route, float], request: Request, response: Response) -> None:
        route, started = begun
        method = request.method
        route.duration(method).observe(time.perf_counter() - started)
        route.count(response.status_code, method).inc()
        route.request_size.observe(request_size(request))
        route.response_size.observe(0 if method == "HEAD" else response.content_length or 0)
        route.in_flight.dec()

    def watch_notifier(self, notifier: Notifier) -> None:
        """Publish ``notifier``'s delivery counters (:class:`NotificationsCollector`)."""
        self.registry.register(NotificationsCollector(notifier))

    def cache_counter(self) -> Counter:
        """``registry_storage_cache_total``, registered on first use: distribution only has it when a
        blob-descriptor cache is configured."""
        if self._cache is None:
            self._cache = Counter(
                "registry_storage_cache",
                "Blob descriptor cache lookups: requests, hits and misses.",
                ["type"],
                registry=self.registry,
            )
        return self._cache


def request_size(request: Request) -> int:
    """client_golang's approximate request size: URL, method, protocol, header names and values, Host
    and the declared body length."""
    environ = request.environ
    size = len(environ.get("REQUEST_URI", "")) + len(environ.get("REQUEST_METHOD", ""))
    size += len(environ.get("SERVER_PROTOCOL", ""))
    # One pass over the environ, the headers' names counted without their HTTP_ prefix.
    size += sum([len(key) - 5 + len(value) for key, value in environ.items() if key[:5] == "HTTP_"])
    content_type = environ.get("CONTENT_TYPE")
    if content_type:
        size += len("Content-Type") + len(content_type)
    content_length = environ.get("CONTENT_LENGTH")
    if content_length:
        size += len("Content-Length") + len(content_length) + int(content_length)
    return size


def instrument_driver(driver: StorageDriver, metrics: Metrics) -> StorageDriver:
    """Time ``driver``'s calls into ``registry_storage_action_seconds``; returns the same driver.

    The timed methods are replaced on the instance rather than behind a wrapper class, so the driver
    keeps its class, its capabilities (:attr:`~emulator.drivers.base.StorageDriver.local`,
    ``local_files``), its own attributes and its methods' results and errors; calls it makes to itself
    (``exists`` to ``stat``, ``walk`` to ``list``) are timed as the operation they are.
    """
    label = DRIVER_LABELS.get(driver.name, driver.name)
    for attribute, action in DRIVER_ACTIONS.items():
        setattr(
            driver,
            attribute,
            _timed(getattr(driver, attribute), metrics.storage_action.labels(label, action)),
        )
    return driver


_F = t.TypeVar("_F", bound=t.Callable[..., t.Any])


def _timed(method: _F, histogram: Histogram) -> _F:
    def timed(*args: t.Any, **kwargs: t.Any) -> t.Any:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            histogram.observe(time.perf_counter() - started)

    return t.cast(_F, timed)


class CountingCache(BlobDescriptorCache):
    """A blob-descriptor cache that counts its lookups (``Request``, then ``Hit`` or ``Miss``) as
    distribution's cached statter does, and otherwise is ``cache``."""

    def __init__(self, cache: BlobDescriptorCache, metrics: Metrics) -> None:
        super().__init__(0)
        self.cache = cache
        counter = metrics.cache_counter()
        self._requests = counter.labels("Request")
        self._hits = counter.labels("Hit")
        self._misses = counter.labels("Miss")

    def get(self, digest: Digest, repository: str = "") -> Descriptor | None:
        self._requests.inc()
        found = self.cache.get(digest, repository)
        (self._misses if found is None else self._hits).inc()
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
