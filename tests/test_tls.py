"""``http.tls``: real handshakes (Python's ssl, curl, openssl s_client), minimum versions, cipher lists,
mutual TLS, configuration errors through the real command line, and skopeo and oras-py over TLS with
htpasswd. Certificates come from trustme; the server's chain has an intermediate CA."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import ssl
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import requests
import trustme
import yaml

import emulator
from pax_registry_fixtures.distribution import DistributionServer
from pax_registry_fixtures.process import RegistryProcess
from pax_registry_fixtures.process import clean_environ
from tests.clients import build_image
from tests.clients import needs_tools
from tests.clients import oras_client
from tests.clients import skopeo

TIMEOUT = 60.0
USER, PASSWORD = "alice", "wonderland"
needs_openssl = pytest.mark.needs("openssl")
needs_curl = pytest.mark.needs("curl")


@dataclasses.dataclass
class PKI:
    """Files for one server certificate (issued by an intermediate), one client CA with a client
    certificate, and a stranger: a client certificate from another CA."""

    root: Path
    ca: Path
    cert: Path
    key: Path
    other_key: Path
    client_ca: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path
    htpasswd: Path

    def cert_dir(self, name: str, *, client: str | None = None) -> Path:
        """A skopeo/containers cert directory: ``ca.crt`` and, for mTLS, ``client.cert``/``client.key``."""
        directory = self.root / "certs.d" / name
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.ca, directory / "ca.crt")
        if client == "client":
            shutil.copy(self.client_cert, directory / "client.cert")
            shutil.copy(self.client_key, directory / "client.key")
        elif client == "stranger":
            shutil.copy(self.stranger_cert, directory / "client.cert")
            shutil.copy(self.stranger_key, directory / "client.key")
        return directory


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    root = tmp_path_factory.mktemp("pki")
    server_root = trustme.CA()
    server = server_root.create_child_ca().issue_cert("127.0.0.1", "localhost")
    client_root, other_root = trustme.CA(), trustme.CA()
    client = client_root.issue_cert("client@example.org")
    stranger = other_root.issue_cert("client@example.org")
    unrelated = trustme.CA().issue_cert("127.0.0.1")

    def write(name: str, *blobs: trustme.Blob) -> Path:
        path = root / name
        for number, blob in enumerate(blobs):
            blob.write_to_path(str(path), append=number > 0)
        return path

    from pax_registry_fixtures.distribution import write_htpasswd

    return PKI(
        root=root,
        ca=write("ca.pem", server_root.cert_pem),
        cert=write("server.pem", *server.cert_chain_pems),  # leaf, then the intermediate
        key=write("server.key", server.private_key_pem),
        other_key=write("unrelated.key", unrelated.private_key_pem),
        client_ca=write("client-ca.pem", client_root.cert_pem),
        client_cert=write("client.pem", client.cert_chain_pems[0]),
        client_key=write("client.key", client.private_key_pem),
        stranger_cert=write("stranger.pem", stranger.cert_chain_pems[0]),
        stranger_key=write("stranger.key", stranger.private_key_pem),
        htpasswd=write_htpasswd(root / "htpasswd", {USER: PASSWORD}),
    )


def tls_config(pki: PKI, **tls: t.Any) -> dict[str, t.Any]:
    return {
        "storage": {"inmemory": {}},
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "http": {"tls": {"certificate": str(pki.cert), "key": str(pki.key), **tls}},
    }


@pytest.fixture
def serve(pki: PKI) -> t.Iterator[t.Callable[..., emulator.BackgroundServer]]:
    """Start an in-process TLS registry with extra ``http.tls`` settings."""
    servers: list[emulator.BackgroundServer] = []

    def start(**tls: t.Any) -> emulator.BackgroundServer:
        server = emulator.start(tls_config(pki, **tls))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def handshake(
    port: int,
    pki: PKI,
    *,
    version: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
    client: tuple[Path, Path] | None = None,
) -> tuple[str, str, bytes]:
    """Connect, send ``GET /v2/``, and return the TLS version, the cipher and the response's first line."""
    context = ssl.create_default_context(cafile=str(pki.ca))
    if version is not None:
        context.minimum_version = context.maximum_version = version
    if ciphers is not None:
        context.set_ciphers(ciphers)
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = tls.recv(4096)
            if not chunk:
                break
            data += chunk
        cipher = tls.cipher()
        assert cipher is not None
        return str(tls.version()), cipher[0], data.split(b"\r\n")[0]


