"""The scenarios. Each runs its rounds with the two servers interleaved (emulator, distribution, emulator,
distribution, ...) and adds one sample per side and round to its rows.

1. blob push, monolithic and chunked (MB/s)     5. skopeo copy of a 20-layer image in and out (s)
2. blob pull, and a Range read in the middle    6. ready time: process start to the first 200 (ms)
3. manifest GET/HEAD at concurrency 1 and 32    7. in-process fixture start + stop (ms, emulator only)
4. tags list and ``_catalog`` walks (ms)        8. peak RSS above idle during 1-2 (MiB)
9. manifest GET at concurrency 32 with htpasswd basic auth on every request

1-3 (and 8) run over plain HTTP and again over TLS; 9 runs over both on its own pair of servers.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

from benchmarks import client
from benchmarks import limits
from benchmarks import load
from benchmarks.client import ACCEPT
from benchmarks.report import LIMIT
from benchmarks.report import Results
from benchmarks.report import Target
from benchmarks.seed import MANIFEST_REPOSITORY
from benchmarks.seed import MANIFEST_TAG
from benchmarks.seed import TAGS_REPOSITORY
from benchmarks.servers import DISTRIBUTION
from benchmarks.servers import EMULATOR
from benchmarks.servers import SIDES
from benchmarks.servers import Credentials
from benchmarks.servers import RSSSampler
from benchmarks.servers import Server
from benchmarks.servers import ready_time
from benchmarks.servers import settle
from emulator.reference import Digest
from emulator.storage import paths

MB = 1_000_000
MIB = 1 << 20
BLOB_REPOSITORY = "bench/blob"
#: What ``htpasswd -B`` writes without ``-C`` is cost 5, and the cost every authenticated request pays.
HTPASSWD_COST = 5
AUTH_TOOLS = {"htpasswd": "apache2-utils", "wrk": "wrk"}


@dataclass(frozen=True)
class Plan:
    mode: str
    rounds: int
    blob_size: int
    load_seconds: int
    tags: int
    repositories: int
    skopeo_layer_size: int
    ready_starts: int
    fixture_iterations: int
    chunk_size: int = 16 * MIB
    range_size: int = MIB
    range_reads: int = 5
    page: int = 100
    skopeo_layers: int = 20
    listing_repeats: int = 3
    #: Tags in the repositories listed right after a push (:mod:`benchmarks.scale`).
    tag_lists: tuple[int, ...] = (2_000, 10_000)
    #: Distinct manifests in the repositories of random manifest GETs (:mod:`benchmarks.scale`).
    distinct: tuple[int, ...] = (10, 10_000)

    def replace(self, **changes: int | None) -> Plan:
        """This plan with the given fields changed (``None`` values are ignored)."""
        given: dict[str, t.Any] = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **given)


FULL = Plan("full", 5, 1 << 30, 5, 10_000, 10_000, MIB, 5, 300)
QUICK = Plan(
    "quick", 3, 64 * MIB, 1, 1_000, 1_000, 64 * 1024, 3, 100, tag_lists=(500, 2_000), distinct=(10, 1_000)
)


def size_label(size: int) -> str:
    return f"{size >> 30} GiB" if size >= 1 << 30 and not size % (1 << 30) else f"{size >> 20} MiB"


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def interleave(rounds: int, servers: dict[str, Server], run: t.Callable[[int, Server], None]) -> None:
    """``run(round, server)`` for each round, emulator then distribution: ABAB."""
    for number in range(rounds):
        for side in SIDES:
            run(number, servers[side])


# -- 1, 2, 8: blobs and memory -----------------------------------------------------------------------------


#: Issue 15's targets for the blob rows (plain HTTP): nobody beats nginx's ``sendfile`` by 1.3x, so a pull
#: also passes at 0.9 of it when distribution is itself that close.
PUSH_TARGET = Target("ratio ≥ 2.0 and ≥ 0.5 of the limit", ratio_at_least=2.0, limit_at_least=0.5)
PULL_TARGET = Target(
    "ratio ≥ 1.3, or ≥ 0.9 of the limit when distribution is within 10% of it",
    ratio_at_least=1.3,
    limit_at_least=0.9,
    limit_when_within=0.1,
)


def blobs(
    results: Results,
    servers: dict[str, Server],
    plan: Plan,
    blob: client.Blob,
    *,
    tls: bool,
    nginx: limits.Nginx | None = None,
) -> None:
    """Rows 1, 2 and 8; the push rows' limit is sha256 over the blob, the pull row's ``nginx`` serving it."""
    tag, suffix = ("_tls", " (TLS)") if tls else ("", "")
    label = size_label(blob.size)
    pull_limit = limits.PULL_TLS_SOURCE if tls else limits.PULL_SOURCE
    rows = {
        "push_monolithic": (
            f"push {label} blob, monolithic PUT{suffix}", "MB/s", "higher", PUSH_TARGET, limits.PUSH_SOURCE,
        ),
        "push_chunked": (
            f"push {label} blob, PATCH in {plan.chunk_size >> 20} MiB chunks{suffix}", "MB/s", "higher",
            PUSH_TARGET, limits.PUSH_SOURCE,
        ),
        "pull": (
            f"pull {label} blob{suffix}", "MB/s", "higher", PULL_TARGET, pull_limit if nginx else None,
        ),
        "range": (
            f"Range read of {plan.range_size >> 20} MiB in the middle{suffix}", "ms", "lower", None, None,
        ),
    }  # fmt: skip
    for key, (scenario, unit, better, target, limit) in rows.items():
        results.metric(key + tag, scenario, unit, better, None if tls else target, limit=limit)
    memory_id = f"peak_rss{tag}"
    results.metric(
        memory_id, f"peak RSS above idle during push and pull{suffix}", "MiB", "lower",
        None if tls else Target("emulator < 64 MiB", emulator_below=64),
    )  # fmt: skip
    peaks: dict[str, list[int]] = {side: [0] * plan.rounds for side in SIDES}

    for server in servers.values():  # unmeasured: warms caches and stores the blob the pulls read
        client.push_monolithic(server.url, server.client_context(), BLOB_REPOSITORY, blob)

    def sampled(
        key: str,
        measure: t.Callable[[int, Server], float],
        value: t.Callable[[float], float],
        limit: t.Callable[[], float] | None = None,
    ) -> None:
        def run(number: int, server: Server) -> None:
            with RSSSampler(server.pid) as sampler:
                seconds = measure(number, server)
            peaks[server.side][number] = max(peaks[server.side][number], sampler.peak_kib)
            results.add(key + tag, server.side, value(seconds))
            progress(f"  {key}{tag} round {number + 1} {server.side}: {value(seconds):.1f}")
            if limit is not None and server.side == SIDES[-1]:  # then the limit: ABL ABL
                with RSSSampler(os.getpid()):  # the same sampling thread beside the client as above
                    measured = value(limit())
                results.add(key + tag, LIMIT, measured)
                progress(f"  {key}{tag} round {number + 1} limit: {measured:.1f}")

        interleave(plan.rounds, servers, run)

    def throughput(seconds: float) -> float:
        return blob.size / MB / seconds

    def context(server: Server) -> t.Any:
        return server.client_context()

    def sha256() -> float:
        return limits.sha256(blob)

    variants: dict[tuple[str, int], client.Blob] = {}

    def forget_variants() -> None:
        """Remove the pushed variants: their files, and their data from both servers' storage (the same
        layout on both), or 10 rounds of 1 GiB pushes per server would fill the tmpfs."""
        for pushed in variants.values():
            os.unlink(pushed.path)
            stored = paths.blob_dir(Digest.parse(pushed.digest)).lstrip("/")
            for server in servers.values():
                shutil.rmtree(server.root / stored, ignore_errors=True)
        variants.clear()

    def fresh(key: str, number: int) -> client.Blob:
        """The blob this row pushes in round ``number``: new to both servers (they push the same one)."""
        if (key, number) not in variants:
            forget_variants()
            variants[key, number] = blob.variant(f"{blob.path}.push", 1 + number + 1000 * len(key))
        return variants[key, number]

    sampled(
        "push_monolithic",
        lambda n, s: client.push_monolithic(s.url, context(s), BLOB_REPOSITORY, fresh("push_monolithic", n)),
        throughput,
        sha256,
    )
    sampled(
        "push_chunked",
        lambda n, s: client.push_chunked(
            s.url, context(s), BLOB_REPOSITORY, fresh("push_chunked", n), plan.chunk_size
        ),
        throughput,
        sha256,
    )
    forget_variants()
    sampled(
        "pull",
        lambda n, s: client.pull(s.url, context(s), BLOB_REPOSITORY, blob),
        throughput,
        None if nginx is None else lambda: limits.pull(nginx, blob),
    )
    sampled(
        "range",
        lambda n, s: statistics.median(
            client.range_read(s.url, context(s), BLOB_REPOSITORY, blob, plan.range_size)
            for _ in range(plan.range_reads)
        ),
        lambda seconds: seconds * 1000,
    )
    for side in SIDES:
        for peak in peaks[side]:
            results.add(memory_id, side, max(peak - servers[side].idle_kib, 0) / 1024)


# -- 3: manifests ------------------------------------------------------------------------------------------


def manifests(
    results: Results, servers: dict[str, Server], plan: Plan, *, tls: bool, nginx: limits.Nginx | None = None
) -> None:
    """Row 3; the GET rows' limit is ``nginx`` serving the same manifest as a static file to wrk."""
    tag, suffix = ("_tls", " (TLS)") if tls else ("", "")
    path = f"/v2/{MANIFEST_REPOSITORY}/manifests/{MANIFEST_TAG}"
    cases = [("GET", 1), ("GET", 32), ("HEAD", 1), ("HEAD", 32)]
    if not load.available("hey"):
        results.notes.append(
            "hey is not installed: the manifest HEAD rows were skipped (apt-get install hey)."
        )
        cases = [case for case in cases if case[0] == "GET"]
    if not load.available("wrk"):
        results.notes.append(
            "wrk is not installed: the manifest GET rows were skipped (apt-get install wrk)."
        )
        cases = [case for case in cases if case[0] != "GET"]
    for server in servers.values():  # unmeasured warm-up
        for method, _ in cases[:1]:
            _load(method, server.url + path, 8, 1)
    for method, connections in cases:
        key = f"manifest_{method.lower()}_c{connections}{tag}"
        tool = "wrk" if method == "GET" else "hey"
        busy = connections > 1 and not tls
        limit = limits.MANIFEST_SOURCE if nginx is not None and method == "GET" else None
        results.metric(
            key, f"manifest {method}, concurrency {connections} ({tool}){suffix}", "requests/s", "higher",
            Target("ratio ≥ 1.5", ratio_at_least=1.5) if busy else None, limit=limit,
        )  # fmt: skip
        results.metric(
            key + "_p99", f"manifest {method}, concurrency {connections}: p99 latency{suffix}", "ms", "lower",
            Target("ratio ≤ 1.0", ratio_at_most=1.0) if busy else None, limit=limit,
        )  # fmt: skip

        def run(number: int, server: Server, method: str = method, connections: int = connections) -> None:
            result = _load(method, server.url + path, connections, plan.load_seconds)
            key = f"manifest_{method.lower()}_c{connections}{tag}"
            results.add(key, server.side, result.requests_per_second)
            results.add(key + "_p99", server.side, result.p99_ms)
            progress(
                f"  {key} round {number + 1} {server.side}: {result.requests_per_second:.0f}/s, "
                f"p99 {result.p99_ms:.1f} ms"
            )
            if nginx is not None and method == "GET" and server.side == SIDES[-1]:
                result = _load(method, nginx.url + limits.MANIFEST_PATH, connections, plan.load_seconds)
                results.add(key, LIMIT, result.requests_per_second)
                results.add(key + "_p99", LIMIT, result.p99_ms)
                progress(f"  {key} round {number + 1} limit: {result.requests_per_second:.0f}/s")

        interleave(plan.rounds, servers, run)


