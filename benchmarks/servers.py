"""The two registries under test, started with equivalent configurations, and their memory and start time.

Both get the same configuration: filesystem storage in their own directory, deletes on, the in-memory
blob-descriptor cache, upload purging off (it would wake up in the middle of a run), quiet logs, an HTTP
secret, for the TLS variants the same trustme certificate and for the htpasswd ones the same file. The
emulator runs as ``python -m emulator serve CONFIG``
(:class:`pax_registry_fixtures.process.RegistryProcess`), distribution as ``docker-registry serve CONFIG``
(:class:`pax_registry_fixtures.distribution.DistributionServer`).
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

import yaml

from pax_registry_fixtures.distribution import DistributionServer
from pax_registry_fixtures.process import RegistryProcess
from pax_registry_fixtures.process import clean_environ
from pax_registry_fixtures.process import free_port

EMULATOR = "emulator"
DISTRIBUTION = "distribution"
SIDES = (EMULATOR, DISTRIBUTION)
SAMPLE_INTERVAL = 0.02


# -- memory ------------------------------------------------------------------------------------------------


def status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


class RSSSampler:
    """Samples a process's ``VmRSS`` every 20 ms in a background thread and keeps the maximum."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_kib = max(self.peak_kib, status_kib(self.pid, "VmRSS"))
            except (OSError, RuntimeError):
                return
            self._stop.wait(SAMPLE_INTERVAL)

    def __enter__(self) -> RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(OSError, RuntimeError):
            self.peak_kib = max(self.peak_kib, status_kib(self.pid, "VmRSS"))


