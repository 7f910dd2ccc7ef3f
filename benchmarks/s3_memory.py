"""Peak RSS of the emulator while a 1 GiB blob is pushed to S3 storage. (A script, not a test.)

moto's S3 server and ``python -m emulator serve`` run as two child processes, so only the registry's own
memory is measured. After a small warm-up push (so that lazily imported code and connection pools exist),
the script reads the server's high-water mark (``VmHWM``), pushes the blob as clients do, ``POST`` then
one streamed ``PATCH`` (or ``--chunk`` sized PATCHes) then ``PUT ?digest=``, with fresh random bytes that
the client never holds whole, and reports how much the push raised the peak::

    python benchmarks/s3_memory.py                      # 1 GiB in one PATCH
    python benchmarks/s3_memory.py --size 256M --chunk 64M
    python benchmarks/s3_memory.py --pull               # also stream it back through the registry

Exits 1 when the push raised the peak by ``--limit`` MiB (64) or more.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import subprocess
import sys
import time
import typing as t
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.servers import RSSSampler
from benchmarks.servers import status_kib
from pax_registry_fixtures.process import RegistryProcess
from pax_registry_fixtures.process import free_port

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


class MotoProcess:
    """``python -m moto.server`` on a loopback port, stopped by its pid."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def connect(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=3600)


def request(url: str, method: str, target: str, body: bytes = b"") -> http.client.HTTPResponse:
    connection = connect(url)
    connection.request(method, target, body=body, headers={"Content-Length": str(len(body))})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def relative(location: str) -> str:
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def push(url: str, size: int, chunk: int) -> tuple[str, float]:
    """Push ``size`` fresh random bytes in PATCHes of ``chunk`` (0: one); returns the digest and seconds."""
    started = time.perf_counter()
    answer = request(url, "POST", f"/v2/{REPOSITORY}/blobs/uploads/")
    assert answer.status == 202, answer.status
    location = relative(answer.getheader("Location") or "")
    hasher = hashlib.sha256()
    sent = 0
    while sent < size:
        length = min(chunk or size, size - sent)
        connection = connect(url)
        connection.putrequest("PATCH", location)
        connection.putheader("Content-Type", "application/octet-stream")
        connection.putheader("Content-Length", str(length))
        connection.putheader("Content-Range", f"{sent}-{sent + length - 1}")
        connection.endheaders()
        left = length
        while left:
            block = os.urandom(min(MiB, left))
            hasher.update(block)
            connection.send(block)
            left -= len(block)
        response = connection.getresponse()
        response.read()
        connection.close()
        assert response.status == 202, (response.status, response.getheader("Content-Type"))
        location = relative(response.getheader("Location") or "")
        sent += length
    digest = f"sha256:{hasher.hexdigest()}"
    answer = request(url, "PUT", f"{location}&digest={digest}")
    assert answer.status == 201, answer.status
    return digest, time.perf_counter() - started


def pull(url: str, digest: str, size: int) -> float:
    started = time.perf_counter()
    connection = connect(url)
    connection.request("GET", f"/v2/{REPOSITORY}/blobs/{digest}")
    response = connection.getresponse()
    assert response.status == 200, response.status
    hasher = hashlib.sha256()
    received = 0
    while block := response.read(MiB):
        hasher.update(block)
        received += len(block)
    connection.close()
    assert received == size and f"sha256:{hasher.hexdigest()}" == digest, "the pulled blob differs"
    return time.perf_counter() - started


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=size_arg, default=1 << 30, help="blob size (default 1G)")
    parser.add_argument("--chunk", type=size_arg, default=0, help="PATCH size (default: one PATCH)")
    parser.add_argument("--chunksize", type=size_arg, default=10 * MiB, help="storage.s3.chunksize (10M)")
    parser.add_argument("--pull", action="store_true", help="also pull the blob back through the registry")
    parser.add_argument("--limit", type=float, default=64.0, help="fail at this rise of the peak, MiB")
    args = parser.parse_args(argv)

    import boto3

    moto = MotoProcess()
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=moto.url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        s3.create_bucket(Bucket=BUCKET)
        section = {
            "region": "us-east-1",
            "bucket": BUCKET,
            "accesskey": "x",
            "secretkey": "x",
            "regionendpoint": moto.url,
            "secure": False,
            "rootdirectory": "/bench",
            "chunksize": args.chunksize,
        }
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
    finally:
        moto.stop()
    if rise >= args.limit:
        print(f"FAIL: the push raised the peak by {rise:.1f} MiB (limit {args.limit:.0f} MiB)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