def _load(method: str, url: str, connections: int, seconds: int) -> load.LoadResult:
    if method == "GET":
        return load.wrk_get(url, connections, seconds)
    return load.hey(url, connections, seconds, method)


# -- 9: manifests under htpasswd -----------------------------------------------------------------------------


def missing_auth_tools(results: Results) -> bool:
    """Whether a tool the htpasswd rows need is missing (then a note says which)."""
    missing = [tool for tool in AUTH_TOOLS if not load.available(tool)]
    if missing:
        packages = " ".join(sorted({AUTH_TOOLS[tool] for tool in missing}))
        results.notes.append(
            f"{' and '.join(missing)} not installed: the htpasswd rows were skipped "
            f"(apt-get install {packages})."
        )
    return bool(missing)


def authenticated_manifests(
    results: Results, servers: dict[str, Server], plan: Plan, credentials: Credentials, *, tls: bool
) -> None:
    """Manifest GETs by wrk on 32 connections, each request with basic auth: every one costs the server a
    bcrypt check unless it remembers a verified password."""
    tag, suffix = ("_tls", " (TLS)") if tls else ("", "")
    connections = 32
    key = f"manifest_get_c{connections}_htpasswd{tag}"
    path = f"/v2/{MANIFEST_REPOSITORY}/manifests/{MANIFEST_TAG}"
    headers = {"Authorization": credentials.authorization}
    results.metric(
        key,
        f"manifest GET, concurrency {connections}, htpasswd (bcrypt cost {HTPASSWD_COST}, as `htpasswd -B` "
        f"writes){suffix}",
        "requests/s",
        "higher",
        None if tls else Target("ratio ≥ 1.5", ratio_at_least=1.5),
    )
    results.metric(
        key + "_p99", f"manifest GET, concurrency {connections}, htpasswd: p99 latency{suffix}", "ms", "lower"
    )
    for server in servers.values():
        require_auth(server, path, headers)
        load.wrk_get(server.url + path, 8, 1, headers)  # unmeasured warm-up
        settle(server.pid)

    def run(number: int, server: Server) -> None:
        result = load.wrk_get(server.url + path, connections, plan.load_seconds, headers)
        results.add(key, server.side, result.requests_per_second)
        results.add(key + "_p99", server.side, result.p99_ms)
        waited = settle(server.pid)
        progress(
            f"  {key} round {number + 1} {server.side}: {result.requests_per_second:.0f}/s, "
            f"p99 {result.p99_ms:.1f} ms (idle again after {waited:.1f} s)"
        )

    interleave(plan.rounds, servers, run)