def cpu_ticks(pid: int) -> int:
    """User plus system CPU time of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as stat:
        # Fields after the command name, which is in parentheses and may hold spaces: utime and stime
        # are the 14th and 15th of the whole line.
        fields = stat.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def settle(pid: int, *, interval: float = 0.1, limit: float = 30.0) -> float:
    """Wait until a process spends at most one clock tick per ``interval`` (or ``limit`` seconds pass);
    returns the seconds waited.

    A server slower than its load leaves requests queued when the load generator stops; it goes on
    answering them to closed sockets, and on two shared cores that work would be counted against
    whichever server runs next.
    """
    started = time.perf_counter()
    last = cpu_ticks(pid)
    while time.perf_counter() - started < limit:
        time.sleep(interval)
        ticks = cpu_ticks(pid)
        if ticks - last <= 1:
            break
        last = ticks
    return time.perf_counter() - started


# -- TLS ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSFiles:
    """A CA and a server certificate for ``127.0.0.1`` from trustme, as PEM files."""

    ca: Path
    certificate: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.set_alpn_protocols(["http/1.1"])  # distribution would pick h2; the clients speak 1.1
        return context


def make_tls(directory: Path) -> TLSFiles:
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    files = TLSFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    issued.cert_chain_pems[0].write_to_path(str(files.certificate))
    for extra in issued.cert_chain_pems[1:]:
        extra.write_to_path(str(files.certificate), append=True)
    issued.private_key_pem.write_to_path(str(files.key))
    return files


# -- htpasswd ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """The one user of an htpasswd file."""

    path: Path
    username: str
    password: str

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header's value for HTTP basic auth."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


def make_htpasswd(path: Path, cost: int) -> Credentials:
    """A file with one user written by Apache's ``htpasswd -B -C cost`` (a ``$2y$`` bcrypt hash, what
    registry operators are told to run), checked to hold that cost."""
    credentials = Credentials(path, "bench", secrets.token_urlsafe(16))
    command = ["htpasswd", "-c", "-i", "-B", "-C", str(cost), str(path), credentials.username]
    # -i: the password comes on stdin, not on the command line.
    subprocess.run(command, input=credentials.password, text=True, capture_output=True, check=True)
    _, _, hashed = path.read_text().strip().partition(":")
    if not hashed.startswith(f"$2y${cost:02d}$"):
        raise RuntimeError(f"htpasswd wrote {hashed[:7]!r}..., not a bcrypt hash of cost {cost}")
    return credentials


# -- configuration -----------------------------------------------------------------------------------------


def registry_config(
    root: Path, tls: TLSFiles | None = None, htpasswd: Path | None = None
) -> dict[str, t.Any]:
    """The configuration both registries get (``http.addr`` is added by whoever starts them)."""
    http: dict[str, t.Any] = {"secret": "benchmark-secret"}
    if tls is not None:
        http["tls"] = {"certificate": str(tls.certificate), "key": str(tls.key)}
    config: dict[str, t.Any] = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(root)},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": http,
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "benchmark", "path": str(htpasswd)}}
    return config


def distribution_environ() -> dict[str, str]:
    # As DistributionServer does: REGISTRY_* would override the file, AWS_CA_BUNDLE upsets its s3 driver.
    return {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_") and k != "AWS_CA_BUNDLE"}


def distribution_version() -> str:
    try:
        result = subprocess.run(["docker-registry", "--version"], capture_output=True, text=True, timeout=10)
    except OSError:
        return "not installed"
    return result.stdout.strip() or result.stderr.strip()


# -- running servers ---------------------------------------------------------------------------------------


@dataclass
class Server:
    """One running registry: what the scenarios need to know about it."""

    side: str
    url: str
    pid: int
    root: Path
    tls: TLSFiles | None
    idle_kib: int
    handle: RegistryProcess | DistributionServer

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.host.rpartition(":")
        return host, int(port)

    def client_context(self) -> ssl.SSLContext | None:
        return self.tls.client_context() if self.tls is not None else None

    def rss_kib(self) -> int:
        return status_kib(self.pid, "VmRSS")

    def stop(self) -> None:
        self.handle.stop()


def start(
    side: str,
    root: Path,
    tls: TLSFiles | None = None,
    htpasswd: Path | None = None,
    extra: t.Mapping[str, t.Any] | None = None,
) -> Server:
    """Start ``side`` on a free loopback port with :func:`registry_config`, its top-level sections
    updated from ``extra`` (``http`` merged key by key); its idle RSS is measured after a short settle."""
    root.mkdir(parents=True, exist_ok=True)
    config = registry_config(root, tls, htpasswd)
    for section, value in (extra or {}).items():
        config[section] = {**config["http"], **value} if section == "http" else value
    handle: RegistryProcess | DistributionServer
    if side == EMULATOR:
        handle = RegistryProcess(config, tls=tls is not None).start()
        pid = handle.pid
    else:
        handle = DistributionServer(config).start()
        process = handle._process  # the fixture exposes no pid of its own
        assert process is not None
        pid = process.pid
    time.sleep(0.5)  # let startup settle before calling it idle
    return Server(side, handle.url, pid, root, tls, status_kib(pid, "VmRSS"), handle)


@contextlib.contextmanager
def pair(
    workdir: Path, name: str, tls: TLSFiles | None = None, htpasswd: Path | None = None
) -> t.Iterator[dict[str, Server]]:
    """Both registries, each with its own storage under ``workdir/<name>-<side>``, stopped on exit."""
    servers: dict[str, Server] = {}
    try:
        for side in SIDES:
            servers[side] = start(side, workdir / f"{name}-{side}", tls, htpasswd)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


# -- ready time --------------------------------------------------------------------------------------------


def _answers_200(port: int, context: ssl.SSLContext | None) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as raw:
            sock = context.wrap_socket(raw, server_hostname="127.0.0.1") if context else raw
            sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def compile_emulator() -> bool:
    """Write the emulator's bytecode, as installing a package does; whether it was missing.

    Some machines set ``PYTHONDONTWRITEBYTECODE``: a checkout run there compiles every module on every
    start, which is not what a deployed registry does (tens of milliseconds of its ready time).
    """
    import compileall

    import emulator

    package = Path(emulator.__file__).parent
    missing = not (package / "__pycache__").is_dir()
    compileall.compile_dir(str(package), quiet=1)
    return missing


def ready_time(side: str, workdir: Path, *, poll: float = 0.001) -> float:
    """Seconds from starting a fresh process to its first ``200`` on ``/v2/`` (plain HTTP)."""
    port = free_port()
    config = registry_config(workdir / f"ready-{side}")
    config["http"]["addr"] = f"127.0.0.1:{port}"
    path = workdir / f"ready-{side}.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    if side == EMULATOR:
        command = [sys.executable, "-m", "emulator", "serve", str(path)]
        env = clean_environ()
    else:
        command = ["docker-registry", "serve", str(path)]
        env = distribution_environ()
    started = time.perf_counter()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env)  # fmt: skip
    try:
        while not _answers_200(port, None):
            if process.poll() is not None:
                raise RuntimeError(f"{side} exited during startup with status {process.returncode}")
            if time.perf_counter() - started > 30:
                raise RuntimeError(f"{side} did not answer within 30 s")
            time.sleep(poll)
        return time.perf_counter() - started
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
