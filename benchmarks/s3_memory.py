"""Peak RSS of the emulator while a 1 GiB blob is pushed to S3 storage. (A script, not a test.)

``python -m emulator serve`` runs as a child process, storing in a bucket on moto's S3 server (the
fixtures' :class:`~pax_registry_fixtures.s3.S3Server`, in this process), so only the registry's own memory
is measured. After a small warm-up push (so that lazily imported code and connection pools exist), the
script reads the server's high-water mark (``VmHWM``), pushes the blob as clients do, ``POST`` then one
streamed ``PATCH`` (or ``--chunk`` sized PATCHes) then ``PUT ?digest=``, with fresh random bytes that the
client never holds whole, and reports how much the push raised the peak::

    python benchmarks/s3_memory.py                      # 1 GiB in one PATCH
    python benchmarks/s3_memory.py --size 256M --chunk 64M
    python benchmarks/s3_memory.py --pull               # also stream it back through the registry

Exits 1 when the push raised the peak by ``--limit`` MiB (64) or more.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import time
import typing as t
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.servers import RSSSampler
from benchmarks.servers import status_kib
from pax_registry_fixtures.client import Client
from pax_registry_fixtures.client import blob_path
from pax_registry_fixtures.client import expect
from pax_registry_fixtures.process import RegistryProcess
from pax_registry_fixtures.s3 import S3Server

MiB = 1 << 20
REPOSITORY = "bench/s3"
BUCKET = "bench-registry"
_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def size_arg(text: str) -> int:
    """``1G``, ``64M``, ``512K`` or a number of bytes."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    if value and value[-1] in _UNITS:
        return int(float(value[:-1]) * _UNITS[value[-1]])
    return int(value)


def random_pieces(length: int, hasher: t.Any) -> t.Iterator[bytes]:
    """``length`` fresh random bytes in 1 MiB pieces, hashed as they are made: the client never holds the
    blob whole."""
    left = length
    while left:
        block = os.urandom(min(MiB, left))
        hasher.update(block)
        left -= len(block)
        yield block


def push(url: str, size: int, chunk: int) -> tuple[str, float]:
    """Push ``size`` fresh random bytes in PATCHes of ``chunk`` (0: one); returns the digest and seconds."""
    started = time.perf_counter()
    hasher = hashlib.sha256()
    with Client(url, timeout=3600) as client:
        location = client.start_upload(REPOSITORY).headers["Location"]
        for offset in range(0, size, chunk or size):
            length = min(chunk or size, size - offset)
            location = client.patch(location, random_pieces(length, hasher), offset, length)
        digest = client.finish_upload(location, f"sha256:{hasher.hexdigest()}")
    return digest, time.perf_counter() - started


def pull(url: str, digest: str, size: int) -> float:
    started = time.perf_counter()
    hasher = hashlib.sha256()
    with Client(url, timeout=3600) as client:
        response = client.request("GET", blob_path(REPOSITORY, digest), sink=hasher.update)
    expect(response, 200, "the pull")
    assert response.received == size and f"sha256:{hasher.hexdigest()}" == digest, "the pulled blob differs"
    return time.perf_counter() - started


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=size_arg, default=1 << 30, help="blob size (default 1G)")
    parser.add_argument("--chunk", type=size_arg, default=0, help="PATCH size (default: one PATCH)")
    parser.add_argument("--chunksize", type=size_arg, default=10 * MiB, help="storage.s3.chunksize (10M)")
    parser.add_argument("--pull", action="store_true", help="also pull the blob back through the registry")
    parser.add_argument("--limit", type=float, default=64.0, help="fail at this rise of the peak, MiB")
    args = parser.parse_args(argv)

    # moto's server logs every request through Werkzeug's logger unless it has a level already.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # moto serves from this process: only the registry, a child process, is measured.
    with S3Server() as s3:
        bucket = s3.new_bucket(BUCKET)
        section = {**bucket.section, "rootdirectory": "/bench", "chunksize": args.chunksize}
        config = {
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"s3": section, "redirect": {"disable": True}},
            "http": {"secret": "bench"},
        }
        with RegistryProcess(config) as registry:
            push(registry.url, 1024, 0)  # warm-up: imports, connection pools
            before = status_kib(registry.pid, "VmHWM")
            with RSSSampler(registry.pid) as sampler:
                digest, seconds = push(registry.url, args.size, args.chunk)
            # The kernel's high-water mark catches a peak between two samples.
            sampler.peak_kib = max(sampler.peak_kib, status_kib(registry.pid, "VmHWM"))
            rise = (sampler.peak_kib - before) / 1024
            patch = (args.chunk or args.size) / MiB
            print(f"blob:                 {args.size / MiB:.0f} MiB in {patch:.0f} MiB PATCHes")
            print(f"storage.s3.chunksize: {args.chunksize / MiB:.0f} MiB")
            print(f"push:                 {seconds:.1f} s ({args.size / MiB / seconds:.0f} MiB/s)")
            print(f"peak RSS before push: {before / 1024:.1f} MiB")
            print(f"peak RSS during push: {sampler.peak_kib / 1024:.1f} MiB (+{rise:.1f} MiB)")
            if args.pull:
                with RSSSampler(registry.pid) as pulled:
                    seconds = pull(registry.url, digest, args.size)
                print(f"pull:                 {seconds:.1f} s, peak RSS {pulled.peak_kib / 1024:.1f} MiB")
    if rise >= args.limit:
        print(f"FAIL: the push raised the peak by {rise:.1f} MiB (limit {args.limit:.0f} MiB)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
