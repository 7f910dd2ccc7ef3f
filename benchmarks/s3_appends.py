"""Issue 15's S3 rows: a blob pushed in PATCHes to S3 storage, the emulator beside distribution on one moto.

Both registries store in buckets of their own on one moto server (the fixtures'
:class:`~pax_registry_fixtures.s3.S3Server`, in this process) with the same ``storage.s3`` settings
(distribution's defaults: 10 MiB parts, 32 MiB copy threshold) and push the benchmark's blob in
``plan.chunk_size`` PATCHes, then a ``PUT ?digest=`` with no body, from the same file with the same client.

12. push time, as MB/s, rounds interleaved; the buckets are emptied between rounds so that every push
    stores the blob anew.
13. what S3 was sent (request bodies) and what it was asked to copy inside itself (ranged copies), in
    blob sizes, counted by the fixtures' :class:`~pax_registry_fixtures.s3.S3FaultProxy` in one more push
    per side through it (the proxy is not on the timed path: it shares this process with moto). Appends
    that re-copied the upload so far would copy O(chunks²); both registries copy the blob once, when the
    finished upload is moved into place (in ranges above ``multipartcopythresholdsize``, 32 MiB; a
    smaller blob's move is one ``CopyObject``, which names no range and is not counted).
"""

from __future__ import annotations

import contextlib
import logging
import typing as t
from pathlib import Path

from benchmarks import client
from benchmarks.report import Results
from benchmarks.report import Target
from benchmarks.scenarios import MB
from benchmarks.scenarios import Plan
from benchmarks.scenarios import interleave
from benchmarks.scenarios import progress
from benchmarks.scenarios import size_label
from benchmarks.servers import SIDES
from benchmarks.servers import Server
from benchmarks.servers import start
from pax_registry_fixtures.s3 import S3Bucket
from pax_registry_fixtures.s3 import S3FaultProxy
from pax_registry_fixtures.s3 import S3Server

REPOSITORY = "bench/s3"
PUSH_TARGET = Target("ratio ≥ 1.0", ratio_at_least=1.0)
SENT_TARGET = Target("< 1.1 x the blob", emulator_below=1.1)


def storage(bucket: S3Bucket, endpoint: str) -> dict[str, t.Any]:
    """The ``storage`` section both registries get: ``bucket`` through ``endpoint``, at the bucket's root."""
    section = {**bucket.section, "regionendpoint": endpoint, "rootdirectory": "/"}
    return {
        "s3": section,
        "redirect": {"disable": True},
        "delete": {"enabled": True},
        "cache": {"blobdescriptor": "inmemory"},
        "maintenance": {"uploadpurging": {"enabled": False}},
    }


def empty(bucket: S3Bucket) -> None:
    """Remove everything from ``bucket`` (keys and multipart uploads), keeping the bucket."""
    bucket.delete()
    bucket.client.create_bucket(Bucket=bucket.bucket)


@contextlib.contextmanager
def s3_pair(workdir: Path, buckets: dict[str, S3Bucket], endpoint: str) -> t.Iterator[dict[str, Server]]:
    servers: dict[str, Server] = {}
    try:
        for side in SIDES:
            extra = {"storage": storage(buckets[side], endpoint)}
            servers[side] = start(side, workdir / f"s3-{side}", extra=extra)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def s3_appends(results: Results, plan: Plan, workdir: Path, blob: client.Blob) -> None:
    label, chunk = size_label(blob.size), plan.chunk_size
    pushed = f"{label} blob in {chunk >> 20} MiB PATCHes"
    results.metric("s3_push_chunked", f"S3 (moto): push {pushed}", "MB/s", "higher", PUSH_TARGET)
    results.metric("s3_sent", f"S3 (moto): bytes sent to S3 pushing {pushed}", "x blob", "lower", SENT_TARGET)
    results.metric("s3_copied", f"S3 (moto): bytes copied inside S3 pushing {pushed}", "x blob", "lower")
    # moto's server logs every request through Werkzeug's logger unless that has a level already.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with S3Server() as s3:
        buckets = {side: s3.new_bucket() for side in SIDES}
        try:
            with s3_pair(workdir, buckets, s3.endpoint_url) as servers:

                def run(number: int, server: Server) -> None:
                    empty(buckets[server.side])
                    seconds = client.push_chunked(server.url, None, REPOSITORY, blob, chunk)
                    results.add("s3_push_chunked", server.side, blob.size / MB / seconds)
                    progress(
                        f"  s3_push_chunked round {number + 1} {server.side}: {blob.size / MB / seconds:.1f}"
                    )

                interleave(plan.rounds, servers, run)
            with (
                S3FaultProxy(s3.endpoint_url) as proxy,
                s3_pair(workdir, buckets, proxy.endpoint_url) as servers,
            ):
                for side in SIDES:
                    empty(buckets[side])
                    before_sent, before_copied = (
                        proxy.forwarded["PUT"] + proxy.forwarded["POST"],
                        proxy.copied,
                    )
                    client.push_chunked(servers[side].url, None, REPOSITORY, blob, chunk)
                    sent = proxy.forwarded["PUT"] + proxy.forwarded["POST"] - before_sent
                    copied = proxy.copied - before_copied
                    results.add("s3_sent", side, sent / blob.size)
                    results.add("s3_copied", side, copied / blob.size)
                    sent_x, copied_x = sent / blob.size, copied / blob.size
                    progress(f"  s3 bytes {side}: sent {sent_x:.3f}, copied {copied_x:.3f} x blob")
        finally:
            for bucket in buckets.values():
                bucket.delete()
