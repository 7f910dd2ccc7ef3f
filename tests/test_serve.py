"""``python -m emulator serve`` as a process: graceful stops, Unix sockets, upload purging, log fields."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import requests

from pax_registry_fixtures.process import RegistryProcess
from pax_registry_fixtures.process import clean_environ
from pax_registry_fixtures.process import end_process

QUIET = {"log": {"accesslog": {"disabled": True}}}


def filesystem(root: Path, **extra: t.Any) -> dict[str, t.Any]:
    return {**QUIET, "storage": {"filesystem": {"rootdirectory": str(root)}, **extra}}


def start_slow_patch(registry: RegistryProcess) -> tuple[socket.socket, bytes]:
    """Open an upload and begin a PATCH whose body is only half sent, so the request is in flight."""
    location = requests.post(f"{registry.url}/v2/slow/blobs/uploads/", timeout=10).headers["Location"]
    path = location.split(registry.host, 1)[1]
    connection = socket.create_connection(("127.0.0.1", registry.port), timeout=10)
    connection.sendall(
        f"PATCH {path} HTTP/1.1\r\nHost: {registry.host}\r\nContent-Length: 10\r\n"
        "Content-Type: application/octet-stream\r\n\r\n".encode()
    )
    connection.sendall(b"01234")
    return connection, b"56789"


def wait_for_exit(registry: RegistryProcess, timeout: float = 10) -> int | None:
    process = registry._process  # the handle keeps its Popen private; only the exit status is read
    assert process is not None
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def test_sigterm_with_draintimeout_lets_requests_in_flight_finish(tmp_path: Path) -> None:
    config = {**filesystem(tmp_path), "http": {"draintimeout": "10s"}}
    with RegistryProcess(config) as registry:
        connection, rest = start_slow_patch(registry)
        # Give the server time to hand the request to the app (a request still in its headers when the
        # signal comes is not yet in flight), then stop it while the app waits for the body's end.
        time.sleep(1)
        os.kill(registry.pid, signal.SIGTERM)
        time.sleep(1)
        assert wait_for_exit(registry, timeout=0.1) is None  # still draining
        connection.sendall(rest)
        reply = connection.recv(4096).decode()
        connection.close()
        assert reply.startswith("HTTP/1.1 202"), reply
        assert "Range: 0-9" in reply
        assert wait_for_exit(registry) == 0


def test_sigterm_without_draintimeout_stops_at_once(tmp_path: Path) -> None:
    with RegistryProcess(filesystem(tmp_path)) as registry:
        connection, _ = start_slow_patch(registry)
        os.kill(registry.pid, signal.SIGTERM)
        assert wait_for_exit(registry) == 0
        connection.close()


def test_serves_on_a_unix_socket(tmp_path: Path) -> None:
    sock = tmp_path / "registry.sock"
    config = tmp_path / "config.yml"
    config.write_text(
        json.dumps(
            {"version": "0.1", **QUIET, "storage": "inmemory", "http": {"net": "unix", "addr": str(sock)}}
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", str(config)],
        env=clean_environ(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        reply = subprocess.run(
            ["curl", "-s", "-i", "--unix-socket", str(sock), "http://registry/v2/"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
        assert reply.startswith("HTTP/1.1 200")
        assert "Docker-Distribution-API-Version: registry/2.0" in reply
    finally:
        end_process(process, timeout=10)
    assert not sock.exists()  # removed on the way out


def test_upload_purging_removes_old_uploads(tmp_path: Path) -> None:
    purging = {"maintenance": {"uploadpurging": {"enabled": True, "age": "1s", "interval": "1s"}}}
    with RegistryProcess(filesystem(tmp_path, **purging)) as registry:
        response = requests.post(f"{registry.url}/v2/team/app/blobs/uploads/", timeout=10)
        upload = (
            tmp_path
            / "docker/registry/v2/repositories/team/app/_uploads"
            / response.headers["Docker-Upload-UUID"]
        )
        assert upload.is_dir()
        deadline = time.monotonic() + 20
        while upload.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not upload.exists()
        status = requests.get(response.headers["Location"], timeout=10)
        assert status.status_code == 404
        assert status.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


def test_upload_purging_dry_run_keeps_uploads(tmp_path: Path) -> None:
    purging = {
        "maintenance": {"uploadpurging": {"enabled": True, "age": "1s", "interval": "1s", "dryrun": True}}
    }
    with RegistryProcess({**filesystem(tmp_path, **purging), "log": {"level": "info"}}) as registry:
        response = requests.post(f"{registry.url}/v2/team/app/blobs/uploads/", timeout=10)
        deadline = time.monotonic() + 20
        while "dry run" not in registry.stderr_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "purged 1 upload(s) (dry run)" in registry.stderr_text()
        assert requests.get(response.headers["Location"], timeout=10).status_code == 204


def test_log_fields_are_on_every_line(tmp_path: Path) -> None:
    config = {
        **filesystem(tmp_path),
        "log": {
            "level": "debug",
            "formatter": "json",
            "fields": {"service": "registry", "environment": "ci"},
        },
    }
    with RegistryProcess(config) as registry:
        requests.get(f"{registry.url}/v2/", timeout=10)
        time.sleep(0.2)
        lines = [json.loads(line) for line in registry.stderr_text().splitlines() if line.startswith("{")]
    assert len(lines) >= 2
    assert all(line["service"] == "registry" and line["environment"] == "ci" for line in lines)


def test_storage_root_that_breaks_while_serving_answers_500_and_names_it(tmp_path: Path) -> None:
    root = tmp_path / "data"
    with RegistryProcess(filesystem(root)) as registry:
        assert requests.post(f"{registry.url}/v2/a/blobs/uploads/", timeout=10).status_code == 202
        shutil.rmtree(root)
        root.write_text("not a directory any more")
        response = requests.post(f"{registry.url}/v2/a/blobs/uploads/", timeout=10)
        assert response.status_code == 500
        assert response.json()["errors"][0]["code"] == "UNKNOWN"
        logged = registry.stderr_text()
    # The failing file's own path, under the root, and the operating system's words.
    failures = [line for line in logged.splitlines() if "storage failed" in line]
    assert len(failures) == 1, logged
    assert re.search(rf"{re.escape(str(root))}/\S+: Not a directory\"$", failures[0]), failures[0]
    assert "Traceback" not in logged


def test_header_values_are_sent_as_written(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\nstorage: inmemory\nhttp:\n  headers:\n    X-Custom: [yes]\n    X-Other: [off, 1.10]\n"
    )
    with RegistryProcess(config) as registry:
        response = requests.get(f"{registry.url}/v2/", timeout=10)
    assert response.headers["X-Custom"] == "yes"
    assert response.headers["X-Other"] == "off, 1.10"