def require_auth(server: Server, path: str, headers: t.Mapping[str, str]) -> None:
    """Check that ``server`` refuses ``path`` without credentials (401) and answers it with them (200), so
    that the rows measure authenticated requests and nothing else."""
    with client.Client(server.url, server.client_context(), timeout=60) as connection:
        anonymous = connection.request("GET", path, headers={"Accept": ACCEPT}).status
    with client.Client(server.url, server.client_context(), timeout=60) as connection:
        authorized = connection.request("GET", path, headers={"Accept": ACCEPT, **headers}).status
    if (anonymous, authorized) != (401, 200):
        raise RuntimeError(
            f"{server.side} answered {path} with {anonymous} without credentials and {authorized} with "
            "them; expected 401 and 200"
        )


# -- 4: tags and catalog -----------------------------------------------------------------------------------


def listings(results: Results, servers: dict[str, Server], plan: Plan) -> None:
    tags, repositories, page = plan.tags, plan.repositories, plan.page
    results.metric("tags_list", f"tags list, {tags:,} tags, one request", "ms", "lower")
    results.metric("tags_walk", f"tags list, {tags:,} tags, paged by {page}: full walk", "ms", "lower")
    results.metric("catalog_walk", f"_catalog, {repositories:,} repositories, paged by {page}: full walk",
                   "ms", "lower")  # fmt: skip
    seen: dict[tuple[str, str], tuple[int, int]] = {}

    def timed(server: Server, path: str, key: str) -> float:
        seconds, requests, entries = client.walk(server.url, server.client_context(), path, key)
        seen[(server.side, path)] = (requests, entries)
        return seconds * 1000

    def run(number: int, server: Server) -> None:
        one = statistics.median(
            timed(server, f"/v2/{TAGS_REPOSITORY}/tags/list", "tags") for _ in range(plan.listing_repeats)
        )
        walk = timed(server, f"/v2/{TAGS_REPOSITORY}/tags/list?n={page}", "tags")
        catalog = timed(server, f"/v2/_catalog?n={page}", "repositories")
        results.add("tags_list", server.side, one)
        results.add("tags_walk", server.side, walk)
        results.add("catalog_walk", server.side, catalog)
        progress(f"  listings round {number + 1} {server.side}: tags {one:.0f} ms, walk {walk:.0f} ms, "
                 f"catalog {catalog:.0f} ms")  # fmt: skip

    interleave(plan.rounds, servers, run)
    for side in SIDES:
        requests, entries = seen[(side, f"/v2/{TAGS_REPOSITORY}/tags/list?n={page}")]
        if entries != tags:
            results.notes.append(f"{side}'s tags walk returned {entries} tags, expected {tags}.")
        if side == DISTRIBUTION and requests == 1:
            results.notes.append(
                "distribution 2.8.2 ignores `n` on tags/list: its paged walk is one request for every tag."
            )
        requests, entries = seen[(side, f"/v2/_catalog?n={page}")]
        if entries < repositories:
            results.notes.append(
                f"{side}'s catalog walk returned {entries} repositories, expected {repositories}."
            )


