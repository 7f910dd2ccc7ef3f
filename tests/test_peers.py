"""A missing peer skips a test on a developer's machine and fails it in CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.peers import missing
from tests.peers import require

pytest_plugins = ["pytester"]

ABSENT = "pax-no-such-program"
CONFTEST = Path(__file__).with_name("conftest.py")


def test_a_present_program_lets_the_test_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert missing("sh", ABSENT) == [ABSENT]
    require("sh")


def test_a_missing_program_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"{ABSENT} is not installed"):
        require("sh", ABSENT)


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_a_missing_program_fails_in_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=f"CI=true and {ABSENT}, other are not installed"):
        require(ABSENT, "other")


@pytest.mark.parametrize(("ci", "outcome"), [("", "skipped"), ("true", "errors")])
def test_the_needs_mark_skips_or_fails_the_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.needs("sh", {ABSENT!r})
        def test_drives_a_peer():
            pass
        """
    )
    monkeypatch.setenv("CI", ci)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:benchmark", "-rsf")
    # A failure in setup counts as an error: the run fails all the same.
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines([f"*{ABSENT} is not installed*"])
