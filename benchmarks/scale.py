"""Issue 15's rows for repositories at scale: tag lists right after a push, and manifest GETs spread over
many distinct manifests. Both run on the pair the ``listings`` and ``manifests`` families use.

14. tags list of 2,000 and 10,000 tags, each request right after a tag was pushed to the repository, so
    that no cache a quiet directory allows can answer it (ms, one request, client side)
15. manifest GET at concurrency 32 of a tag chosen at random per request (wrk with ``random_tag.lua``)
    among 10 and among 10,000 tags, each tag its own manifest; and the emulator's rate over 10,000
    against its own over 10 (a row comparing the emulator with itself)
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from benchmarks import client
from benchmarks import load
from benchmarks.report import Results
from benchmarks.report import Target
from benchmarks.scenarios import Plan
from benchmarks.scenarios import interleave
from benchmarks.scenarios import progress
from benchmarks.seed import DISTINCT_TAG_PREFIX
from benchmarks.seed import MANIFEST_REPOSITORY
from benchmarks.seed import MANIFEST_TAG
from benchmarks.seed import distinct_repository
from benchmarks.seed import tag_list_repository
from benchmarks.servers import EMULATOR
from benchmarks.servers import SIDES
from benchmarks.servers import Server
from pax_registry_fixtures.client import expect

#: How many push-then-list pairs each round times, per side and size (their median is the sample).
FRESH_LISTS = 5
RANDOM_TAG_SCRIPT = Path(__file__).with_name("random_tag.lua")
CONNECTIONS = 32


# -- 14: tag lists right after a push ----------------------------------------------------------------------


def fresh_tag_lists(results: Results, servers: dict[str, Server], plan: Plan) -> None:
    """For each size of ``plan.tag_lists``: push a new tag, then time one ``tags/list`` of the whole
    repository; the median of :data:`FRESH_LISTS` such lists is a round's sample."""
    manifests: dict[str, bytes] = {}
    for side, server in servers.items():  # the manifest the seeded tags point at, pushed under new tags
        with client.Client(server.url, server.client_context()) as connection:
            manifests[side] = connection.get_manifest(MANIFEST_REPOSITORY, MANIFEST_TAG)[0]
    for size in plan.tag_lists:
        _fresh_tag_list(results, servers, plan, size, manifests)


def _fresh_tag_list(
    results: Results, servers: dict[str, Server], plan: Plan, size: int, manifests: dict[str, bytes]
) -> None:
    key = f"tags_list_fresh_{size}"
    results.metric(
        key, f"tags list, {size:,} tags, right after pushing a tag", "ms", "lower",
        Target("ratio ≤ 1.0", ratio_at_most=1.0),
    )  # fmt: skip
    repository = tag_list_repository(size)
    listed: dict[str, int] = {}

    def run(number: int, server: Server) -> None:
        samples = []
        # One keep-alive connection: the list is timed from its request to its last byte, nothing else.
        with client.Client(server.url, server.client_context()) as connection:
            for push in range(FRESH_LISTS):
                connection.push_manifest(repository, f"fresh-{number}-{push}", manifests[server.side])
                started = time.perf_counter()
                response = expect(connection.request("GET", f"/v2/{repository}/tags/list"), 200, "tags list")
                samples.append((time.perf_counter() - started) * 1000)
                listed[server.side] = len(response.json()["tags"])
        results.add(key, server.side, statistics.median(samples))
        progress(f"  tags list of {size} right after a push, round {number + 1} {server.side}: "
                 f"{statistics.median(samples):.1f} ms")  # fmt: skip

    interleave(plan.rounds, servers, run)
    expected = size + plan.rounds * FRESH_LISTS
    for side in SIDES:
        if listed.get(side) != expected:
            results.notes.append(
                f"{side}'s last tags list of {repository} had {listed.get(side)} tags, expected {expected}."
            )


# -- 15: manifest GETs over many distinct manifests ----------------------------------------------------------


def distinct_manifests(results: Results, servers: dict[str, Server], plan: Plan) -> None:
    """wrk on :data:`CONNECTIONS` connections, each request a random tag of a repository whose every tag is
    a manifest of its own, over the fewest and the most manifests of ``plan.distinct``."""
    if not load.available("wrk"):
        results.notes.append(
            "wrk is not installed: the distinct-manifest rows were skipped (apt-get install wrk)."
        )
        return
    fewest, most = min(plan.distinct), max(plan.distinct)
    for count in (fewest, most):
        results.metric(
            f"manifest_get_c{CONNECTIONS}_distinct_{count}",
            f"manifest GET, concurrency {CONNECTIONS} (wrk), a random tag of {count:,}, "
            "each a distinct manifest",
            "requests/s", "higher",
            Target("ratio ≥ 2.0", ratio_at_least=2.0) if count == most else None,
        )  # fmt: skip
    flat = f"manifest_get_c{CONNECTIONS}_distinct_{most}_vs_{fewest}"
    results.metric(
        flat,
        f"manifest GET, concurrency {CONNECTIONS}: over {most:,} distinct manifests against over {fewest:,}",
        "requests/s", "higher", Target("ratio ≥ 0.9", ratio_at_least=0.9),
        f"(the emulator over {fewest:,})",
    )  # fmt: skip

    def get(server: Server, count: int, seconds: float) -> float:
        prefix = f"/v2/{distinct_repository(count)}/manifests/{DISTINCT_TAG_PREFIX}"
        result = load.wrk_get(
            server.url + prefix + "00000", CONNECTIONS, seconds,
            script=RANDOM_TAG_SCRIPT, script_args=(prefix, str(count)),
        )  # fmt: skip
        return result.requests_per_second

    for server in servers.values():  # unmeasured: a first read of each manifest, as a server in use has had
        for count in (fewest, most):
            get(server, count, plan.load_seconds)
    rates: dict[int, list[float]] = {fewest: [], most: []}

    def run(number: int, server: Server) -> None:
        for count in (fewest, most):
            rate = get(server, count, plan.load_seconds)
            results.add(f"manifest_get_c{CONNECTIONS}_distinct_{count}", server.side, rate)
            if server.side == EMULATOR:
                rates[count].append(rate)
            progress(f"  manifest GET over {count} distinct, round {number + 1} {server.side}: {rate:.0f}/s")

    interleave(plan.rounds, servers, run)
    # Both columns are the emulator's: its rate over the most manifests, beside its rate over the fewest.
    for many, few in zip(rates[most], rates[fewest], strict=True):
        results.add(flat, SIDES[0], many)
        results.add(flat, SIDES[1], few)
