"""Hooks of the project's own tests (the fixtures they use come from the ``pax_registry`` plugin)."""

from __future__ import annotations

import importlib.util

import pytest

from tests.peers import in_ci
from tests.peers import require

#: Packages of the ``test`` extra whose absence the plugin answers with a skip (moto: ``pax_s3``). Like a
#: missing peer, a missing one fails a CI run: every S3 test skipped would otherwise pass for green.
SKIPPED_WHEN_MISSING = ("moto",)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs(*programs): programs the test drives; missing ones skip it, or fail it if CI=true"
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    absent = [name for name in SKIPPED_WHEN_MISSING if importlib.util.find_spec(name) is None]
    if absent and in_ci():
        raise pytest.UsageError(f"CI=true and {', '.join(absent)} is not installed: pip install -e '.[test]'")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        require(*mark.args)
