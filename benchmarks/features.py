"""Issue 13's rows: what notifications, metrics and the pull-through cache cost. Each compares the emulator
with itself, so the distribution column holds the baseline the row names.

10. manifest GET at concurrency 32 with a notification endpoint (a local sink that answers 200 at once)
    and Prometheus metrics on the debug port, against the same emulator with neither; each round starts
    both afresh
11. a 64 MiB blob pulled through a pull-through cache, from a warm cache and from a cold one, against
    the same blob pulled straight from the emulator the cache pulls from
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import statistics
import threading
import time
import typing as t
from pathlib import Path

from benchmarks import client
from benchmarks import load
from benchmarks.report import Results
from benchmarks.report import Target
from benchmarks.scenarios import MB
from benchmarks.scenarios import MIB
from benchmarks.scenarios import Plan
from benchmarks.scenarios import progress
from benchmarks.seed import MANIFEST_REPOSITORY
from benchmarks.seed import MANIFEST_TAG
from benchmarks.seed import copy_tree
from benchmarks.servers import DISTRIBUTION
from benchmarks.servers import EMULATOR
from benchmarks.servers import Server
from benchmarks.servers import settle
from benchmarks.servers import start
from pax_registry_fixtures.process import free_port

PROXY_BLOB_SIZE = 64 * MIB
PROXY_REPOSITORY = "bench/proxied"
#: Pulls timed for each warm or plain sample (their median).
PULLS = 5
#: What each column of the proxy rows holds.
ROLES = {EMULATOR: "through the cache", DISTRIBUTION: "plain"}
#: Seconds a cache may take to hold a blob it has served once.
WARM_LIMIT = 120.0


class Sink:
    """A notification endpoint that reads each POST and answers 200 at once; it only counts the POSTs
    and the events in them (each event has one ``"action":`` key; the registry writes compact JSON).

    In production the endpoint runs on another machine; here it shares the two cores with the registry
    and the load generator, so it must cost as little as possible: a thread per connection reading raw
    HTTP/1.1 (the headers up to the blank line, then ``Content-Length`` bytes) and writing one canned
    answer. A WSGI server costs several times more per POST, and that cost would be charged to the
    registry's row. It keeps its connections, so that a test can close them as an idle timeout would
    (tests/test_notifications.py checks the sender replaces a connection the endpoint closed).
    """

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    def __init__(self) -> None:
        self.posts = 0
        self.events = 0
        self.connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/events"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # stopped
            self.connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        buffer = b""
        # OSError: the connection was closed under this thread by close_connections or stop.
        with connection, contextlib.suppress(OSError):
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                length = int(match.group(1)) if match else 0
                while len(buffer) < length:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                events = buffer.count(b'"action":', 0, length)
                buffer = buffer[length:]
                with self._lock:
                    self.posts += 1
                    self.events += events
                connection.sendall(self.ANSWER)

    def close_connections(self) -> None:
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        self.close_connections()


def notifications_overhead(results: Results, plan: Plan, workdir: Path, seeded: Path) -> None:
    if not load.available("wrk"):
        results.notes.append("wrk is not installed: the notifications row was skipped (apt-get install wrk).")
        return
    connections = 32
    key = f"manifest_get_c{connections}_notifications"
    baseline = "(emulator without them)"
    results.metric(
        key,
        f"manifest GET, concurrency {connections} (wrk), with a notification endpoint and Prometheus "
        "metrics on",
        "requests/s",
        "higher",
        Target("ratio ≥ 0.95", ratio_at_least=0.95),
        baseline,
    )
    results.metric(
        key + "_p99",
        f"manifest GET, concurrency {connections}, with notifications and metrics: p99 latency",
        "ms",
        "lower",
        baseline=baseline,
    )
    sink = Sink()
    served = 0.0
    try:
        sink_endpoint = {"name": "bench-sink", "url": sink.url, "timeout": "5s", "backoff": "100ms"}
        roots = {}
        for side in (EMULATOR, DISTRIBUTION):
            roots[side] = workdir / f"notifications-{side}"
            copy_tree(seeded, roots[side])
        path = f"/v2/{MANIFEST_REPOSITORY}/manifests/{MANIFEST_TAG}"
        for number in range(plan.rounds):
            # Both sides start afresh each round. The two are the same program, and one process of it
            # runs a few percent faster or slower than the next (measured: 0.97-1.03 of an identical
            # process), which one pair kept for every round would turn into the row's ratio.
            debug_addr = f"127.0.0.1:{free_port()}"
            features: dict[str, t.Any] = {
                "http": {"debug": {"addr": debug_addr, "prometheus": {"enabled": True}}},
                "notifications": {"endpoints": [sink_endpoint]},
            }
            servers: dict[str, Server] = {}
            try:
                for side, extra in ((EMULATOR, features), (DISTRIBUTION, None)):
                    servers[side] = start(EMULATOR, roots[side], extra=extra)
                for server in servers.values():  # unmeasured warm-up
                    load.wrk_get(server.url + path, 8, 1)
                    settle(server.pid)
                for side, server in servers.items():
                    result = load.wrk_get(server.url + path, connections, plan.load_seconds)
                    # The notifier's backlog is sent after the load stops: wait for it, so that the next
                    # run does not share the cores with it.
                    waited = settle(server.pid)
                    results.add(key, side, result.requests_per_second)
                    results.add(key + "_p99", side, result.p99_ms)
                    label = "with" if side == EMULATOR else "without"
                    progress(
                        f"  {key} round {number + 1} {label}: {result.requests_per_second:.0f}/s, "
                        f"p99 {result.p99_ms:.1f} ms (idle again after {waited:.1f} s)"
                    )
                served += _manifest_gets(debug_addr)
            finally:
                for server in servers.values():
                    server.stop()
        results.notes.append(
            f"Notifications row: the sink received {sink.events:,} events in {sink.posts:,} POSTs while "
            f"/metrics counted {served:,.0f} manifest GETs (warm-ups included), over {plan.rounds} pairs "
            "of processes, one pair per round."
        )
        if sink.events == 0:
            raise RuntimeError("the sink received no notification: the row measured nothing")
    finally:
        sink.stop()


def _manifest_gets(debug_addr: str) -> float:
    """``registry_http_requests_total`` for manifest GETs, from the debug port's ``/metrics``."""
    from prometheus_client.parser import text_string_to_metric_families

    with client.Client(f"http://{debug_addr}", None, timeout=60) as connection:
        response = connection.request("GET", "/metrics")
    if response.status != 200:
        raise RuntimeError(f"/metrics answered {response.status}")
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.body.decode())
        for sample in family.samples
        if sample.name == "registry_http_requests_total"
        and sample.labels.get("handler") == "manifest"
        and sample.labels.get("method") == "get"
    )


