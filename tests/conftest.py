"""Hooks of the project's own tests (the fixtures they use come from the ``pax_registry`` plugin)."""

from __future__ import annotations

import pytest

from tests.peers import require


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs(*programs): programs the test drives; missing ones skip it, or fail it if CI=true"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        require(*mark.args)