# -- 5: skopeo ---------------------------------------------------------------------------------------------


def skopeo_copies(results: Results, servers: dict[str, Server], plan: Plan, workdir: Path) -> None:
    from tests.clients import build_image
    from tests.clients import skopeo

    layers = plan.skopeo_layers
    size = (
        f"{plan.skopeo_layer_size >> 10} KiB"
        if plan.skopeo_layer_size < MIB
        else size_label(plan.skopeo_layer_size)
    )
    results.metric("skopeo_in", f"skopeo copy in, {layers} layers of {size}", "s", "lower")
    results.metric("skopeo_out", f"skopeo copy out, {layers} layers of {size}", "s", "lower")
    for number in range(plan.rounds):
        # A new image each round: skopeo remembers where blobs went and would mount instead of pushing.
        directory = Path(tempfile.mkdtemp(prefix=f"skopeo-{number}-", dir=workdir))
        source = build_image(directory, layers=layers, layer_size=plan.skopeo_layer_size)
        for direction in ("in", "out"):
            for side in SIDES:
                server = servers[side]
                reference = f"docker://{server.host}/bench/skopeo-{number}:1"
                if direction == "in":
                    args = ["copy", "--dest-tls-verify=false", source, reference]
                else:
                    args = ["copy", "--src-tls-verify=false", reference, f"oci:{directory}/out-{side}:1"]
                started = time.perf_counter()
                skopeo(*args)
                seconds = time.perf_counter() - started
                results.add(f"skopeo_{direction}", side, seconds)
                progress(f"  skopeo {direction} round {number + 1} {side}: {seconds:.2f} s")


# -- 6, 7: start-up ----------------------------------------------------------------------------------------


def ready(results: Results, plan: Plan, workdir: Path) -> None:
    results.metric(
        "ready", "ready time: process start to first 200 on /v2/", "ms", "lower",
        Target("emulator < 60 ms", emulator_below=60),
    )  # fmt: skip
    for number in range(plan.rounds):
        for side in SIDES:
            samples = [ready_time(side, workdir) for _ in range(plan.ready_starts)]
            results.add("ready", side, statistics.median(samples) * 1000)
            progress(f"  ready round {number + 1} {side}: {statistics.median(samples) * 1000:.1f} ms")


def fixture(results: Results, plan: Plan) -> None:
    from benchmarks.fixture_overhead import start_stop

    results.metric(
        "fixture", "in-process fixture start + stop (pax_registry)", "ms", "lower",
        Target("emulator < 20 ms", emulator_below=20),
    )  # fmt: skip
    for number in range(plan.rounds):
        median = statistics.median(start_stop(plan.fixture_iterations)) * 1000
        results.add("fixture", EMULATOR, median)
        progress(f"  fixture round {number + 1}: {median:.2f} ms")
