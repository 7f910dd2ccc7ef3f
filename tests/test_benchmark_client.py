"""The benchmark's pull client: it splices plain-HTTP bodies into /dev/null and must still count every
byte, whether the body came with the head or after it, and notice a body cut short."""

from __future__ import annotations

import socket
import threading

import pytest

from benchmarks import client
from pax_registry_fixtures import RegistryServer
from pax_registry_fixtures.client import blob_path


@pytest.mark.parametrize("size", [0, 1, 5000, 3 * client.PIPE_SIZE + 17])
def test_fetch_counts_every_byte_of_a_blob(pax_registry: RegistryServer, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    digest = pax_registry.push_blob("bench/blob", data)
    # fetch raises unless exactly ``size`` bytes arrived.
    assert client.fetch(pax_registry.url, None, blob_path("bench/blob", digest), size) > 0


def test_fetch_refuses_a_wrong_length(pax_registry: RegistryServer) -> None:
    digest = pax_registry.push_blob("bench/blob", b"content")
    with pytest.raises(RuntimeError, match="gave 7 bytes of 8"):
        client.fetch(pax_registry.url, None, blob_path("bench/blob", digest), 8)


def test_fetch_notices_a_body_cut_short() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 70000)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(RuntimeError, match="gave 70000 bytes of 100000"):
            client.fetch(url, None, "/blob", 100000)
    finally:
        thread.join()
        listener.close()


def test_fetch_says_what_a_refusal_answered(pax_registry: RegistryServer) -> None:
    with pytest.raises(RuntimeError, match="answered 404"):
        client.fetch(pax_registry.url, None, blob_path("bench/blob", "sha256:" + "0" * 64), 1)
