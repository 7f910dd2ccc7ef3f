"""``http.tls.letsencrypt`` against Debian's ``pebble`` (a real ACME server) started on loopback.

The emulator obtains a certificate before serving, serves it for the listed hosts only, reuses the
cache on restart without a new order, renews a certificate close to expiry in the background, and
answers real HTTP-01 validation.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest
import requests
import trustme
import yaml

from emulator import letsencrypt
from emulator.config import LetsEncryptConfig
from emulator.config import TLSConfig
from emulator.serving import BackgroundServer
from pax_registry_fixtures.process import RegistryProcess
from pax_registry_fixtures.process import clean_environ
from pax_registry_fixtures.process import end_process
from pax_registry_fixtures.process import free_port

pytestmark = [
    pytest.mark.peers,
    pytest.mark.needs("pebble"),
]

pytest.importorskip("acme")

HOST = "localhost"
TIMEOUT = 120.0


class Pebble:
    """``pebble`` on free loopback ports, with its own trustme certificate."""

    def __init__(self, workdir: Path, *, always_valid: bool) -> None:
        self.workdir = workdir
        self.always_valid = always_valid
        self.port, self.management_port, self.http_port = free_port(), free_port(), free_port()
        self.ca = workdir / "pebble-ca.pem"
        self.log = workdir / "pebble.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self) -> Pebble:
        authority = trustme.CA()
        cert = authority.issue_cert("127.0.0.1", "localhost")
        authority.cert_pem.write_to_path(str(self.ca))
        cert.cert_chain_pems[0].write_to_path(str(self.workdir / "pebble.pem"))
        cert.private_key_pem.write_to_path(str(self.workdir / "pebble.key"))
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{self.port}",
                "managementListenAddress": f"127.0.0.1:{self.management_port}",
                "certificate": str(self.workdir / "pebble.pem"),
                "privateKey": str(self.workdir / "pebble.key"),
                "httpPort": self.http_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        (self.workdir / "pebble.json").write_text(json.dumps(config))
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        if self.always_valid:
            env["PEBBLE_VA_ALWAYS_VALID"] = "1"
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                ["pebble", "-config", str(self.workdir / "pebble.json")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            assert self._process.poll() is None, self.log.read_text()
            try:
                self.get(self.directory)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"pebble did not start:\n{self.log.read_text()}")

    def get(self, url: str) -> requests.Response:
        session = requests.Session()
        session.trust_env = False
        response = session.get(url, verify=str(self.ca), timeout=30)
        response.raise_for_status()
        return response

    def root(self) -> str:
        """The root that issued the chain (generated anew by every pebble start)."""
        return self.get(f"https://127.0.0.1:{self.management_port}/roots/0").text

    def orders(self) -> int:
        """How many new orders pebble has seen."""
        return sum("POST /order-plz" in line for line in self.log.read_text().splitlines())

    def stop(self) -> None:
        if self._process is not None:
            end_process(self._process, timeout=10)
            self._process = None


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Pebble]:
    server = Pebble(tmp_path_factory.mktemp("pebble"), always_valid=True).start()
    yield server
    server.stop()


def registry_config(pebble: Pebble, cache: Path, **extra: t.Any) -> dict[str, t.Any]:
    return {
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"inmemory": {}},
        "http": {
            "tls": {
                "letsencrypt": {
                    "cachefile": str(cache),
                    "email": "ops@example.org",
                    "hosts": [HOST],
                    "directoryurl": pebble.directory,
                    **extra,
                }
            }
        },
    }


def registry_env(pebble: Pebble) -> dict[str, str]:
    return {
        "REQUESTS_CA_BUNDLE": str(pebble.ca),
        "REGISTRY_HTTP_TLS_LETSENCRYPT_HTTP01ADDR": f"127.0.0.1:{pebble.http_port}",
    }


def fetch(
    port: int, *, root: str | None, server_name: str | None = HOST, timeout: float = TIMEOUT
) -> tuple[bytes, bytes]:
    """Handshake for ``server_name`` (verifying against ``root`` when given), GET /v2/, and return the
    served certificate (DER) and the status line."""
    context = ssl.create_default_context(cadata=root) if root else ssl._create_unverified_context()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        tls.sendall(
            f"GET /v2/ HTTP/1.1\r\nHost: {server_name or '127.0.0.1'}\r\nConnection: close\r\n\r\n".encode()
        )
        status = tls.recv(4096).split(b"\r\n")[0]
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der, status


class ACMERegistry(RegistryProcess):
    """A registry process that is ready when a handshake for ``HOST`` succeeds.

    The fixture's own probe connects by IP address, without SNI, which a registry serving only its
    ACME hosts refuses during the handshake; urllib reports that as a ``URLError``, which the probe
    takes for "not listening yet".
    """

    def _answers(self) -> bool:
        try:
            fetch(self.port, root=None, timeout=5)
        except OSError:
            return False
        return True


def test_obtains_serves_and_reuses_the_cache(pebble: Pebble, tmp_path: Path) -> None:
    cache = tmp_path / "acme-cache"
    config, env = registry_config(pebble, cache), registry_env(pebble)
    orders = pebble.orders()
    with ACMERegistry(config, env=env, startup_timeout=TIMEOUT) as registry:
        assert pebble.orders() == orders + 1
        root = pebble.root()
        # The chain verifies against pebble's root: the leaf and the intermediate are served.
        served, status = fetch(registry.port, root=root)
        assert status == b"HTTP/1.1 200 OK"
        # curl, by name, verifying with the root only.
        (tmp_path / "root.pem").write_text(root)
        curl = subprocess.run(
            [
                *(
                    "curl",
                    "-sS",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--cacert",
                    str(tmp_path / "root.pem"),
                ),
                *("--resolve", f"{HOST}:{registry.port}:127.0.0.1", f"https://{HOST}:{registry.port}/v2/"),
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert curl.stdout == "200", curl.stderr
        # Only the listed hosts are served; a client connecting by IP sends no name at all.
        for name in ("other.example.org", None):
            with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
                fetch(registry.port, root=None, server_name=name)
    assert "obtained a certificate for localhost" in registry.stderr_text()

    # The cache is a private directory.
    folder = cache / letsencrypt.directory_folder(pebble.directory)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == ["account.json", "account.key", "certificate.pem"]
    for file in folder.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    cached = (folder / "certificate.pem").read_bytes()

    # A restart serves the cached certificate without a new order.
    with ACMERegistry(config, env=env, startup_timeout=TIMEOUT) as registry:
        again, status = fetch(registry.port, root=root)
        assert status == b"HTTP/1.1 200 OK"
    assert again == served
    assert pebble.orders() == orders + 1
    assert (folder / "certificate.pem").read_bytes() == cached
    assert "using cached certificate for localhost" in registry.stderr_text()


def test_certificate_close_to_expiry_is_served_then_renewed(
    pebble: Pebble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pebble.ca))
    settings = LetsEncryptConfig(
        cachefile=str(tmp_path / "cache"), email="", hosts=(HOST,), directoryurl=pebble.directory
    )
    # A cached certificate with ten days left: served at once, renewed in the background.
    folder = tmp_path / "cache" / letsencrypt.directory_folder(pebble.directory)
    folder.mkdir(parents=True)
    now = datetime.datetime.now(datetime.UTC)
    old = trustme.CA().issue_cert(
        HOST, not_before=now - datetime.timedelta(days=80), not_after=now + datetime.timedelta(days=10)
    )
    (folder / "certificate.pem").write_bytes(old.private_key_and_cert_chain_pem.bytes())
    manager = letsencrypt.CertificateManager(
        TLSConfig(letsencrypt=settings), settings, challenge_addr=f"127.0.0.1:{pebble.http_port}"
    )
    orders = pebble.orders()
    manager.start()
    server = BackgroundServer(
        lambda environ, start: (start("200 OK", []), [b""])[1], ssl_context=manager.context
    )
    try:
        first = manager.certificate
        assert manager.wait_for_certificate(first, timeout=TIMEOUT), "no renewal happened"
        assert manager.orders == 1 and pebble.orders() == orders + 1
        served, status = fetch(server.port, root=pebble.root())
        assert status == b"HTTP/1.1 200 OK"
        assert manager.certificate is not None
        assert manager.certificate.not_after > now + datetime.timedelta(days=60)
        assert served != old.cert_chain_pems[0].bytes()
        # The renewed certificate is what the cache holds now.
        assert (
            letsencrypt.Certificate((folder / "certificate.pem").read_bytes()).not_after
            == manager.certificate.not_after
        )
    finally:
        server.stop()
        manager.stop()


@pytest.mark.parametrize("damage", ["key-mismatch", "other-host", "expired", "garbage"])
def test_unusable_cache_means_a_new_order(
    pebble: Pebble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pebble.ca))
    settings = LetsEncryptConfig(
        cachefile=str(tmp_path / "cache"), hosts=(HOST,), directoryurl=pebble.directory
    )
    folder = tmp_path / "cache" / letsencrypt.directory_folder(pebble.directory)
    folder.mkdir(parents=True)
    authority, now = trustme.CA(), datetime.datetime.now(datetime.UTC)
    cert = authority.issue_cert(HOST)
    text = {
        "key-mismatch": authority.issue_cert(HOST).private_key_pem.bytes() + cert.cert_chain_pems[0].bytes(),
        "other-host": authority.issue_cert("other.example.org").private_key_and_cert_chain_pem.bytes(),
        "expired": authority.issue_cert(
            HOST, not_before=now - datetime.timedelta(days=90), not_after=now - datetime.timedelta(days=1)
        ).private_key_and_cert_chain_pem.bytes(),
        "garbage": b"not a certificate",
    }[damage]
    (folder / "certificate.pem").write_bytes(text)
    manager = letsencrypt.CertificateManager(
        TLSConfig(letsencrypt=settings), settings, challenge_addr=f"127.0.0.1:{pebble.http_port}"
    )
    manager.start()
    manager.stop()
    assert manager.orders == 1
    assert (folder / "certificate.pem").read_bytes() != text


def test_real_http01_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PEBBLE_VA_ALWAYS_VALID pebble fetches the challenge from the emulator's responder."""
    strict = Pebble(tmp_path, always_valid=False).start()
    try:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(strict.ca))
        settings = LetsEncryptConfig(
            cachefile=str(tmp_path / "cache"), email="", hosts=(HOST,), directoryurl=strict.directory
        )
        manager = letsencrypt.CertificateManager(
            TLSConfig(letsencrypt=settings), settings, challenge_addr=f"127.0.0.1:{strict.http_port}"
        )
        manager.start()
        manager.stop()
        assert manager.orders == 1
        assert manager.certificate is not None and manager.certificate.covers([HOST])

        # With nobody answering on pebble's HTTP port, validation fails: one line, exit 1.
        shutil.rmtree(tmp_path / "cache")
        env = {
            "REQUESTS_CA_BUNDLE": str(strict.ca),
            "REGISTRY_HTTP_TLS_LETSENCRYPT_HTTP01ADDR": f"127.0.0.1:{free_port()}",
        }
        result = run_serve(registry_config(strict, tmp_path / "cache"), tmp_path, env)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith("configuration error: ")
        assert "http.tls.letsencrypt: cannot obtain a certificate for localhost" in lines[-1]
    finally:
        strict.stop()


