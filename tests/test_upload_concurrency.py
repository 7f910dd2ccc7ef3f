"""Two clients on one upload (issue 10, suite item c, first case).

Client A PATCHes an upload with ``Content-Length: 1000000``, sends 1,000 bytes and goes silent. Client B
PATCHes the same upload: it is refused at once (416 RANGE_INVALID, the committed ``Range``) instead of
waiting for A, and a third client's ``GET /v2/`` is answered meanwhile. When A's connection closes, the
upload is as it was before A: nothing of A's partial chunk is kept, and the push completes.

Run against a ``python -m emulator serve`` process (whose server takes turns: a request waiting for A's lock
in its turn would freeze every client) and in-process, on filesystem storage (which appends in place) and
in memory.
"""

from __future__ import annotations

import hashlib
import os
import time
import typing as t
import urllib.parse
from pathlib import Path

import pytest
import requests

import emulator
from pax_registry_fixtures.process import RegistryProcess
from tests.rawhttp import RawConnection

#: How long B's refusal and the third client's answer may take.
LIVENESS = 1.0
#: The chunk committed before A starts, and what A promises and sends.
COMMITTED = os.urandom(4096)
PROMISED, SENT = 1_000_000, 1000
QUIET = {"log": {"accesslog": {"disabled": True}}}


class Registry(t.NamedTuple):
    url: str
    port: int


@pytest.fixture(params=["process-filesystem", "inprocess-filesystem", "inprocess-inmemory"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> t.Iterator[Registry]:
    where, storage = request.param.split("-")
    config = {
        **QUIET,
        "storage": {"filesystem": {"rootdirectory": str(tmp_path)}}
        if storage == "filesystem"
        else "inmemory",
    }
    if where == "process":
        with RegistryProcess(config) as process:
            yield Registry(process.url, process.port)
    else:
        with emulator.start(config) as server:
            yield Registry(server.url, server.port)


def timed(action: t.Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = action()
    return response, time.monotonic() - started


def target(location: str) -> str:
    """The path and query of a ``Location``, absolute or not."""
    parts = urllib.parse.urlsplit(location)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def test_a_second_writer_is_refused_while_the_first_stalls(registry: Registry) -> None:
    session = requests.Session()
    session.trust_env = False
    started = session.post(f"{registry.url}/v2/stall/app/blobs/uploads/", timeout=10)
    assert started.status_code == 202
    first = session.patch(
        urllib.parse.urljoin(registry.url, started.headers["Location"]),
        data=COMMITTED,
        headers={"Content-Type": "application/octet-stream", "Content-Range": f"0-{len(COMMITTED) - 1}"},
        timeout=10,
    )
    assert first.status_code == 202
    location = urllib.parse.urljoin(registry.url, first.headers["Location"])

    with RawConnection(registry.port, timeout=10) as stalled:
        stalled.send(
            f"PATCH {target(location)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {PROMISED}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        # The 100 comes when the app first reads the body: A holds the upload from then on.
        assert stalled.read_response("PATCH").status == 100
        stalled.send(os.urandom(SENT))

        refused, took = timed(
            lambda: session.patch(
                location,
                data=b"b" * 10,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{len(COMMITTED)}-{len(COMMITTED) + 9}",
                },
                timeout=10,
            )
        )
        assert took < LIVENESS, f"B waited {took:.2f} s"
        assert refused.status_code == 416
        error = refused.json()["errors"][0]
        assert error["code"] == "RANGE_INVALID"
        assert "being written by another request" in error["message"]
        assert refused.headers["Range"] == f"0-{len(COMMITTED) - 1}"

        finishing, took = timed(
            lambda: session.put(location, params={"digest": "sha256:" + "0" * 64}, timeout=10)
        )
        assert took < LIVENESS
        assert finishing.status_code == 416  # and the upload is not cancelled by it

        third, took = timed(lambda: requests.get(f"{registry.url}/v2/", timeout=10))
        assert (third.status_code, took < LIVENESS) == (200, True)
        status = session.get(location, timeout=10)
        assert (status.status_code, status.headers["Range"]) == (204, f"0-{len(COMMITTED) - 1}")
        assert stalled.is_open(0.1), "A's request ended before its client did"

    # A is gone: the server drops its partial chunk and lets the upload go. Until it has noticed the
    # close, B is still refused, so B tries again for a while.
    rest = b"the rest of the blob"
    deadline = time.monotonic() + 10
    while True:
        resumed = session.patch(
            location,
            data=rest,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{len(COMMITTED)}-{len(COMMITTED) + len(rest) - 1}",
            },
            timeout=10,
        )
        if resumed.status_code != 416 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert resumed.status_code == 202, resumed.text
    assert resumed.headers["Range"] == f"0-{len(COMMITTED) + len(rest) - 1}"
    digest = "sha256:" + hashlib.sha256(COMMITTED + rest).hexdigest()
    done = session.put(
        urllib.parse.urljoin(registry.url, resumed.headers["Location"]), params={"digest": digest}, timeout=10
    )
    assert done.status_code == 201, done.text
    blob = session.get(f"{registry.url}/v2/stall/app/blobs/{digest}", timeout=10)
    assert blob.content == COMMITTED + rest
