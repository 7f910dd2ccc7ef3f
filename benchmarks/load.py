"""Load generators for the manifest scenario: ``wrk`` for GET (its ``--latency`` gives p99) and ``hey``
for HEAD (wrk waits for a body after a HEAD answer with a ``Content-Length``, so it cannot send HEAD).

Both are native, keep their connections alive and speak HTTP/1.1 (also over TLS, without verifying the
certificate), so the same client drives both registries.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import typing as t
from dataclasses import dataclass
from pathlib import Path

from benchmarks.client import ACCEPT


@dataclass(frozen=True)
class LoadResult:
    requests_per_second: float
    p99_ms: float


class LoadError(RuntimeError):
    pass


_DURATION = re.compile(r"([\d.]+)(us|ms|s|m)\b")
_SCALE = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def available(tool: str) -> bool:
    return shutil.which(tool) is not None


def _run(command: list[str], timeout: float) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise LoadError(f"{' '.join(command)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def _milliseconds(text: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise LoadError(f"cannot read the duration {text!r}")
    return float(match.group(1)) * _SCALE[match.group(2)]


def wrk_get(
    url: str,
    connections: int,
    seconds: float,
    headers: t.Mapping[str, str] | None = None,
    script: Path | None = None,
    script_args: t.Sequence[str] = (),
) -> LoadResult:
    """``wrk`` GETs of ``url`` on ``connections`` keep-alive connections for ``seconds``, with ``Accept``
    and any ``headers`` on every request; a Lua ``script`` (given ``script_args``) may choose each
    request's path."""
    threads = 1 if connections == 1 else 2
    duration = max(seconds, 1)
    extra = [argument for name, value in (headers or {}).items() for argument in ("-H", f"{name}: {value}")]
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:.0f}s", "--latency",
        # wrk leaves answers slower than its timeout (2 s by default) out of the latencies: a slow server
        # would get a p99 below its real one. No answer within the run can be that slow now.
        f"--timeout={duration + 10:.0f}s",
        "-H", f"Accept: {ACCEPT}", *extra,
    ]  # fmt: skip
    command += ["-s", str(script), url, "--", *script_args] if script is not None else [url]
    output = _run(command, seconds + 30)
    if "Non-2xx or 3xx responses" in output or "Socket errors" in output:
        raise LoadError(f"wrk saw errors from {url}:\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if rate is None or p99 is None:
        raise LoadError(f"cannot read wrk's output:\n{output}")
    return LoadResult(float(rate.group(1)), _milliseconds(p99.group(1)))


def hey(url: str, connections: int, seconds: float, method: str = "HEAD") -> LoadResult:
    """``hey`` requests (HEAD by default) of ``url`` from ``connections`` workers for ``seconds``."""
    command = [
        "hey", "-z", f"{max(seconds, 1):.0f}s", "-c", str(connections), "-m", method,
        "-H", f"Accept: {ACCEPT}", url,
    ]  # fmt: skip
    output = _run(command, seconds + 30)
    statuses = re.findall(r"\[(\d{3})\]\s+(\d+) responses", output)
    if not statuses or any(code != "200" for code, _ in statuses):
        raise LoadError(f"hey saw answers other than 200 from {url}:\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"99% in ([\d.]+) secs", output)
    if rate is None or p99 is None:
        raise LoadError(f"cannot read hey's output:\n{output}")
    return LoadResult(float(rate.group(1)), float(p99.group(1)) * 1000)
