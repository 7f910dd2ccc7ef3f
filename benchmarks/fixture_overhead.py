"""What a function-scoped ``pax_registry`` costs: its start + stop, and the overhead on a 200-test suite.

Run: ``python benchmarks/fixture_overhead.py [--iterations 300] [--tests 200] [--repeats 3] [--json FILE]``.

1. start + stop: the median (and p90) time of exactly what the fixture does around a test: build the
   configuration, the app and its middleware, serve it on a free port, then stop it.
2. suite overhead: two generated suites of ``--tests`` trivial tests run by ``python -m pytest`` in a
   subprocess, one where every test takes ``pax_registry`` and one where none does; both load the same
   plugins. The overhead is the difference of their median wall-clock times over ``--repeats`` runs.

Targets (issue 4): start + stop median under 20 ms; 200 tests add under 5 s.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def start_stop(iterations: int) -> list[float]:
    sys.path.insert(0, str(PROJECT))
    from pax_registry_fixtures.server import RegistryServer

    for _ in range(10):  # imports, the cached default configuration, first-use costs
        RegistryServer().stop()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        registry = RegistryServer()
        registry.stop()
        samples.append(time.perf_counter() - started)
    return samples


def _plugin_installed() -> bool:
    entry_points = importlib.metadata.entry_points(group="pytest11")
    return any(entry.value == "pax_registry_fixtures.plugin" for entry in entry_points)


def _write_suite(directory: Path, tests: int, *, with_fixture: bool) -> None:
    directory.mkdir()
    argument = "pax_registry" if with_fixture else ""
    body = "assert pax_registry.url" if with_fixture else "assert True"
    lines = [f"def test_{n}({argument}):\n    {body}\n" for n in range(tests)]
    (directory / "test_suite.py").write_text("\n\n".join(lines))


def _run_suite(directory: Path, tests: int) -> float:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    env = dict(os.environ)
    if not _plugin_installed():
        args += ["-p", "pax_registry_fixtures.plugin"]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH")]))
    started = time.perf_counter()
    result = subprocess.run([*args, "test_suite.py"], cwd=directory, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or f"{tests} passed" not in result.stdout:
        raise RuntimeError(f"suite in {directory} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed


def suite_overhead(tests: int, repeats: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="pax-bench-") as root:
        plain, fixture = Path(root, "plain"), Path(root, "fixture")
        _write_suite(plain, tests, with_fixture=False)
        _write_suite(fixture, tests, with_fixture=True)
        _run_suite(plain, tests)  # warm the file cache and bytecode
        plain_times, fixture_times = [], []
        # Interleaved, so that a noisy moment on a shared machine hits both sides alike.
        for _ in range(repeats):
            plain_times.append(_run_suite(plain, tests))
            fixture_times.append(_run_suite(fixture, tests))
    return {
        "without_fixture_s": statistics.median(plain_times),
        "with_fixture_s": statistics.median(fixture_times),
        "overhead_s": statistics.median(fixture_times) - statistics.median(plain_times),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    options = parser.parse_args(argv)

    samples = start_stop(options.iterations)
    ordered = sorted(samples)
    results: dict[str, float | int] = {
        "start_stop_median_ms": statistics.median(samples) * 1000,
        "start_stop_p90_ms": ordered[int(len(ordered) * 0.9) - 1] * 1000,
        "start_stop_iterations": options.iterations,
        "tests": options.tests,
        **suite_overhead(options.tests, options.repeats),
    }
    print(
        f"start + stop of a function-scoped pax_registry: median {results['start_stop_median_ms']:.2f} ms, "
        f"p90 {results['start_stop_p90_ms']:.2f} ms over {options.iterations} (target: median < 20 ms)"
    )
    print(
        f"{options.tests} tests: {results['without_fixture_s']:.2f} s without the fixture, "
        f"{results['with_fixture_s']:.2f} s with it: overhead {results['overhead_s']:.2f} s (target: < 5 s)"
    )
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(results, indent=2) + "\n")
    ok = results["start_stop_median_ms"] < 20 and results["overhead_s"] < 5
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
