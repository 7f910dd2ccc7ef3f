"""The programs the real-component tests drive (docker-registry, skopeo, umoci, pebble, redis-server, curl,
openssl, htpasswd, ...) and what a test does when one is missing.

Mark such a test ``@pytest.mark.needs("skopeo", "umoci")`` (``tests/conftest.py`` applies the mark), or
call :func:`require` where the need is known only inside the test. A missing program skips the test on a
developer's machine, and fails it where ``CI=true``: CI installs every peer (``noxfile.install_peers``), so a
missing one there is a broken run that would otherwise pass with the real-component tests skipped.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["in_ci", "missing", "require"]

#: Values of ``CI`` that mean a CI run (GitHub Actions, GitLab and most others set ``CI=true``).
_CI_VALUES = frozenset({"1", "true", "yes"})


def in_ci() -> bool:
    """Whether this is a CI run, where every peer must be installed."""
    return os.environ.get("CI", "").strip().lower() in _CI_VALUES


def missing(*programs: str) -> list[str]:
    """The ``programs`` that are not on ``PATH``, in the order given."""
    return [program for program in programs if shutil.which(program) is None]


def require(*programs: str) -> None:
    """Skip the running test unless every one of ``programs`` is on ``PATH``; fail it instead when
    ``CI=true``."""
    absent = missing(*programs)
    if not absent:
        return
    verb = "is" if len(absent) == 1 else "are"
    message = f"{', '.join(absent)} {verb} not installed (noxfile.install_peers installs the Debian peers)"
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)
