"""The outcomes beyond pass and fail, and the status classes the checks share."""

from __future__ import annotations

import typing as t

import pytest

from conformance.client import error_codes
from conformance.plugin import UNSUPPORTED

if t.TYPE_CHECKING:
    import requests

__all__ = ["after", "deletion_refused", "is_success", "not_applicable", "unsupported"]


def after(*steps: object) -> None:
    """Name the steps a workflow step depends on.

    Steps are cached properties, so naming them (evaluating the arguments) runs each once, in order; a
    check run alone still gets everything it needs.
    """


def unsupported(feature: str) -> t.NoReturn:
    """End the check as *unsupported*: the registry lacks an optional feature the spec lets it lack."""
    pytest.skip(f"{UNSUPPORTED} {feature}")


def not_applicable(reason: str) -> t.NoReturn:
    """End the check as skipped: its precondition does not hold on this run."""
    pytest.skip(f"not applicable: {reason}")


def is_success(response: requests.Response) -> bool:
    return 200 <= response.status_code < 300


def deletion_refused(response: requests.Response) -> bool:
    """Whether a DELETE was refused the ways the spec allows when deletes are disabled (400 or 405)."""
    return response.status_code in (400, 405)


def describe(response: requests.Response) -> str:
    """``405 UNSUPPORTED``: the status and the error codes, for skip reasons."""
    return " ".join([str(response.status_code), *error_codes(response)])
