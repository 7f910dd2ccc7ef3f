"""Benchmarks: the emulator beside Debian's docker-registry 2.8.2, same configuration, same clients.

    python -m benchmarks                      # full: 1 GiB blobs, 10,000 tags/repositories, 5 rounds
    python -m benchmarks --quick              # 64 MiB blobs, 1,000 tags/repositories, 3 rounds, short loads
    python -m benchmarks --scenarios blobs manifests --rounds 7
    python -m benchmarks --scenarios auth     # manifest GETs under htpasswd, plain and TLS
    python -m benchmarks --scenarios notifications proxy   # issue 13's rows: the emulator against itself
    python -m benchmarks --scenarios s3       # a blob pushed in PATCHes to S3 storage on moto
    nox -s bench -- --quick

Writes ``--json`` (one object per row) and ``--markdown`` (the table for the README) and prints the table.
Both servers keep their storage on tmpfs (``/dev/shm``) when it has room, so that the machine's disk is
not what is measured; ``--workdir`` chooses another place.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
import typing as t
from pathlib import Path

from benchmarks import chart
from benchmarks import features
from benchmarks import inmemory
from benchmarks import limits
from benchmarks import s3_appends
from benchmarks import scale
from benchmarks import scenarios
from benchmarks import servers
from benchmarks.client import Blob
from benchmarks.report import Results
from benchmarks.report import machine
from benchmarks.report import now
from benchmarks.seed import copy_tree
from benchmarks.seed import seed

FAMILIES = (
    "blobs", "manifests", "listings", "skopeo", "auth", "ready", "fixture", "tls", "notifications", "proxy",
    "s3", "inmemory",
)  # fmt: skip
DEFAULT_OUTPUT = Path("bench-results")


def parse_args(argv: t.Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs (CI)")
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_OUTPUT / "benchmark.json", help="results as JSON"
    )
    parser.add_argument("--markdown", type=Path, default=DEFAULT_OUTPUT / "benchmark.md", help="the table")
    parser.add_argument(
        "--chart", type=Path, default=DEFAULT_OUTPUT / "benchmark.svg", help="the ratios as an SVG chart"
    )
    parser.add_argument(
        "--scenarios", nargs="+", choices=FAMILIES, default=list(FAMILIES), metavar="NAME",
        help=f"which scenario families to run (default: all of {', '.join(FAMILIES)})",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default: 5, or 3 with --quick)")
    parser.add_argument("--load-seconds", type=int, help="length of each wrk/hey run (default: 5, or 1)")
    parser.add_argument("--workdir", type=Path, help="where blobs and both storages go (default: tmpfs)")
    return parser.parse_args(argv)


def choose_workdir(requested: Path | None, needed: int) -> Path:
    if requested is not None:
        requested.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="bench-", dir=requested))
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > needed:
        return Path(tempfile.mkdtemp(prefix="registry-bench-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="registry-bench-"))


def filesystem_of(path: Path) -> str:
    best, kind = "", "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and str(path).startswith(fields[1]) and len(fields[1]) > len(best):
                best, kind = fields[1], fields[2]
    return kind


def guarded(results: Results, name: str, run: t.Callable[[], None]) -> None:
    """Run one scenario family; a failure is reported in the results and the run goes on."""
    scenarios.progress(f"[{name}]")
    started = time.perf_counter()
    try:
        run()
    except Exception as error:
        traceback.print_exc()
        results.notes.append(f"{name} failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
    scenarios.progress(f"[{name}] {time.perf_counter() - started:.0f} s")


def main(argv: t.Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = (scenarios.QUICK if args.quick else scenarios.FULL).replace(
        rounds=args.rounds, load_seconds=args.load_seconds
    )
    chosen = set(args.scenarios)
    started = time.perf_counter()
    # The client's blob file, then a copy in each server's storage (twice over TLS), and an upload aside.
    workdir = choose_workdir(args.workdir, 6 * plan.blob_size + (1 << 30))
    results = Results(
        {
            "date": now(),
            "mode": plan.mode,
            "rounds": plan.rounds,
            "blob": scenarios.size_label(plan.blob_size),
            "storage": f"{workdir} ({filesystem_of(workdir)})",
            "machine": machine(),
            "python": platform.python_version(),
            "distribution_version": servers.distribution_version(),
            "nginx_version": limits.nginx_version(),
            "plan": plan.__dict__,
        }
    )
    if servers.compile_emulator():
        results.notes.append(
            "The emulator's bytecode was compiled first, as installing it would: this machine sets "
            "PYTHONDONTWRITEBYTECODE."
        )
    try:
        blob = Blob.create(str(workdir / "blob.bin"), plan.blob_size)
        plain_seed, small_seed = workdir / "seed", workdir / "seed-small"
        seed(
            plain_seed,
            tags=plan.tags,
            repositories=plan.repositories,
            tag_lists=plan.tag_lists if "listings" in chosen else (),
            distinct=plan.distinct if "manifests" in chosen else (),
        )
        seed(small_seed, tags=0, repositories=0)

        # The limit column's nginx serves the client's blob file and the seeded manifest.
        static = {limits.BLOB_PATH: Path(blob.path), limits.MANIFEST_PATH: limits.manifest_file(small_seed)}
        if chosen & {"blobs", "manifests", "listings", "skopeo"}:
            with (
                prepared_pair(workdir, "plain", plain_seed, None) as pair,
                limits.nginx_or_none(workdir / "nginx", static, None, results.notes) as nginx,
            ):
                if "blobs" in chosen:
                    guarded(
                        results,
                        "blobs",
                        lambda: scenarios.blobs(results, pair, plan, blob, tls=False, nginx=nginx),
                    )
                if "manifests" in chosen:
                    guarded(
                        results,
                        "manifests",
                        lambda: scenarios.manifests(results, pair, plan, tls=False, nginx=nginx),
                    )
                    guarded(results, "distinct", lambda: scale.distinct_manifests(results, pair, plan))
                if "listings" in chosen:
                    guarded(results, "listings", lambda: scenarios.listings(results, pair, plan))
                    guarded(results, "fresh tags", lambda: scale.fresh_tag_lists(results, pair, plan))
                if "skopeo" in chosen:
                    guarded(results, "skopeo", lambda: scenarios.skopeo_copies(results, pair, plan, workdir))
        if "auth" in chosen and not scenarios.missing_auth_tools(results):
            guarded(results, "auth", lambda: authenticated(results, plan, workdir, small_seed, tls=False))
            guarded(
                results, "auth over TLS", lambda: authenticated(results, plan, workdir, small_seed, tls=True)
            )
        if "ready" in chosen:
            guarded(results, "ready", lambda: scenarios.ready(results, plan, workdir))
        if "fixture" in chosen:
            guarded(results, "fixture", lambda: scenarios.fixture(results, plan))
        if "notifications" in chosen:
            guarded(
                results,
                "notifications",
                lambda: features.notifications_overhead(results, plan, workdir, small_seed),
            )
        if "proxy" in chosen:
            guarded(results, "proxy", lambda: features.proxy_pulls(results, plan, workdir))
        if "s3" in chosen:
            guarded(results, "s3", lambda: s3_appends.s3_appends(results, plan, workdir, blob))
        if "inmemory" in chosen:
            guarded(
                results, "inmemory", lambda: inmemory.inmemory_rows(results, plan, workdir, blob, small_seed)
            )
        if "tls" in chosen:
            tls = servers.make_tls(workdir / "tls")
            with (
                prepared_pair(workdir, "tls", small_seed, tls) as pair,
                limits.nginx_or_none(workdir / "nginx-tls", static, tls, results.notes) as nginx,
            ):
                guarded(
                    results,
                    "blobs over TLS",
                    lambda: scenarios.blobs(results, pair, plan, blob, tls=True, nginx=nginx),
                )
                guarded(
                    results,
                    "manifests over TLS",
                    lambda: scenarios.manifests(results, pair, plan, tls=True, nginx=nginx),
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    elapsed = time.perf_counter() - started
    results.meta["elapsed_s"] = round(elapsed, 1)
    results.write_json(args.json)
    table = results.markdown()
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(table)
    title = f"Emulator against distribution and the limit ({plan.mode} run, {results.meta['date']})"
    chart.write(results.rows(), title, args.chart)
    print(table)
    print(
        f"{plan.mode} run took {elapsed:.0f} s; wrote {args.json}, {args.markdown} and {args.chart}",
        file=sys.stderr,
    )
    return 0


@contextlib.contextmanager
def prepared_pair(
    workdir: Path, name: str, seeded: Path, tls: servers.TLSFiles | None, htpasswd: Path | None = None
) -> t.Iterator[dict[str, servers.Server]]:
    for side in servers.SIDES:
        copy_tree(seeded, workdir / f"{name}-{side}")
    with servers.pair(workdir, name, tls, htpasswd) as pair:
        yield pair


def authenticated(results: Results, plan: scenarios.Plan, workdir: Path, seeded: Path, *, tls: bool) -> None:
    """The htpasswd rows on a pair of their own: the other rows measure servers without auth."""
    name = "auth-tls" if tls else "auth"
    credentials = servers.make_htpasswd(workdir / f"{name}.htpasswd", scenarios.HTPASSWD_COST)
    files = servers.make_tls(workdir / f"{name}-certificates") if tls else None
    with prepared_pair(workdir, name, seeded, files, credentials.path) as pair:
        scenarios.authenticated_manifests(results, pair, plan, credentials, tls=tls)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