def s_client(port: int, pki: PKI, *args: str) -> subprocess.CompletedProcess[str]:
    """``openssl s_client`` against the server; stdin is closed so it leaves right after the handshake."""
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(pki.ca), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def negotiated(result: subprocess.CompletedProcess[str]) -> str | None:
    """The cipher s_client agreed on, or ``None`` when the handshake failed."""
    for line in result.stdout.splitlines():
        if "Cipher is" in line:
            cipher = line.rsplit("Cipher is", 1)[1].strip()
            return None if cipher == "(NONE)" else cipher
    return None


# -- handshakes --------------------------------------------------------------------------------------


def test_python_client_verifies_the_chain(
    serve: t.Callable[..., emulator.BackgroundServer], pki: PKI
) -> None:
    server = serve()
    version, _, status = handshake(server.port, pki)
    assert version in ("TLSv1.2", "TLSv1.3")
    assert status == b"HTTP/1.1 200 OK"
    response = requests.get(f"https://127.0.0.1:{server.port}/v2/", verify=str(pki.ca), timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@needs_curl
def test_curl(serve: t.Callable[..., emulator.BackgroundServer], pki: PKI) -> None:
    server = serve()
    result = subprocess.run(
        [
            *("curl", "-sS", "--cacert", str(pki.ca), "-o", "/dev/null"),
            *("-w", "%{http_code} %{ssl_verify_result}", f"https://127.0.0.1:{server.port}/v2/"),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "NO_PROXY": "*"},
    )
    assert result.stdout == "200 0", result.stderr


@needs_openssl
def test_tls11_client_refused_at_default_minimum(
    serve: t.Callable[..., emulator.BackgroundServer], pki: PKI
) -> None:
    # SECLEVEL=0 lets OpenSSL 3's client try TLS 1.1 at all: the refusal below is the server's.
    refused = s_client(serve().port, pki, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert negotiated(refused) is None, refused.stdout
    assert refused.returncode != 0
    # The same client gets through to a server whose minimum is tls1.0 (with a TLS 1.1 suite).
    legacy = serve(minimumtls="tls1.0", ciphersuites=["TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"])
    accepted = s_client(legacy.port, pki, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert negotiated(accepted) == "ECDHE-ECDSA-AES128-SHA", accepted.stdout + accepted.stderr
    assert "Protocol  : TLSv1.1" in accepted.stdout


def test_tls12_client_refused_at_tls13_minimum(
    serve: t.Callable[..., emulator.BackgroundServer], pki: PKI
) -> None:
    server = serve(minimumtls="tls1.3")
    with pytest.raises(ssl.SSLError):
        handshake(server.port, pki, version=ssl.TLSVersion.TLSv1_2)
    assert handshake(server.port, pki, version=ssl.TLSVersion.TLSv1_3)[0] == "TLSv1.3"


#: ECDSA suites OpenSSL's client knows for TLS 1.2 (the server key is ECDSA).
CANDIDATES = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-ECDSA-AES128-SHA256",
]


def offered(port: int, pki: PKI) -> set[str]:
    """The TLS 1.2 suites the server accepts, asking with one suite at a time."""
    accepted = set()
    for cipher in CANDIDATES:
        if negotiated(s_client(port, pki, "-tls1_2", "-cipher", cipher)) == cipher:
            accepted.add(cipher)
    return accepted


@needs_openssl
def test_configured_cipher_suites_are_what_the_server_offers(
    serve: t.Callable[..., emulator.BackgroundServer], pki: PKI
) -> None:
    server = serve(
        ciphersuites=["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"]
    )
    assert offered(server.port, pki) == {"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-SHA"}


@needs_openssl
def test_default_cipher_suites_are_distributions(
    serve: t.Callable[..., emulator.BackgroundServer], pki: PKI
) -> None:
    # distribution's default: the ECDHE AEAD suites, no CBC.
    assert offered(serve().port, pki) == {
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    }


# -- mutual TLS --------------------------------------------------------------------------------------


def test_client_certificate_from_a_client_ca_is_required(
    serve: t.Callable[..., emulator.BackgroundServer], pki: PKI
) -> None:
    server = serve(clientcas=[str(pki.client_ca)])
    assert handshake(server.port, pki, client=(pki.client_cert, pki.client_key))[2] == b"HTTP/1.1 200 OK"
    for client in (None, (pki.stranger_cert, pki.stranger_key)):
        # With TLS 1.3 the client learns of the refusal when it reads: either way, no response.
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            handshake(server.port, pki, client=client)


@needs_curl
def test_mutual_tls_with_curl(serve: t.Callable[..., emulator.BackgroundServer], pki: PKI) -> None:
    server = serve(clientcas=[str(pki.client_ca)])

    def curl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *("curl", "-sS", "--cacert", str(pki.ca), "-o", "/dev/null", "-w", "%{http_code}"),
                *(*args, f"https://127.0.0.1:{server.port}/v2/"),
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env={**os.environ, "NO_PROXY": "*"},
        )

    assert curl("--cert", str(pki.client_cert), "--key", str(pki.client_key)).stdout == "200"
    for args in ([], ["--cert", str(pki.stranger_cert), "--key", str(pki.stranger_key)]):
        result = curl(*args)
        assert result.returncode != 0 and result.stdout == "000", result


# -- configuration errors ----------------------------------------------------------------------------


def run_serve(config: t.Mapping[str, t.Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"version": "0.1", **config}))
    return subprocess.run(
        [sys.executable, "-m", "emulator", "serve", str(path)],
        env=clean_environ({"REGISTRY_HTTP_ADDR": "127.0.0.1:0"}),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("tls", "key", "words"),
    [
        ({"minimumtls": "tls1.4"}, "http.tls.minimumtls", ["tls1.4"]),
        ({"ciphersuites": ["TLS_FAKE_WITH_NOTHING"]}, "http.tls.ciphersuites", ["TLS_FAKE_WITH_NOTHING"]),
        # A Go alias distribution does not list.
        ({"ciphersuites": ["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"]}, "http.tls.ciphersuites", ["CHACHA20"]),
        ({"certificate": "{root}/missing.pem"}, "http.tls.certificate", ["{root}/missing.pem"]),
        ({"key": "{root}/missing.key"}, "http.tls.key", ["{root}/missing.key"]),
        ({"certificate": "{root}"}, "http.tls.certificate", ["cannot read {root}"]),
        ({"certificate": "{root}/server.key"}, "http.tls.certificate", ["{root}/server.key"]),
        ({"key": "{root}/unrelated.key"}, "http.tls.key", ["{root}/unrelated.key", "does not match"]),
        ({"clientcas": ["{root}/missing-ca.pem"]}, "http.tls.clientcas", ["{root}/missing-ca.pem"]),
        ({"clientcas": ["{root}/server.key"]}, "http.tls.clientcas", ["{root}/server.key"]),
    ],
    ids=[
        "minimumtls",
        "cipher",
        "cipher-alias",
        "no-cert",
        "no-key",
        "cert-is-a-directory",
        "cert-not-pem",
        "mismatched-key",
        "no-clientca",
        "clientca-not-pem",
    ],
)
def test_configuration_errors_stop_the_start(
    pki: PKI, tmp_path: Path, tls: dict[str, t.Any], key: str, words: list[str]
) -> None:
    root = str(pki.root)
    settings = {
        name: [v.format(root=root) for v in value] if isinstance(value, list) else value.format(root=root)
        for name, value in tls.items()
    }
    result = run_serve(tls_config(pki, **settings), tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"configuration error: {tmp_path / 'config.yml'}: {key}"), lines[0]
    for word in words:
        assert word.format(root=root) in lines[0]