def run_serve(
    config: t.Mapping[str, t.Any], tmp_path: Path, env: t.Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"version": "0.1", **config}))
    return subprocess.run(
        [sys.executable, "-m", "emulator", "serve", str(path)],
        env=clean_environ({"REGISTRY_HTTP_ADDR": "127.0.0.1:0", **(env or {})}),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def test_unreachable_acme_server_stops_the_start(tmp_path: Path) -> None:
    config = {
        "storage": {"inmemory": {}},
        "log": {"level": "error"},
        "http": {
            "tls": {
                "letsencrypt": {
                    "cachefile": str(tmp_path / "cache"),
                    "hosts": [HOST],
                    "directoryurl": f"https://127.0.0.1:{free_port()}/dir",
                }
            }
        },
    }
    result = run_serve(config, tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"configuration error: {tmp_path / 'config.yml'}: http.tls.letsencrypt: ")
    assert "cannot obtain a certificate for localhost" in lines[0]


@pytest.mark.parametrize(
    ("tls", "words"),
    [
        (
            {"letsencrypt": {"cachefile": "{cache}", "hosts": []}},
            ["http.tls.letsencrypt.hosts", "at least one host"],
        ),
        (
            {
                "certificate": "/c.pem",
                "key": "/k.pem",
                "letsencrypt": {"cachefile": "{cache}", "hosts": [HOST]},
            },
            ["cannot specify both certificate and Let's Encrypt"],
        ),
        (
            {"ciphersuites": ["TLS_NOPE"], "letsencrypt": {"cachefile": "{cache}", "hosts": [HOST]}},
            ["http.tls.ciphersuites", "TLS_NOPE"],
        ),
    ],
    ids=["no-hosts", "certificate-and-letsencrypt", "cipher-checked-before-ordering"],
)
def test_letsencrypt_configuration_errors(tmp_path: Path, tls: dict[str, t.Any], words: list[str]) -> None:
    text = json.dumps(tls).replace("{cache}", str(tmp_path / "cache"))
    result = run_serve({"storage": {"inmemory": {}}, "http": {"tls": json.loads(text)}}, tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: ")
    for word in words:
        assert word in lines[0]
