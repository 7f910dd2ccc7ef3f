"""Clients that stall hold nothing others need (issue 10, suite item c).

A sender that stops half way through a body, a reader that never reads a large blob, and 2,000 connections
that never finish a request head: meanwhile a third client's ``GET /v2/`` answers within a second, stalled
connections are dropped after the idle timeout, and the server's threads stay under its connection cap.
Threads are counted as the kernel counts them (``/proc/<pid>/status``), for the in-process server (this
process) and for a ``python -m emulator serve`` child alike. (Two clients on one upload are tested with
the upload locks.)
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import typing as t
import urllib.parse

import pytest

import emulator
from pax_registry_fixtures.process import RegistryProcess
from tests.rawhttp import ConnectionClosed
from tests.rawhttp import RawConnection
from tests.rawhttp import os_threads

if t.TYPE_CHECKING:
    from pax_registry_fixtures.factory import RegistryFactory

#: The idle timeout of the servers here, and how long a third client may take to be answered.
IDLE = 1.5
LIVENESS = 1.0
#: How long a server may take, past what it waits for, to end a connection's thread.
SETTLE = 10.0
#: The connection cap, how many connections flood it (a few of them with half a request head), and the
#: threads a server may have beyond its cap (the accepting thread, this module's sampler, spares).
CAP = 100
FLOOD = 2000
PARTIAL_HEADS = 20
SLACK = 10
QUIET = {"log": {"accesslog": {"disabled": True}}}


def get_v2(port: int) -> None:
    """A fresh client's ``GET /v2/`` answers 200 within :data:`LIVENESS` seconds."""
    started = time.monotonic()
    try:
        with RawConnection(port, timeout=LIVENESS) as conn:
            conn.send(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status = conn.read_response().status
    except (TimeoutError, ConnectionClosed) as e:
        pytest.fail(f"GET /v2/ got no answer within {LIVENESS} s: {e!r}")
    elapsed = time.monotonic() - started
    assert status == 200
    assert elapsed < LIVENESS, f"GET /v2/ took {elapsed:.2f} s"


def wait_until(condition: t.Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting after {seconds} s for {what}")
        time.sleep(0.05)


def open_upload(port: int, repository: str) -> str:
    """Start an upload on a new connection that closes after it; the location's path and query."""
    with RawConnection(port) as conn:
        conn.send(
            f"POST /v2/{repository}/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        response = conn.read_response()
    assert response.status == 202, response
    location = urllib.parse.urlsplit(response.header("Location") or "")
    return f"{location.path}?{location.query}"


def start_stalled_patch(port: int, upload: str) -> RawConnection:
    """A PATCH that announces a megabyte, sends a kilobyte and goes silent."""
    conn = RawConnection(port, timeout=IDLE + SETTLE)
    conn.send(
        f"PATCH {upload} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + bytes(1000)
    )
    return conn


class PeakThreads:
    """Samples a process's thread count in a background thread until stopped; :attr:`peak` is the most."""

    def __init__(self, pid: int, *, limit: float = 60.0) -> None:
        self.pid = pid
        self.peak = os_threads(pid)
        self._stop = threading.Event()
        self._deadline = time.monotonic() + limit
        self._thread = threading.Thread(target=self._sample, name="thread-sampler", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005) and time.monotonic() < self._deadline:
            self.peak = max(self.peak, os_threads(self.pid))

    def __enter__(self) -> PeakThreads:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def flood(port: int) -> list[socket.socket]:
    """Open :data:`FLOOD` connections that never complete a request head; the caller closes them."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(PARTIAL_HEADS):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sockets.append(sock)
            sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")  # no blank line: the head never ends
        for _ in range(FLOOD - PARTIAL_HEADS):
            # Not waiting for each handshake: the kernel completes them while the loop goes on.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
    except BaseException:
        close_all(sockets)
        raise
    return sockets


def close_all(sockets: t.Iterable[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def assert_flood_stays_under_the_cap(port: int, pid: int) -> None:
    baseline = os_threads(pid)
    with PeakThreads(pid) as threads:
        sockets = flood(port)
        try:
            get_v2(port)
            get_v2(port)
        finally:
            close_all(sockets)
    limit = baseline + CAP + SLACK
    assert threads.peak < limit, f"{threads.peak} threads (baseline {baseline}, cap {CAP})"


def no_tracebacks(records: t.Iterable[logging.LogRecord]) -> list[str]:
    return [record.getMessage() for record in records if record.exc_info and record.levelno >= logging.INFO]


# -- in process ------------------------------------------------------------------------------------------


def test_stalled_sender_holds_nobody_and_is_dropped_after_the_idle_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with emulator.start({**QUIET, "storage": {"inmemory": {}}}, idle_timeout=IDLE) as server:
        baseline = os_threads()
        upload = open_upload(server.port, "stall/sender")
        with start_stalled_patch(server.port, upload) as stalled:
            stalled_at = time.monotonic()
            get_v2(server.port)
            # The request ends with a 400 once the body has been silent for the idle timeout.
            response = stalled.read_response()
            assert response.status == 400, response
            assert stalled.closes_within(SETTLE), stalled.unexpected
            waited = time.monotonic() - stalled_at
            assert waited >= IDLE * 0.9, f"dropped after {waited:.2f} s, before the idle timeout"
        wait_until(lambda: os_threads() <= baseline, SETTLE, f"{baseline} threads, not {os_threads()}")
    assert not no_tracebacks(caplog.records)


def test_stalled_reader_of_a_large_blob_holds_nobody_and_is_dropped_after_the_idle_timeout(
    pax_registry_factory: RegistryFactory,
) -> None:
    registry = pax_registry_factory(storage="filesystem", start=False)
    digest = registry.push_blob("stall/reader", os.urandom(64 << 20))
    with emulator.BackgroundServer(registry.middleware, idle_timeout=IDLE) as server:
        baseline = os_threads()
        with RawConnection(server.port, receive_buffer=4096) as reader:
            reader.send(f"GET /v2/stall/reader/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            time.sleep(0.3)  # the server fills the socket buffers and blocks in its send
            get_v2(server.port)
            # The reader still holds its socket open, unread: only the server's send timeout ends it.
            wait_until(
                lambda: os_threads() <= baseline,
                IDLE + SETTLE,
                f"the sending thread to end ({os_threads()} threads, baseline {baseline})",
            )


def test_half_open_connections_stay_under_the_cap() -> None:
    config = {**QUIET, "storage": {"inmemory": {}}, "http": {"maxconnections": CAP}}
    with emulator.start(config, idle_timeout=60) as server:
        assert_flood_stays_under_the_cap(server.port, os.getpid())


# -- python -m emulator serve ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def serve_process() -> t.Iterator[RegistryProcess]:
    with RegistryProcess({**QUIET, "storage": {"inmemory": {}}, "http": {"maxconnections": CAP}}) as process:
        yield process


def test_serve_stalled_sender_holds_nobody_and_its_thread_ends_with_it(
    serve_process: RegistryProcess,
) -> None:
    # ``serve`` has the default idle timeout (300 s): what is checked here is that the stalled sender
    # holds no one up, and that its thread goes when the client does.
    port, pid = serve_process.port, serve_process.pid
    get_v2(port)
    baseline = os_threads(pid)
    upload = open_upload(port, "stall/sender")
    with start_stalled_patch(port, upload):
        get_v2(port)
        assert os_threads(pid) <= baseline + 1 + SLACK
    wait_until(lambda: os_threads(pid) <= baseline, SETTLE, f"{baseline} threads in the server")
    assert serve_process.is_running()


def test_serve_half_open_connections_stay_under_the_cap(serve_process: RegistryProcess) -> None:
    get_v2(serve_process.port)
    assert_flood_stays_under_the_cap(serve_process.port, serve_process.pid)
    assert serve_process.is_running()
