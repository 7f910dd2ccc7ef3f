"""The assertions and outcomes the checks share: workflow steps, skips for unmet preconditions, and the
header rules.

Verdicts beyond pass and fail live in :mod:`conformance.verdicts`; the helpers here only judge (with
asserts) or call it with a row.
"""

from __future__ import annotations

import hashlib
import typing as t

import pytest

from conformance.client import error_codes
from conformance.verdicts import end_if_not_offered

if t.TYPE_CHECKING:
    import requests

__all__ = [
    "after",
    "assert_digest_header",
    "assert_digest_if_present",
    "assert_error_code",
    "assert_size_header",
    "digest_matches",
    "not_applicable",
]

#: The algorithms a ``Docker-Content-Digest`` may use, by the name digests give them.
ALGORITHMS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def after(*steps: object) -> None:
    """Name the steps a workflow step depends on.

    Steps are cached properties, so naming them (evaluating the arguments) runs each once, in order; a
    check run alone still gets everything it needs.
    """


def not_applicable(reason: str) -> t.NoReturn:
    """End the check as skipped: its precondition does not hold on this run."""
    pytest.skip(f"not applicable: {reason}")


def digest_matches(digest: str, content: bytes) -> bool:
    """Whether ``digest`` (``algorithm:hex``) is a digest of ``content``, in any known algorithm."""
    algorithm, _, encoded = digest.partition(":")
    hasher = ALGORITHMS.get(algorithm)
    return hasher is not None and hasher(content).hexdigest() == encoded


def assert_digest_header(
    response: requests.Response, content: bytes, profile: str, *, exactly: str | None = None
) -> None:
    """``Docker-Content-Digest`` must be a digest of ``content`` (``exactly`` that one, if given).

    The spec lets the canonical digest use another algorithm than the one asked for, but a manifest
    pushed by digest must come back under the client's digest. Without the header, the ``digest-header``
    row decides; call this last, since that ends the check.
    """
    value = response.headers.get("Docker-Content-Digest")
    if value is None:
        end_if_not_offered("digest-header", response, profile)
        raise AssertionError(f"{response.status_code} without Docker-Content-Digest")
    if exactly is not None:
        assert value == exactly, f"Docker-Content-Digest is {value}, not {exactly}"
    assert digest_matches(value, content), f"Docker-Content-Digest {value} is no digest of the content"


def assert_digest_if_present(response: requests.Response, content: bytes) -> None:
    """Where the spec does not ask for ``Docker-Content-Digest`` (upload and mount answers), a header
    that is sent must still name the content."""
    value = response.headers.get("Docker-Content-Digest")
    if value is not None:
        assert digest_matches(value, content), f"Docker-Content-Digest {value} is no digest of the content"


def assert_error_code(response: requests.Response, code: str, profile: str) -> None:
    """The first error code of a JSON error body is ``code``; a body that is not JSON is the
    ``error-bodies`` row's to judge. Call it after the status is asserted."""
    end_if_not_offered("error-bodies", response, profile)
    assert error_codes(response)[:1] == [code], f"expected {code}, got {error_codes(response) or 'no code'}"


def assert_size_header(response: requests.Response, size: int, profile: str) -> None:
    """A HEAD's ``Content-Length`` must be the size of what a GET returns; without it the row decides."""
    value = response.headers.get("Content-Length")
    if value is None:
        end_if_not_offered("head-size", response, profile)
        raise AssertionError(f"{response.status_code} without Content-Length")
    assert value == str(size), f"Content-Length is {value}, the content has {size} bytes"
