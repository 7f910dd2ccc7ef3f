"""The limit column: a reference for what this machine does for a row's work, with the same client and
bytes, measured in the same rounds as the two registries.

- pulls: Debian's ``nginx`` (``sendfile on``) serving the blob file the client pushed, read by the same
  client as :func:`benchmarks.client.pull` reads a registry, over plain HTTP or TLS as the row;
- pushes: ``hashlib.sha256`` over the same bytes in one thread: every push hashes each byte once, and on
  two shared cores that is the floor of its cost;
- manifest GETs: ``nginx`` serving the stored manifest as a static file to the same load tool.

nginx runs as a child process with a configuration of its own (no daemon, its temp files and logs in a
directory of ours, ``127.0.0.1`` on a free port), with as many workers as CPUs, as a deployment would.
It is a reference rather than a ceiling: a server that sends a whole blob with one blocking ``sendfile``
can beat nginx's 2 MiB non-blocking steps on loopback.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import ssl
import subprocess
import time
import typing as t
from pathlib import Path

from benchmarks.client import Blob
from benchmarks.client import fetch
from benchmarks.client import file_digest
from benchmarks.seed import MANIFEST_REPOSITORY
from benchmarks.seed import MANIFEST_TAG
from benchmarks.servers import TLSFiles
from pax_registry_fixtures.process import answers
from pax_registry_fixtures.process import free_port

#: Where the static files are under nginx's root.
BLOB_PATH = "/blob"
MANIFEST_PATH = "/manifest"

PULL_SOURCE = "nginx, sendfile on"
PULL_TLS_SOURCE = "nginx over TLS"
PUSH_SOURCE = "sha256 in one thread"
MANIFEST_SOURCE = "nginx, static file"


def nginx_available() -> bool:
    return _nginx_binary() is not None


def _nginx_binary() -> str | None:
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def nginx_version() -> str:
    binary = _nginx_binary()
    if binary is None:
        return "nginx not installed"
    result = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10, check=False)
    return (result.stderr or result.stdout).strip().removeprefix("nginx version: ")


class Nginx:
    """nginx serving ``files`` (URL path -> file) as static files, stopped on :meth:`stop`."""

    def __init__(self, directory: Path, files: t.Mapping[str, Path], tls: TLSFiles | None = None) -> None:
        binary = _nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx)")
        self.directory = directory
        self.tls = tls
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        root = directory / "root"
        root.mkdir(parents=True, exist_ok=True)
        for path, file in files.items():
            link = root / path.lstrip("/")
            link.unlink(missing_ok=True)
            link.symlink_to(file)
        config = directory / "nginx.conf"
        config.write_text(_config(directory, root, self.port, tls))
        self._process = subprocess.Popen(
            [binary, "-p", str(directory), "-c", str(config), "-e", str(directory / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while not answers(self.url, tls=tls is not None, timeout=0.5):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = (directory / "error.log").read_text() if (directory / "error.log").exists() else ""
                raise RuntimeError(f"nginx did not start: {log.strip()[-500:]}")
            time.sleep(0.02)

    @property
    def pid(self) -> int:
        return self._process.pid

    def client_context(self) -> ssl.SSLContext | None:
        return self.tls.client_context() if self.tls is not None else None

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)  # nginx's fast shutdown: master and workers
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stderr is not None:
            self._process.stderr.close()

    def __enter__(self) -> Nginx:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _config(directory: Path, root: Path, port: int, tls: TLSFiles | None) -> str:
    temp = {name: directory / f"{name}-temp" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    listen = f"127.0.0.1:{port}" + (" ssl" if tls else "")
    certificates = (
        f"ssl_certificate {tls.certificate};\n        ssl_certificate_key {tls.key};" if tls else ""
    )
    # Run as root, nginx would hand its workers to "nobody", who cannot read a benchmark's private
    # temporary directory: they stay this user.
    user = (
        f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
        if os.geteuid() == 0
        else ""
    )
    return f"""\
daemon off;
{user}
worker_processes auto;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    default_type application/octet-stream;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    server {{
        listen {listen};
        {certificates}
        root {root};
        location / {{ }}
    }}
}}
"""


def pull(server: Nginx, blob: Blob) -> float:
    """The blob from nginx, as :func:`benchmarks.client.pull` reads it from a registry; returns seconds."""
    return fetch(server.url, server.client_context(), BLOB_PATH, blob.size)


def sha256(blob: Blob) -> float:
    """``hashlib.sha256`` over the blob's bytes read from its file into one reused buffer; returns seconds."""
    started = time.perf_counter()
    digest = file_digest(blob.path)
    elapsed = time.perf_counter() - started
    if digest != blob.digest:
        raise RuntimeError("the blob file changed under the benchmark")
    return elapsed


def manifest_file(root: Path) -> Path:
    """The file holding the manifest the manifest rows GET, in distribution's layout under ``root``."""
    link = root / "docker/registry/v2/repositories" / MANIFEST_REPOSITORY / "_manifests/tags" / MANIFEST_TAG
    algorithm, _, hex_digest = (link / "current/link").read_text().strip().partition(":")
    return root / "docker/registry/v2/blobs" / algorithm / hex_digest[:2] / hex_digest / "data"


@contextlib.contextmanager
def nginx_or_none(
    directory: Path, files: t.Mapping[str, Path], tls: TLSFiles | None, notes: list[str]
) -> t.Iterator[Nginx | None]:
    """:class:`Nginx` serving ``files``, or ``None`` with a note when it is not installed."""
    if not nginx_available():
        note = "nginx is not installed: the pull and manifest rows have no limit (apt-get install nginx)."
        if note not in notes:
            notes.append(note)
        yield None
        return
    with Nginx(directory, files, tls) as server:
        yield server
