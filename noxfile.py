"""Sessions for tests, conformance runs, linting and benchmarks. ``nox`` alone runs what CI runs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests", "conformance_emulator", "conformance_distribution"]
nox.options.reuse_existing_virtualenvs = True

#: Debian packages the real-component tests drive: the reference registry, real clients, an ACME
#: server, Redis, load tools, and a browser that renders the suite's HTML reports.
DEBIAN_PEERS = {
    "docker-registry": "docker-registry",
    "htpasswd": "apache2-utils",
    "skopeo": "skopeo",
    "umoci": "umoci",
    "pebble": "pebble",
    "redis-server": "redis-server",
    "wrk": "wrk",
    "hey": "hey",
    "nginx": "nginx",
    "curl": "curl",
    "openssl": "openssl",
    "chromium": "chromium",
}


def in_ci() -> bool:
    """Whether this is a CI run (``CI=true``), where a missing peer fails the tests that need it
    (tests/peers.py reads the variable the same way)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_peers() -> list[str]:
    return sorted({package for tool, package in DEBIAN_PEERS.items() if shutil.which(tool) is None})


def install_peers(session: nox.Session) -> None:
    """Install missing Debian peers with apt-get when we can (root on Debian). Where we cannot, the tests
    that need them skip; in CI they would fail one by one, so the session stops here instead."""
    missing = missing_peers()
    if not missing:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        message = f"cannot install {', '.join(missing)} (needs apt-get, as root)"
        if in_ci():
            session.error(f"CI=true and {message}: the tests that need them would fail")
        session.warn(f"{message}: tests that need them will skip")
        return
    session.run("apt-get", "update", "-qq", external=True)
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run(
        "apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, external=True, env=env
    )
    # A package can install without the program its tests look for (renamed binary, another path).
    still = missing_peers()
    if still:
        message = f"installed, yet not on PATH: {', '.join(still)}"
        if in_ci():
            session.error(f"CI=true and {message}")
        session.warn(f"{message}: tests that need them will skip")


def install_project(session: nox.Session, *extras: str) -> None:
    session.install("-e", f".[{','.join(extras)}]" if extras else ".")


@nox.session
def lint(session: nox.Session) -> None:
    install_project(session, "test", "s3", "dev")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def tests(session: nox.Session) -> None:
    install_peers(session)
    install_project(session, "test", "s3")
    # The conformance runs have their own sessions below.
    session.run(
        "pytest",
        "-n",
        "2",
        "--dist",
        "loadfile",
        "--ignore=tests/test_conformance_broken.py",
        "--ignore=tests/test_conformance_targets.py",
        *session.posargs,
    )


@nox.session
def conformance_emulator(session: nox.Session) -> None:
    """The conformance suite against the in-process emulator, then the project's tests of the suite:
    a ``python -m emulator serve`` process must pass and broken variants of the emulator must fail."""
    install_project(session, "test")
    session.run("pytest", "--pyargs", "conformance", "-p", "no:cacheprovider", *session.posargs)
    session.run(
        "pytest",
        "-n",
        "2",
        "tests/test_conformance_broken.py",
        "tests/test_conformance_targets.py",
        "-k",
        "not distribution",
        *session.posargs,
    )


@nox.session
def conformance_distribution(session: nox.Session) -> None:
    """The conformance suite against Debian's docker-registry 2.8.2, then each run's group table and
    failures, and a page with the runs side by side."""
    install_peers(session)
    install_project(session, "test")
    # Every run of the suite writes a JSON report here (conformance.runner.REPORT_DIR).
    reports = Path(session.create_tmp(), "conformance-reports").resolve()
    shutil.rmtree(reports, ignore_errors=True)
    reports.mkdir(parents=True)
    try:
        session.run(
            "pytest",
            "-n",
            "2",
            "tests/test_conformance_targets.py",
            "-k",
            "distribution",
            *session.posargs,
            env={"PAX_CONFORMANCE_REPORT_DIR": str(reports)},
        )
    finally:
        # The tables matter most when the wrapper tests failed, so they are printed in any case.
        found = [str(path) for path in sorted(reports.glob("*.json"), key=lambda path: path.stat().st_mtime)]
        if found:
            session.run("python", "-m", "conformance.report", "summary", *found)
            page = str(reports / "index.html")
            session.run("python", "-m", "conformance.report", "compare", *found, "--html", page, silent=True)
            session.log(f"conformance reports: {page}")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with docker-registry; ``nox -s bench -- --quick`` for a short run."""
    install_peers(session)
    install_project(session, "test", "s3")
    session.run("python", "-m", "benchmarks", *session.posargs)