def test_unreadable_certificate_is_named(pki: PKI, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    cert = tmp_path / "locked.pem"
    shutil.copy(pki.cert, cert)
    cert.chmod(0)
    result = run_serve(tls_config(pki, certificate=str(cert)), tmp_path)
    assert result.returncode == 1
    assert f"http.tls.certificate: cannot read {cert}" in result.stderr


# -- real clients: skopeo and oras-py ----------------------------------------------------------------


def secured_config(pki: PKI, *, mtls: bool) -> dict[str, t.Any]:
    config = tls_config(pki, **({"clientcas": [str(pki.client_ca)]} if mtls else {}))
    config["auth"] = {"htpasswd": {"realm": "Registry Realm", "path": str(pki.htpasswd)}}
    return config


class Secured(t.NamedTuple):
    registry: RegistryProcess
    mtls: bool


@pytest.fixture(scope="module", params=["htpasswd", "mtls+htpasswd"])
def secured(request: pytest.FixtureRequest, pki: PKI) -> t.Iterator[Secured]:
    mtls = request.param != "htpasswd"
    with RegistryProcess(secured_config(pki, mtls=mtls)) as registry:
        yield Secured(registry, mtls)


def client_dir(pki: PKI, *, mtls: bool) -> Path:
    return pki.cert_dir("client", client="client") if mtls else pki.cert_dir("ca-only")


@pytest.mark.peers
@needs_tools
def test_skopeo_push_and_pull(secured: Secured, pki: PKI, tmp_path: Path) -> None:
    registry = secured.registry
    source = build_image(tmp_path, layers=2, layer_size=32 * 1024)
    certs = str(client_dir(pki, mtls=secured.mtls))
    creds = f"{USER}:{PASSWORD}"
    target = f"docker://{registry.host}/secure/image:1"
    skopeo("copy", "--dest-cert-dir", certs, "--dest-creds", creds, source, target)
    skopeo("copy", "--src-cert-dir", certs, "--src-creds", creds, target, f"oci:{tmp_path / 'back'}:1")
    inspected = skopeo("inspect", "--cert-dir", certs, "--creds", creds, target).stdout
    assert f'"Name": "{registry.host}/secure/image"' in inspected


def skopeo_failure(host: str, pki: PKI, image: str, case: str, *, mtls: bool) -> str:
    certs = {
        "no-credentials": client_dir(pki, mtls=mtls),
        "wrong-password": client_dir(pki, mtls=mtls),
        "no-client-cert": pki.cert_dir("ca-only"),
        "other-ca-cert": pki.cert_dir("stranger", client="stranger"),
    }[case]
    password = "nope" if case == "wrong-password" else PASSWORD
    creds = [] if case == "no-credentials" else ["--dest-creds", f"{USER}:{password}"]
    target = f"docker://{host}/secure/denied:1"
    result = skopeo("copy", "--dest-cert-dir", str(certs), *creds, image, target, check=False)
    assert result.returncode != 0
    return result.stderr


def failure_kind(stderr: str) -> str:
    """What a user of skopeo learns from the failure, without the server's alert name: distribution's
    Go stack sends ``bad certificate`` where OpenSSL sends ``certificate required`` or ``unknown
    certificate authority``."""
    if "unauthorized: authentication required" in stderr:
        return "unauthorized"
    if "pinging container registry" in stderr and "remote error: tls:" in stderr:
        return "tls-refused"
    return stderr


@pytest.mark.peers
@needs_tools
@pytest.mark.needs("docker-registry")
@pytest.mark.parametrize("case", ["no-credentials", "wrong-password", "no-client-cert", "other-ca-cert"])
def test_skopeo_failures_match_distribution(pki: PKI, tmp_path: Path, case: str) -> None:
    mtls = case in ("no-client-cert", "other-ca-cert")
    image = build_image(tmp_path)
    config = secured_config(pki, mtls=mtls)
    with RegistryProcess(config) as ours:
        ours_kind = failure_kind(skopeo_failure(ours.host, pki, image, case, mtls=mtls))
    del config["log"]  # DistributionServer keeps its own quiet log settings
    with DistributionServer(config) as reference:
        reference_kind = failure_kind(skopeo_failure(reference.host, pki, image, case, mtls=mtls))
    assert ours_kind == reference_kind
    assert ours_kind == ("tls-refused" if mtls else "unauthorized")


@pytest.mark.peers
def test_oras_push_and_pull(
    secured: Secured, pki: PKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = secured.registry
    artifact = tmp_path / "artifact.txt"
    artifact.write_bytes(os.urandom(4096))
    monkeypatch.chdir(tmp_path)

    def client(password: str) -> t.Any:
        oras = oras_client(registry.host, insecure=False, tls_verify=str(pki.ca), auth_backend="basic")
        oras.auth.set_basic_auth(USER, password)
        if secured.mtls:
            # oras-py has no option for it, but its requests session takes a client certificate.
            oras.session.cert = (str(pki.client_cert), str(pki.client_key))
        return oras

    target = f"{registry.host}/oras/artifact:v1"
    oras = client(PASSWORD)
    oras.push(files=["artifact.txt"], target=target)
    out = tmp_path / "out"
    oras.pull(target=target, outdir=str(out))
    assert (out / "artifact.txt").read_bytes() == artifact.read_bytes()
    assert oras.get_tags(f"{registry.host}/oras/artifact") == ["v1"]
    with pytest.raises(ValueError, match=r"(?i)unauthorized"):
        client("nope").pull(target=target, outdir=str(tmp_path / "denied"))