def proxy_pulls(results: Results, plan: Plan, workdir: Path) -> None:
    label = f"{PROXY_BLOB_SIZE >> 20} MiB"
    baseline = "(plain pull from the emulator it caches)"
    results.metric(
        "proxy_pull_warm",
        f"pull {label} blob through the pull-through cache, warm",
        "MB/s",
        "higher",
        Target("ratio ≥ 0.9", ratio_at_least=0.9),
        baseline,
    )
    results.metric(
        "proxy_pull_cold",
        f"pull {label} blob through the pull-through cache, cold (fetched from the remote)",
        "MB/s",
        "higher",
        baseline=baseline,
    )
    upstream = start(EMULATOR, workdir / "proxy-upstream")
    proxy: Server | None = None
    try:
        proxy = start(EMULATOR, workdir / "proxy-cache", extra={"proxy": {"remoteurl": upstream.url}})
        warm = client.Blob.create(str(workdir / "proxy-warm.bin"), PROXY_BLOB_SIZE)
        client.push_monolithic(upstream.url, None, PROXY_REPOSITORY, warm)
        client.pull(proxy.url, None, PROXY_REPOSITORY, warm)  # unmeasured: fills the cache
        _wait_until_cached(proxy, PROXY_REPOSITORY, warm.digest)
        client.pull(upstream.url, None, PROXY_REPOSITORY, warm)  # unmeasured warm-up
        for number in range(plan.rounds):
            warm_seconds = _alternating_pulls(
                {EMULATOR: proxy, DISTRIBUTION: upstream}, PROXY_REPOSITORY, warm
            )
            for side, seconds in warm_seconds.items():
                results.add("proxy_pull_warm", side, warm.size / MB / seconds)
                progress(
                    f"  proxy_pull_warm round {number + 1} {ROLES[side]}: {warm.size / MB / seconds:.1f}"
                )
            # A new blob each round: the cache has never seen it.
            cold = client.Blob.create(str(workdir / f"proxy-cold-{number}.bin"), PROXY_BLOB_SIZE)
            repository = f"{PROXY_REPOSITORY}-cold-{number}"
            client.push_monolithic(upstream.url, None, repository, cold)
            for side, server in ((EMULATOR, proxy), (DISTRIBUTION, upstream)):
                # A cold pull happens once; the plain one it is compared with is timed like the others.
                seconds = (
                    client.pull(server.url, None, repository, cold)
                    if server is proxy
                    else _median_pull(server, repository, cold)
                )
                results.add("proxy_pull_cold", side, cold.size / MB / seconds)
                progress(
                    f"  proxy_pull_cold round {number + 1} {ROLES[side]}: {cold.size / MB / seconds:.1f}"
                )
            _wait_until_cached(proxy, repository, cold.digest)  # the fill must not overlap the next pull
            os.unlink(cold.path)
    finally:
        if proxy is not None:
            proxy.stop()
        upstream.stop()


def _median_pull(server: Server, repository: str, blob: client.Blob) -> float:
    """Seconds of the median of :data:`PULLS` pulls: one 64 MiB pull takes tens of milliseconds, too
    short for a single sample to say much on a shared machine."""
    return statistics.median(client.pull(server.url, None, repository, blob) for _ in range(PULLS))


def _alternating_pulls(servers: dict[str, Server], repository: str, blob: client.Blob) -> dict[str, float]:
    """Each server's median of :data:`PULLS` pulls, taken in turns (one of each, then again), so that
    whatever else the machine does during these few hundred milliseconds falls on both: taken one
    server after the other, the two medians of the same local ``sendfile`` differed by up to 30%."""
    seconds: dict[str, list[float]] = {side: [] for side in servers}
    for _ in range(PULLS):
        for side, server in servers.items():
            seconds[side].append(client.pull(server.url, None, repository, blob))
    return {side: statistics.median(values) for side, values in seconds.items()}


def _wait_until_cached(proxy: Server, repository: str, digest: str) -> None:
    """Wait until the cache's storage holds the blob and links it into ``repository``."""
    algorithm, _, encoded = digest.partition(":")
    v2 = proxy.root / "docker" / "registry" / "v2"
    link = v2 / "repositories" / repository / "_layers" / algorithm / encoded / "link"
    data = v2 / "blobs" / algorithm / encoded[:2] / encoded / "data"
    deadline = time.monotonic() + WARM_LIMIT
    while not (link.is_file() and data.is_file()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cache did not store {digest} within {WARM_LIMIT:.0f} s")
        time.sleep(0.05)
