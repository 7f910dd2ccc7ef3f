"""How much memory does the emulator need to move a big blob? (A script, not a test.)

Starts ``python -m emulator serve`` with filesystem storage in a temporary directory, measures the server's
idle RSS, pushes one blob with a single monolithic ``PUT`` streamed from a generator (the client never holds
the blob in memory), pulls it back streamed and discarded, and samples the server's RSS every 20 ms::

    python benchmarks/memory.py --size 1G
    python benchmarks/memory.py --size 64M --verify

Peak is the larger of the kernel's high-water mark (``VmHWM``) and the sampled ``VmRSS``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.servers import RSSSampler
from benchmarks.servers import status_kib
from pax_registry_fixtures.client import Client
from pax_registry_fixtures.client import blob_path
from pax_registry_fixtures.client import expect
from pax_registry_fixtures.process import RegistryProcess

MIB = 1 << 20
CHUNK = MIB
REPOSITORY = "bench/memory"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """``1G``, ``64M``, ``512K``, ``1GiB`` or a number of bytes."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1] if value and value[-1] in _UNITS else ""
    number = value[: -len(unit)] if unit else value
    try:
        size = int(float(number) * _UNITS[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1G, 64M, 512K)") from None
    if size <= 0:
        raise argparse.ArgumentTypeError("the size must be positive")
    return size


# -- content -----------------------------------------------------------------------------------------------


def content(size: int, block: bytes) -> t.Iterator[bytes]:
    """``size`` bytes as chunks of a random block (each chunk is a fresh view; nothing accumulates)."""
    remaining = size
    while remaining > 0:
        piece = block[: min(remaining, len(block))]
        remaining -= len(piece)
        yield piece


def digest_of(chunks: t.Iterable[bytes]) -> str:
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(chunk)
    return f"sha256:{hasher.hexdigest()}"


# -- HTTP --------------------------------------------------------------------------------------------------


def push(url: str, size: int, block: bytes, digest: str) -> float:
    """One monolithic ``PUT`` with a ``Content-Length``, sent chunk by chunk; returns seconds."""
    with Client(url) as client:
        location = client.start_upload(REPOSITORY).headers["Location"]
        started = time.perf_counter()
        client.finish_upload(location, digest, content(size, block), size)
        return time.perf_counter() - started


def pull(url: str, size: int, digest: str, *, verify: bool) -> float:
    """``GET`` the blob, streamed through the client's buffer and discarded; returns seconds."""
    hasher = hashlib.sha256() if verify else None
    with Client(url) as client:
        started = time.perf_counter()
        target = blob_path(REPOSITORY, digest)
        response = client.request("GET", target, discard=True, sink=hasher.update if hasher else None)
        elapsed = time.perf_counter() - started
    expect(response, 200, "the pull")
    if response.received != size:
        raise RuntimeError(f"pulled {response.received} bytes, expected {size}")
    if hasher is not None and f"sha256:{hasher.hexdigest()}" != digest:
        raise RuntimeError("the pulled blob has the wrong digest")
    return elapsed


# -- main --------------------------------------------------------------------------------------------------


@dataclass
class Result:
    size: int
    idle_kib: int
    push_seconds: float
    push_peak_kib: int
    pull_seconds: float
    pull_peak_kib: int
    hwm_kib: int

    @property
    def peak_kib(self) -> int:
        return max(self.hwm_kib, self.push_peak_kib, self.pull_peak_kib)

    def report(self) -> str:
        mib = self.size / MIB

        def phase(seconds: float, peak_kib: int) -> str:
            return f"{seconds:.2f} s ({mib / seconds:.0f} MiB/s), peak RSS {peak_kib / 1024:.1f} MiB"

        return "\n".join(
            [
                f"blob size:               {mib:.0f} MiB",
                f"idle RSS:                {self.idle_kib / 1024:.1f} MiB",
                f"push (one PUT):          {phase(self.push_seconds, self.push_peak_kib)}",
                f"pull (streamed):         {phase(self.pull_seconds, self.pull_peak_kib)}",
                f"peak RSS (VmHWM/sample): {self.peak_kib / 1024:.1f} MiB",
                f"peak minus idle:         {(self.peak_kib - self.idle_kib) / 1024:.1f} MiB",
            ]
        )


def measure(size: int, *, verify: bool) -> Result:
    block = os.urandom(min(CHUNK, size))
    digest = digest_of(content(size, block))
    with tempfile.TemporaryDirectory(prefix="memory-bench-") as root:
        config = {
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": root}},
        }
        with RegistryProcess(config) as registry:
            time.sleep(1.0)  # let startup settle before calling it idle
            idle = status_kib(registry.pid, "VmRSS")
            with RSSSampler(registry.pid) as push_sampler:
                push_seconds = push(registry.url, size, block, digest)
            with RSSSampler(registry.pid) as pull_sampler:
                pull_seconds = pull(registry.url, size, digest, verify=verify)
            hwm = status_kib(registry.pid, "VmHWM")
    return Result(size, idle, push_seconds, push_sampler.peak_kib, pull_seconds, pull_sampler.peak_kib, hwm)


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"), help="blob size (1G, 64M, ...)")
    parser.add_argument("--verify", action="store_true", help="check the pulled blob's digest (slower pull)")
    args = parser.parse_args(argv)
    print(measure(args.size, verify=args.verify).report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
