"""The debug server's Prometheus metrics: distribution's families, counted from real traffic.

Counts are checked exactly against the registry's own request log (every request a client sent, with its
status and response headers), so a client that sends more or fewer requests than expected does not break
the tests, while a request counted twice, not at all, or under the wrong labels does.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import re
import threading
import time
import typing as t
from pathlib import Path

import pytest
import requests
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

import emulator
from emulator import routes
from emulator.drivers.base import StorageDriver
from emulator.drivers.contract import DriverContract
from emulator.drivers.filesystem import FileSystemDriver
from emulator.drivers.inmemory import InMemoryDriver
from emulator.metrics import DURATION_BUCKETS
from emulator.metrics import FOLD_AT
from emulator.metrics import SIZE_BUCKETS
from emulator.metrics import STORAGE_BUCKETS
from emulator.metrics import CountingCache
from emulator.metrics import Metrics
from emulator.metrics import instrument_driver
from emulator.metrics import request_size
from emulator.metrics import response_size
from emulator.reference import Digest
from emulator.serving import HEAD_SIZE
from emulator.storage.cache import BlobDescriptorCache
from pax_registry_fixtures import RegistryFactory
from pax_registry_fixtures import RegistryServer
from pax_registry_fixtures.middleware import RecordedRequest
from tests.clients import oras_client
from tests.rawhttp import RawConnection
from tests.test_health import wait_for_status

DEBUG: dict[str, t.Any] = {"http": {"debug": {"addr": "127.0.0.1:0", "prometheus": {"enabled": True}}}}
HANDLERS = ("base", "manifest", "tags", "blob", "blob_upload", "blob_upload_chunk", "catalog", "referrers")

Labels = frozenset[tuple[str, str]]


def scrape(registry: RegistryServer, path: str = "/metrics") -> dict[str, dict[Labels, float]]:
    """Every sample of a scrape of the debug port, by sample name and then by label set."""
    response = requests.get(registry.debug_url + path, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return samples_of(text_string_to_metric_families(response.text))


def samples_of(families: t.Iterable[Metric]) -> dict[str, dict[Labels, float]]:
    """Every sample of ``families``, by sample name and then by label set."""
    samples: dict[str, dict[Labels, float]] = collections.defaultdict(dict)
    for family in families:
        for sample in family.samples:
            samples[sample.name][frozenset(sample.labels.items())] = sample.value
    return samples


def by(samples: dict[Labels, float], *names: str) -> dict[tuple[str, ...], float]:
    """Samples keyed by the values of the labels ``names`` (the others, such as ``le``, must not vary)."""
    return {tuple(dict(labels)[name] for name in names): value for labels, value in samples.items()}


def handler_of(path: str) -> str | None:
    """The handler label distribution gives a request to ``path``; ``None`` when no route matches."""
    if path in ("/v2", "/v2/"):
        return "base"
    if path == "/v2/_catalog":
        return "catalog"
    for pattern, handler in (
        (r"/v2/.+/tags/list", "tags"),
        (r"/v2/.+/manifests/[^/]+", "manifest"),
        (r"/v2/.+/blobs/uploads/", "blob_upload"),
        (r"/v2/.+/blobs/uploads/[^/]+", "blob_upload_chunk"),
        (r"/v2/.+/blobs/[^/]+", "blob"),
        (r"/v2/.+/referrers/[^/]+", "referrers"),
    ):
        if re.fullmatch(pattern, path):
            return handler
    return None


def routed(log: list[RecordedRequest]) -> list[tuple[RecordedRequest, str]]:
    return [(entry, handler) for entry in log if (handler := handler_of(entry.path)) is not None]


def test_counts_match_the_traffic_of_real_clients(
    pax_registry_factory: RegistryFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = pax_registry_factory(DEBUG, storage="filesystem")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pack.tar.gz").write_bytes(os.urandom(300_000))
    (tmp_path / "readme.txt").write_bytes(b"hello")
    client = oras_client(registry.host)
    target = f"{registry.host}/team/artifact:1.0"
    client.push(files=["pack.tar.gz", "readme.txt"], target=target)
    client.pull(target=target, outdir=str(tmp_path / "out"))
    assert (tmp_path / "out" / "pack.tar.gz").read_bytes() == (tmp_path / "pack.tar.gz").read_bytes()
    # Requests no route answers (and the pack surface's /health) are not counted; the others are.
    for method, path in [
        ("GET", "/"),
        ("GET", "/health"),
        ("GET", "/nothing/here"),
        ("GET", "/v2/_catalog"),
        ("DELETE", "/v2/_catalog"),
        ("GET", "/v2/team/artifact/tags/list"),
        ("HEAD", "/v2/team/artifact/manifests/1.0"),
        ("GET", "/v2/team/missing/manifests/latest"),
        ("GET", "/v2/team/artifact/blobs/sha256:" + "0" * 64),
        ("GET", "/v2/team/artifact/referrers/sha256:" + "0" * 64),
    ]:
        requests.request(method, registry.url_for(path), timeout=30)

    log = registry.requests
    entries = routed(log)
    assert len(entries) < len(log)  # the unrouted requests above are in the log, not in the metrics
    samples = scrape(registry)

    expected_totals = collections.Counter(
        (str(entry.status), entry.method.lower(), handler) for entry, handler in entries
    )
    assert by(samples["registry_http_requests_total"], "code", "method", "handler") == expected_totals
    assert ("405", "delete", "catalog") in expected_totals

    durations = by(samples["registry_http_request_duration_seconds_count"], "method", "handler")
    assert durations == collections.Counter((entry.method.lower(), handler) for entry, handler in entries)
    per_handler = collections.Counter(handler for _, handler in entries)
    for family in ("registry_http_request_size_bytes", "registry_http_response_size_bytes"):
        counts = by(samples[f"{family}_count"], "handler")
        assert {h: n for h, n in counts.items() if n} == {(h,): n for h, n in per_handler.items()}
    sent: collections.Counter[tuple[str]] = collections.Counter()
    for entry, handler in entries:
        if entry.method != "HEAD":
            sent[(handler,)] += int(entry.response_headers.get("Content-Length", 0))
    response_sums = by(samples["registry_http_response_size_bytes_sum"], "handler")
    assert {h: s for h, s in response_sums.items() if s} == {h: s for h, s in sent.items() if s}
    assert response_sums[("blob",)] >= 300_000  # the pull's layer
    request_sums = by(samples["registry_http_request_size_bytes_sum"], "handler")
    uploaded = sum(int(e.headers.get("Content-Length", 0)) for e, h in entries if h == "blob_upload_chunk")
    assert request_sums[("blob_upload_chunk",)] > uploaded >= 300_000

    assert by(samples["registry_http_in_flight_requests"], "handler") == {(h,): 0.0 for h in HANDLERS}

    actions = by(samples["registry_storage_action_seconds_count"], "driver", "action")
    assert {driver for driver, _ in actions} == {"filesystem"}
    # URLFor: blob GETs ask the driver for a redirect (filesystem has none), as distribution's do.
    for action in ("GetContent", "PutContent", "Stat", "Move", "URLFor"):
        assert actions[("filesystem", action)] > 0, action


def test_histograms_have_distributions_buckets(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(DEBUG)
    requests.get(registry.url_for("/v2/"), timeout=30)
    samples = scrape(registry)

    def bounds(name: str, **labels: str) -> list[float]:
        return sorted(
            float(dict(key)["le"])
            for key in samples[name]
            if labels.items() <= dict(key).items() and dict(key)["le"] != "+Inf"
        )

    assert bounds("registry_http_request_duration_seconds_bucket", method="get", handler="base") == list(
        DURATION_BUCKETS
    )
    assert DURATION_BUCKETS == (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60)
    assert bounds("registry_http_request_size_bytes_bucket", handler="base") == list(SIZE_BUCKETS)
    assert bounds("registry_http_response_size_bytes_bucket", handler="base") == list(SIZE_BUCKETS)
    assert SIZE_BUCKETS[0] == 1024 and SIZE_BUCKETS[-1] == 1024 * 2**21 and len(SIZE_BUCKETS) == 22
    assert bounds("registry_storage_action_seconds_bucket", action="List") == list(STORAGE_BUCKETS)
    # One request, so exactly one observation lands in the smallest bucket that holds it, cumulatively.
    base = by(samples["registry_http_request_duration_seconds_bucket"], "method", "handler", "le")
    assert base[("get", "base", "+Inf")] == 1.0
    # As Go's client writes them: no *_created samples beside counters and histograms.
    assert [name for name in samples if name.endswith("_created")] == []


def test_cache_counts_requests_hits_and_misses(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(DEBUG)  # the default configuration has an in-memory descriptor cache
    data = os.urandom(1000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    registry.push_blob("team/cached", data)
    url = registry.url_for(f"/v2/team/cached/blobs/{digest}")
    before = by(scrape(registry)["registry_storage_cache_total"], "type")
    for _ in range(3):
        assert requests.head(url, timeout=30).status_code == 200
    after = by(scrape(registry)["registry_storage_cache_total"], "type")

    delta = {key: after[key] - before.get(key, 0.0) for key in after}
    assert delta[("Request",)] == delta[("Hit",)] + delta[("Miss",)]
    assert delta[("Request",)] >= 3
    assert delta[("Hit",)] >= 2  # the later HEADs find what the first one cached


def test_no_cache_family_without_a_cache(tmp_path: Path) -> None:
    config = emulator.load_config(DEBUG)
    config = dataclasses.replace(config, storage=dataclasses.replace(config.storage, blobdescriptor=None))
    with RegistryServer(config) as registry:
        requests.get(registry.url_for("/v2/"), timeout=30)
        samples = scrape(registry)
    assert "registry_storage_cache_total" not in samples
    assert "registry_http_requests_total" in samples


def test_registries_in_one_process_keep_their_own_counts(pax_registry_factory: RegistryFactory) -> None:
    first = pax_registry_factory(DEBUG)
    second = pax_registry_factory(DEBUG)
    for _ in range(3):
        requests.get(first.url_for("/v2/"), timeout=30)
    requests.get(second.url_for("/v2/"), timeout=30)

    def base_count(registry: RegistryServer) -> float:
        return by(scrape(registry)["registry_http_requests_total"], "code", "method", "handler")[
            ("200", "get", "base")
        ]

    assert (base_count(first), base_count(second)) == (3.0, 1.0)


def test_refused_requests_are_not_counted(pax_registry_factory: RegistryFactory, tmp_path: Path) -> None:
    flag = tmp_path / "maintenance"
    config = {**DEBUG, "health": {"file": [{"file": str(flag), "interval": "50ms"}]}}
    registry = pax_registry_factory(config)
    requests.get(registry.url_for("/v2/"), timeout=30)
    flag.touch()
    wait_for_status(registry.url_for("/v2/"), 503)
    for _ in range(3):
        assert requests.get(registry.url_for("/v2/"), timeout=30).status_code == 503

    totals = by(scrape(registry)["registry_http_requests_total"], "code", "method", "handler")
    served = [entry.status for entry in registry.requests]
    assert served.count(503) >= 4
    assert totals == {("200", "get", "base"): served.count(200)}  # the polls before the gate closed


def test_metrics_path_and_methods(pax_registry_factory: RegistryFactory) -> None:
    config = {"http": {"debug": {"addr": "127.0.0.1:0", "prometheus": {"enabled": True, "path": "/prom"}}}}
    registry = pax_registry_factory(config)
    requests.get(registry.url_for("/v2/"), timeout=30)

    assert "registry_http_requests_total" in scrape(registry, "/prom")
    # promhttp answers whatever the method; Go's mux has nothing at the default path now.
    assert "registry_http_requests_total" in requests.post(registry.debug_url + "/prom", timeout=30).text
    missing = requests.get(registry.debug_url + "/metrics", timeout=30)
    assert (missing.status_code, missing.text) == (404, "404 page not found\n")
    # The metrics are never served on the main port.
    assert requests.get(registry.url_for("/prom"), timeout=30).status_code == 404


def test_no_metrics_without_prometheus(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory({"http": {"debug": {"addr": "127.0.0.1:0"}}})
    assert registry.app.metrics is None
    assert requests.get(registry.debug_url + "/metrics", timeout=30).status_code == 404
    assert requests.get(registry.debug_url + "/debug/health", timeout=30).json() == {}


def test_s3_storage_is_labelled_as_distributions_driver(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(DEBUG, storage="s3")
    data = os.urandom(2000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    registry.push_blob("team/s3", data)
    response = requests.get(registry.url_for(f"/v2/team/s3/blobs/{digest}"), timeout=30)
    assert response.content == data

    actions = by(scrape(registry)["registry_storage_action_seconds_count"], "driver", "action")
    assert {driver for driver, _ in actions} == {"s3aws"}
    assert actions[("s3aws", "GetContent")] >= 1  # the repository's link to the blob


class TestInstrumentedInMemory(DriverContract):
    """A timed driver still keeps the whole driver contract."""

    @pytest.fixture
    def driver(self) -> StorageDriver:
        return instrument_driver(InMemoryDriver(), Metrics())


class TestInstrumentedFileSystem(DriverContract):
    @pytest.fixture
    def driver(self, tmp_path: Path) -> StorageDriver:
        return instrument_driver(FileSystemDriver(str(tmp_path / "root")), Metrics())


def collected(metrics: Metrics) -> dict[str, dict[Labels, float]]:
    """Every sample a scrape of ``metrics`` would show, by sample name and then by label set."""
    return samples_of(metrics.registry.collect())


def test_no_observation_is_lost_while_threads_fold_and_scrape(tmp_path: Path) -> None:
    """Requests append their measurements without a lock and fold them in every FOLD_AT; with eight
    threads serving past several folds while another scrapes, every request, storage call and cache
    lookup is counted exactly once, and nothing is left in flight."""
    metrics = Metrics()
    driver = instrument_driver(InMemoryDriver(), metrics)
    cache = CountingCache(BlobDescriptorCache(100), metrics)
    threads, each = 8, FOLD_AT + 300
    body = b"x" * 2000
    done = threading.Event()

    def serve(number: int) -> None:
        request = Request(EnvironBuilder(path="/v2/team/app/manifests/1", method="GET").get_environ())
        for _ in range(each):
            begun = metrics.begin(routes.MANIFEST, request)
            driver.exists(f"/thread-{number}")
            cache.get(Digest.of(body))
            metrics.end(begun, request, Response(body, status=200 if number % 2 else 404))

    def scrape_until_done() -> None:
        while not done.is_set():
            collected(metrics)

    scraper = threading.Thread(target=scrape_until_done)
    scraper.start()
    workers = [threading.Thread(target=serve, args=(number,)) for number in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    scraper.join()

    samples = collected(metrics)
    totals = by(samples["registry_http_requests_total"], "code", "method", "handler")
    assert totals == {
        ("200", "get", "manifest"): threads // 2 * each,
        ("404", "get", "manifest"): threads // 2 * each,
    }
    durations = by(samples["registry_http_request_duration_seconds_count"], "method", "handler")
    assert durations == {("get", "manifest"): threads * each}
    sent = by(samples["registry_http_response_size_bytes_sum"], "handler")
    assert sent[("manifest",)] == threads * each * len(body)
    buckets = by(samples["registry_http_response_size_bytes_bucket"], "handler", "le")
    assert (buckets[("manifest", "1024.0")], buckets[("manifest", "2048.0")]) == (0, threads * each)
    assert by(samples["registry_http_in_flight_requests"], "handler")[("manifest",)] == 0
    stats = by(samples["registry_storage_action_seconds_count"], "driver", "action")
    assert stats[("inmemory", "Stat")] == threads * each
    lookups = by(samples["registry_storage_cache_total"], "type")
    assert lookups == {("Request",): threads * each, ("Hit",): 0, ("Miss",): threads * each}


def test_driver_keeps_its_class_and_capabilities(pax_registry_factory: RegistryFactory) -> None:
    plain = pax_registry_factory(storage="filesystem")
    measured = pax_registry_factory(DEBUG, storage="filesystem")
    for attribute in ("name", "local", "local_files"):
        assert getattr(measured.registry.driver, attribute) == getattr(plain.registry.driver, attribute)
    assert type(measured.registry.driver) is type(plain.registry.driver)
    measured.push_blob("team/a", b"x" * 10)
    assert measured.registry.driver.exists("/docker") and not measured.registry.driver.exists("/nothing")
    actions = by(scrape(measured)["registry_storage_action_seconds_count"], "driver", "action")
    assert actions[("filesystem", "Stat")] >= 2  # exists() is a stat, timed as one


def test_every_listing_is_timed_once_as_a_list(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(DEBUG, storage="filesystem")
    registry.push_image("team/app", tag="1.0")

    def listed() -> float:
        return by(scrape(registry)["registry_storage_action_seconds_count"], "driver", "action")[
            ("filesystem", "List")
        ]

    before = listed()
    assert requests.get(registry.url_for("/v2/team/app/tags/list"), timeout=30).json()["tags"] == ["1.0"]
    assert listed() == before + 1  # a tags list reads bare names, still one List
    registry.registry.driver.list("/docker/registry/v2/repositories")
    assert listed() == before + 2  # a listing of paths is timed once, not also as the names it reads


def test_in_flight_counts_a_request_while_its_handler_runs(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(DEBUG)
    started = requests.post(registry.url_for("/v2/team/slow/blobs/uploads/"), timeout=30)
    path = started.headers["Location"].removeprefix(registry.url)

    def in_flight() -> float:
        return by(scrape(registry)["registry_http_in_flight_requests"], "handler")[("blob_upload_chunk",)]

    with RawConnection(registry.port, timeout=30) as conn:
        head = f"PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n"
        conn.send(head.encode() + b"x" * 1000)  # the handler waits in the middle of the body
        deadline = time.monotonic() + 30
        while in_flight() != 1.0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert in_flight() == 1.0
        conn.send(b"x" * 1000)
        assert conn.read_response("PATCH").status == 202
    assert in_flight() == 0.0


def golang_request_size(method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> int:
    """client_golang's estimate, written out: URL, method, protocol, each header's name and value (Host
    counted by its value and, in our server's count, by its name too), and the body's declared length."""
    return len(target) + len(method) + len("HTTP/1.1") + sum(len(n) + len(v) for n, v in headers) + len(body)


def test_request_and_response_sizes_of_exact_requests(pax_registry_factory: RegistryFactory) -> None:
    """Sizes of requests whose every byte is known: counted by the server as it reads the headers, and the
    same from the environ alone (another WSGI server), including a header sent twice."""
    registry = pax_registry_factory(DEBUG)
    body = b"x" * 1500
    headers = [
        ("Host", "registry.test"),
        ("User-Agent", "sizes/1.0"),
        ("X-Trace", "a"),
        ("X-Trace", "bc"),
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(len(body))),
    ]
    target = "/v2/team/sizes/blobs/uploads/"
    head = f"POST {target} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n"
    with RawConnection(registry.port, timeout=30) as conn:
        conn.send(head.encode() + body)
        response = conn.read_response("POST")
    assert response.status == 202
    samples = scrape(registry)
    expected = golang_request_size("POST", target, headers, body)
    assert by(samples["registry_http_request_size_bytes_sum"], "handler")[("blob_upload",)] == expected
    assert by(samples["registry_http_request_size_bytes_count"], "handler")[("blob_upload",)] == 1
    # A 202 without a body: its Content-Length is 0.
    assert by(samples["registry_http_response_size_bytes_sum"], "handler")[("blob_upload",)] == 0

    # Under another server the environ is all there is: the repeated header arrives joined by a comma.
    environ = EnvironBuilder(
        path=target, method="POST", headers=[h for h in headers if h[0] != "X-Trace"], data=body
    ).get_environ()
    environ["HTTP_X_TRACE"] = "a,bc"
    environ["REQUEST_URI"] = target
    environ["SERVER_PROTOCOL"] = "HTTP/1.1"
    assert HEAD_SIZE not in environ
    joined = [h for h in headers if h[0] != "X-Trace"] + [("X-Trace", "a,bc")]
    assert request_size(Request(environ)) == golang_request_size("POST", target, joined, body)

    # A HEAD's response has no body, whatever its Content-Length says; a length that is not one counts 0.
    head_request = Request(EnvironBuilder(method="HEAD").get_environ())
    assert response_size(head_request, Response(b"abc")) == 0
    get_request = Request(EnvironBuilder(method="GET").get_environ())
    assert response_size(get_request, Response(b"abc")) == 3
    assert response_size(get_request, Response(iter([b"ab"]), headers={"Content-Length": "2"})) == 2
    assert response_size(get_request, Response(headers={"Content-Length": "lots"})) == 0


def test_pack_mirror_counts_under_the_v2_labels(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(DEBUG)
    for path in ("/v1/", "/v1/_catalog", "/v1/team/a/tags/list", "/v2/_catalog"):
        requests.get(registry.url_for(path), timeout=30)
    totals = by(scrape(registry)["registry_http_requests_total"], "code", "method", "handler")
    assert totals == {
        ("200", "get", "base"): 1.0,
        ("200", "get", "catalog"): 2.0,
        ("404", "get", "tags"): 1.0,
    }


def test_notification_families_follow_the_senders(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(DEBUG, notifications=True)
    sink = registry.notifications
    assert sink is not None
    sink.fail_next(1, status=500)
    data = os.urandom(100)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = requests.post(registry.url_for("/v2/team/events/blobs/uploads/"), timeout=30)
    location = started.headers["Location"]
    pushed = requests.put(location, params={"digest": digest}, data=data, timeout=30)
    assert pushed.status_code == 201
    sink.wait_for(action="push", digest=digest)

    def outcomes() -> dict[tuple[str, ...], float]:
        return by(scrape(registry)["registry_notifications_events_total"], "type", "endpoint")

    deadline = time.monotonic() + 30
    while outcomes().get(("Successes", "pax-notifications")) != 1.0 and time.monotonic() < deadline:
        time.sleep(0.02)
    samples = scrape(registry)
    assert by(samples["registry_notifications_events_total"], "type", "endpoint") == {
        ("Events", "pax-notifications"): 1.0,
        ("Successes", "pax-notifications"): 1.0,
        ("Failures", "pax-notifications"): 1.0,
        ("Errors", "pax-notifications"): 0.0,
    }
    assert by(samples["registry_notifications_pending_total"], "endpoint") == {("pax-notifications",): 0.0}
    statuses = by(samples["registry_notifications_status_total"], "code", "endpoint")
    assert statuses[("500 Internal Server Error", "pax-notifications")] == 1.0
