"""Issue 15's in-memory rows: what keeping storage in the emulator's own memory costs. Each compares the
emulator with a baseline the row names, in the distribution column.

14. peak RSS above idle while a blob is pushed (one ``PUT``) to in-memory storage, pushed again (as a
    client that does not ask first does) and pulled back; the baseline is the blob's own size, so the
    ratio is how many copies of it the server held at its peak
15. manifest GET at concurrency 512 (wrk): p99 latency and requests/s on in-memory storage, against the
    same emulator on filesystem storage
"""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

from benchmarks import client
from benchmarks import load
from benchmarks.report import Results
from benchmarks.report import Target
from benchmarks.scenarios import BLOB_REPOSITORY
from benchmarks.scenarios import MIB
from benchmarks.scenarios import Plan
from benchmarks.scenarios import progress
from benchmarks.scenarios import size_label
from benchmarks.seed import MANIFEST_REPOSITORY
from benchmarks.seed import MANIFEST_TAG
from benchmarks.seed import copy_tree
from benchmarks.servers import DISTRIBUTION
from benchmarks.servers import EMULATOR
from benchmarks.servers import RSSSampler
from benchmarks.servers import Server
from benchmarks.servers import registry_config
from benchmarks.servers import settle
from benchmarks.servers import start

#: Connections of the latency rows: enough that requests queue for the server's turns.
CONNECTIONS = 512
#: The shortest load run of the latency rows: at 512 connections a 1 s run holds too few requests for a
#: p99 that means anything.
MIN_LOAD_SECONDS = 2
#: What each column of the latency rows holds.
LATENCY_ROLES = {EMULATOR: "in-memory storage", DISTRIBUTION: "filesystem storage"}


def inmemory_storage() -> dict[str, t.Any]:
    """The benchmark's storage section (:func:`benchmarks.servers.registry_config`) on in-memory storage."""
    storage = dict(registry_config(Path("/unused"))["storage"])
    del storage["filesystem"]
    return {"inmemory": {}, **storage}


def start_inmemory(workdir: Path) -> Server:
    return start(EMULATOR, workdir, extra={"storage": inmemory_storage()})


def memory(results: Results, plan: Plan, workdir: Path, blob: client.Blob) -> None:
    """Each round on a fresh server, so that each measures the first push as well as the second."""
    key = "inmemory_peak_rss"
    results.metric(
        key,
        f"push {size_label(blob.size)} blob twice, then pull it, in-memory storage: peak RSS above idle",
        "MiB",
        "lower",
        Target("ratio ≤ 1.2", ratio_at_most=1.2),
        "(the blob's own size)",
    )
    for number in range(plan.rounds):
        server = start_inmemory(workdir / f"inmemory-memory-{number}")
        try:
            with RSSSampler(server.pid) as sampler:
                client.push_monolithic(server.url, None, BLOB_REPOSITORY, blob)
                client.push_monolithic(server.url, None, BLOB_REPOSITORY, blob)
                client.pull(server.url, None, BLOB_REPOSITORY, blob)
        finally:
            server.stop()
        above_idle = max(sampler.peak_kib - server.idle_kib, 0) / 1024
        results.add(key, EMULATOR, above_idle)
        results.add(key, DISTRIBUTION, blob.size / MIB)
        progress(f"  {key} round {number + 1}: {above_idle:.0f} MiB above idle for {blob.size / MIB:.0f} MiB")


def latency(results: Results, plan: Plan, workdir: Path, seeded: Path) -> None:
    if not load.available("wrk"):
        results.notes.append(
            "wrk is not installed: the in-memory latency rows were skipped (apt-get install wrk)."
        )
        return
    key = f"inmemory_manifest_get_c{CONNECTIONS}"
    baseline = "(the emulator on filesystem storage)"
    results.metric(
        key,
        f"manifest GET, concurrency {CONNECTIONS} (wrk), in-memory storage",
        "requests/s",
        "higher",
        baseline=baseline,
    )
    results.metric(
        key + "_p99",
        f"manifest GET, concurrency {CONNECTIONS}, in-memory storage: p99 latency",
        "ms",
        "lower",
        Target("ratio ≤ 2.0", ratio_at_most=2.0),
        baseline,
    )
    seconds = max(plan.load_seconds, MIN_LOAD_SECONDS)
    path = f"/v2/{MANIFEST_REPOSITORY}/manifests/{MANIFEST_TAG}"
    servers: dict[str, Server] = {}
    try:
        root = workdir / "inmemory-latency-filesystem"
        copy_tree(seeded, root)
        servers[DISTRIBUTION] = start(EMULATOR, root)
        servers[EMULATOR] = start_inmemory(workdir / "inmemory-latency")
        copy_image(servers[DISTRIBUTION].url, servers[EMULATOR].url)
        for server in servers.values():  # unmeasured warm-up
            load.wrk_get(server.url + path, 8, 1)
            settle(server.pid)
        for number in range(plan.rounds):
            for side in (EMULATOR, DISTRIBUTION):
                server = servers[side]
                result = load.wrk_get(server.url + path, CONNECTIONS, seconds)
                # Requests wrk gave up on are still being answered: wait, so that the next run does
                # not share the cores with them.
                waited = settle(server.pid)
                results.add(key, side, result.requests_per_second)
                results.add(key + "_p99", side, result.p99_ms)
                progress(
                    f"  {key} round {number + 1} {LATENCY_ROLES[side]}: {result.requests_per_second:.0f}/s, "
                    f"p99 {result.p99_ms:.1f} ms (idle again after {waited:.1f} s)"
                )
    finally:
        for server in servers.values():
            server.stop()


def copy_image(source: str, target: str) -> None:
    """Copy the seeded manifest and its blobs from one registry to another through the API: in-memory
    storage cannot be seeded on disk."""
    with client.Client(source, None) as pulling, client.Client(target, None) as pushing:
        manifest, media_type, _ = pulling.get_manifest(MANIFEST_REPOSITORY, MANIFEST_TAG)
        document = json.loads(manifest)
        for descriptor in [document["config"], *document["layers"]]:
            data = pulling.blob(MANIFEST_REPOSITORY, descriptor["digest"])
            pushing.push_blob(MANIFEST_REPOSITORY, data)
        pushing.push_manifest(MANIFEST_REPOSITORY, MANIFEST_TAG, manifest, media_type)


def inmemory_rows(results: Results, plan: Plan, workdir: Path, blob: client.Blob, seeded: Path) -> None:
    memory(results, plan, workdir, blob)
    latency(results, plan, workdir, seeded)
