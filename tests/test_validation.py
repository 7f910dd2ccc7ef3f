"""Foreign layer URLs at manifest PUT (``validation.manifests.urls``, ``validation.disabled``).

Each case is a one-layer image manifest pushed over HTTP, and is run twice: against the emulator, which
must give the outcome written in the case, and against Debian's ``docker-registry`` (distribution 2.8),
which must give the same outcome, so the expectations are distribution's and not guesses. The outcomes
differ in one way only, on purpose: a refused URL is 400 ``MANIFEST_BLOB_UNKNOWN`` here, with a message
naming the URL and the rule, where distribution answers 500 with an ``UNKNOWN`` triple.

A last test pushes an image with a non-distributable layer with skopeo, as a user would.
"""

from __future__ import annotations

import enum
import json
import typing as t
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.client import RegistryClient
from conformance.client import error_codes
from conformance.data import Blob
from conformance.data import Manifest
from pax_registry_fixtures.distribution import DistributionServer
from tests.clients import skopeo

if t.TYPE_CHECKING:
    from pax_registry_fixtures import RegistryFactory

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

ALLOWED = "https://allowed.example/layer.tar.gz"
OTHER = "https://other.example/layer.tar.gz"

#: The ``validation`` section of each registry the cases run on.
CONFIGS: dict[str, dict[str, t.Any]] = {
    "default": {},
    "allow": {"manifests": {"urls": {"allow": [r"^https://allowed\.example/"]}}},
    "deny": {"manifests": {"urls": {"deny": ["denied"]}}},
    "both": {"manifests": {"urls": {"allow": ["example/"], "deny": ["denied"]}}},
    "disabled": {"disabled": True},
}


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    #: A URL (or a foreign layer's missing URLs) is refused.
    URL_REFUSED = "url refused"
    #: The layer is not in the repository and has no URL standing in for it.
    BLOB_UNKNOWN = "blob unknown"


@dataclass(frozen=True)
class Case:
    id: str
    config: str
    manifest_type: str
    layer_type: str
    #: ``None``: the layer has no ``urls`` key.
    urls: tuple[str, ...] | None
    expected: Outcome
    layer_pushed: bool = False
    config_urls: tuple[str, ...] | None = None


A, U, B = Outcome.ACCEPTED, Outcome.URL_REFUSED, Outcome.BLOB_UNKNOWN

#: The rows of the PUT checks by manifest and descriptor type, under an allow filter.
TYPE_CASES = [
    Case("schema2-foreign-allowed", "allow", DOCKER_MANIFEST, DOCKER_FOREIGN, (ALLOWED,), A),
    Case("schema2-foreign-not-allowed", "allow", DOCKER_MANIFEST, DOCKER_FOREIGN, (OTHER,), U),
    Case("schema2-foreign-one-bad-url", "allow", DOCKER_MANIFEST, DOCKER_FOREIGN, (ALLOWED, OTHER), U),
    Case("schema2-foreign-no-urls", "allow", DOCKER_MANIFEST, DOCKER_FOREIGN, None, U),
    Case("schema2-foreign-empty-urls", "allow", DOCKER_MANIFEST, DOCKER_FOREIGN, (), U),
    Case("schema2-layer-with-urls-unchecked", "allow", DOCKER_MANIFEST, DOCKER_LAYER, ("ftp://x/#f",), A),
    Case("schema2-layer-missing", "allow", DOCKER_MANIFEST, DOCKER_LAYER, None, B),
    Case("schema2-layer-pushed", "allow", DOCKER_MANIFEST, DOCKER_LAYER, None, A, layer_pushed=True),
    Case("schema2-oci-nondist-unchecked", "allow", DOCKER_MANIFEST, OCI_NONDIST, (OTHER,), A),
    *(
        case
        for layer_type in (OCI_TAR, OCI_GZIP, OCI_NONDIST, OCI_NONDIST_GZIP)
        for case in (
            Case(f"oci-{layer_type}-allowed", "allow", OCI_MANIFEST, layer_type, (ALLOWED,), A),
            Case(f"oci-{layer_type}-not-allowed", "allow", OCI_MANIFEST, layer_type, (OTHER,), U),
            Case(f"oci-{layer_type}-missing", "allow", OCI_MANIFEST, layer_type, None, B),
        )
    ),
    Case("oci-nondist-allowed-and-pushed", "allow", OCI_MANIFEST, OCI_NONDIST, (ALLOWED,), A, True),
    Case("oci-zstd-with-urls-unchecked", "allow", OCI_MANIFEST, OCI_ZSTD, ("ftp://x/",), A),
    Case("oci-zstd-missing", "allow", OCI_MANIFEST, OCI_ZSTD, None, B),
    Case("oci-docker-foreign-unchecked", "allow", OCI_MANIFEST, DOCKER_FOREIGN, (OTHER,), A),
    Case("oci-docker-foreign-missing", "allow", OCI_MANIFEST, DOCKER_FOREIGN, None, B),
    # The config is a reference like the layers: with URLs, it need not be in the repository.
    Case("oci-config-with-urls", "allow", OCI_MANIFEST, OCI_TAR, None, A, True, config_urls=(OTHER,)),
]


def _nondist(case_id: str, config: str, url: str, expected: Outcome) -> Case:
    return Case(case_id, config, OCI_MANIFEST, OCI_NONDIST_GZIP, (url,), expected)


#: How ``allow``, ``deny``, both, neither and ``disabled`` decide, and the rules every URL must follow.
CONFIG_CASES = [
    _nondist("default-refuses-every-url", "default", ALLOWED, U),
    _nondist("allow-unanchored-match", "both", "https://cdn.example/x", A),
    _nondist("allow-no-match", "both", "https://cdn.test/x", U),
    _nondist("allowed-but-denied", "both", "https://denied.example/x", U),
    _nondist("deny-only-accepts-the-rest", "deny", "https://anything.test/x", A),
    _nondist("deny-only-denied", "deny", "https://host.test/denied/x", U),
    _nondist("disabled-accepts-any-http", "disabled", "http://anything.test/x", A),
    _nondist("disabled-still-needs-http", "disabled", "ftp://anything.test/x", U),
    _nondist("disabled-still-refuses-fragments", "disabled", "https://anything.test/x#part", U),
    _nondist("scheme-ftp", "deny", "ftp://host.test/x", U),
    _nondist("scheme-file", "deny", "file:///tmp/x", U),
    _nondist("no-scheme", "deny", "host.test/x", U),
    _nondist("scheme-in-capitals", "deny", "HTTPS://host.test/x", A),
    _nondist("fragment", "deny", "https://host.test/x#frag", U),
    _nondist("empty-fragment", "deny", "https://host.test/x#", A),
    _nondist("bad-percent-escape", "deny", "https://host.test/%zz", U),
    _nondist("bad-port", "deny", "https://host.test:port/x", U),
    _nondist("space-in-host", "deny", "https://host .test/x", U),
]

CASES = TYPE_CASES + CONFIG_CASES


def build(case: Case) -> tuple[Manifest, list[Blob]]:
    """The case's manifest, and the blobs to push before it."""
    docker = case.manifest_type == DOCKER_MANIFEST
    image_config = Blob(json.dumps({"case": case.id}).encode(), DOCKER_CONFIG if docker else OCI_CONFIG)
    layer = Blob(f"layer of {case.id}".encode(), case.layer_type)
    config_descriptor = image_config.descriptor()
    if case.config_urls is not None:
        config_descriptor["urls"] = list(case.config_urls)
    layer_descriptor = layer.descriptor()
    if case.urls is not None:
        layer_descriptor["urls"] = list(case.urls)
    document = {
        "schemaVersion": 2,
        "mediaType": case.manifest_type,
        "config": config_descriptor,
        "layers": [layer_descriptor],
    }
    pushed = [] if case.config_urls is not None else [image_config]
    if case.layer_pushed:
        pushed.append(layer)
    return Manifest(json.dumps(document).encode(), case.manifest_type), pushed


def repository(case: Case) -> str:
    return f"validation/case{CASES.index(case)}"


def push(client: RegistryClient, case: Case) -> t.Any:
    manifest, blobs = build(case)
    for blob in blobs:
        response = client.push_blob(repository(case), blob)
        assert response.status_code == 201, response.text
    return client.push_manifest(repository(case), "t", manifest)


class Registries:
    """One registry per configuration of :data:`CONFIGS`, started on first use."""

    def __init__(self, start: t.Callable[[dict[str, t.Any]], str]) -> None:
        self._start = start
        self._clients: dict[str, RegistryClient] = {}

    def client(self, config: str) -> RegistryClient:
        if config not in self._clients:
            self._clients[config] = RegistryClient(self._start({"validation": CONFIGS[config]}))
        return self._clients[config]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


@pytest.fixture(scope="module")
def emulators(pax_registry_factory_module: RegistryFactory) -> t.Iterator[Registries]:
    registries = Registries(lambda config: pax_registry_factory_module(config).url)
    yield registries
    registries.close()


@pytest.fixture(scope="module")
def distributions() -> t.Iterator[Registries]:
    servers: list[DistributionServer] = []

    def start(config: dict[str, t.Any]) -> str:
        quiet = {"log": {"level": "error", "accesslog": {"disabled": True}}}
        servers.append(DistributionServer({**quiet, **config}).start())
        return servers[-1].url

    registries = Registries(start)
    yield registries
    registries.close()
    for server in servers:
        server.stop()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_emulator(emulators: Registries, case: Case) -> None:
    client = emulators.client(case.config)
    manifest, _ = build(case)
    response = push(client, case)
    stored = client.get(
        f"/v2/{repository(case)}/manifests/{manifest.digest}", headers={"Accept": case.manifest_type}
    )
    if case.expected is Outcome.ACCEPTED:
        assert response.status_code == 201, response.text
        assert stored.status_code == 200
        assert stored.content == manifest.content
        return
    assert response.status_code == 400, response.text
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]
    # A refused manifest leaves nothing behind: neither its revision nor its tag.
    assert stored.status_code == 404
    assert client.get(f"/v2/{repository(case)}/manifests/t").status_code == 404
    (error,) = response.json()["errors"]
    layer_digest = manifest.document["layers"][0]["digest"]
    assert [entry["digest"] for entry in error["detail"]] == [layer_digest] * len(error["detail"])
    if case.expected is Outcome.BLOB_UNKNOWN:
        assert error["detail"] == [{"digest": layer_digest}]
        return
    refused = [entry for entry in error["detail"] if "reason" in entry]
    assert refused, error
    if case.urls:
        # The message a client shows names the URL and why it was refused.
        assert refused[0]["url"] in error["message"]
        assert refused[0]["reason"] in error["message"]
        assert refused[0]["url"] in case.urls


REASONS = [
    ("default-refuses-every-url", "no URL is accepted"),
    ("allow-no-match", "matches no pattern of validation.manifests.urls.allow"),
    ("allowed-but-denied", "matches validation.manifests.urls.deny pattern 'denied'"),
    ("scheme-ftp", "the scheme must be http or https"),
    ("fragment", "a URL with a fragment is not accepted"),
    ("bad-port", "not a valid URL"),
    ("schema2-foreign-no-urls", "a foreign layer must name its URLs"),
]


@pytest.mark.parametrize(("case_id", "reason"), REASONS)
def test_the_reason_names_the_rule(emulators: Registries, case_id: str, reason: str) -> None:
    (case,) = (case for case in CASES if case.id == case_id)
    response = push(emulators.client(case.config), case)
    (error,) = response.json()["errors"]
    assert reason in error["detail"][0]["reason"]
    assert reason in error["message"]


@pytest.mark.peers
@pytest.mark.needs("docker-registry")
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_distribution_agrees(distributions: Registries, case: Case) -> None:
    response = push(distributions.client(case.config), case)
    if case.expected is Outcome.ACCEPTED:
        assert response.status_code == 201, response.text
    elif case.expected is Outcome.BLOB_UNKNOWN:
        assert response.status_code == 400, response.text
        assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]
    else:
        # distribution 2.8's answer to a refused URL, which the emulator deliberately does not copy.
        assert response.status_code == 500, response.text
        assert error_codes(response) == ["UNKNOWN", "UNKNOWN", "MANIFEST_BLOB_UNKNOWN"]


LAYER_DIGEST = "sha256:" + "1" * 64


def oci_layout_with_foreign_layer(root: Path, url: str) -> str:
    """An OCI layout holding an image whose only layer is non-distributable: its blob is not in the
    layout, only its URL is (as for Windows base layers). Returns ``oci:<root>:1``."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def write(blob: Blob) -> None:
        (blobs / blob.digest.partition(":")[2]).write_bytes(blob.content)

    rootfs = {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}
    image_config = Blob(
        json.dumps({"architecture": "amd64", "os": "windows", "rootfs": rootfs}).encode(), OCI_CONFIG
    )
    layer = {"mediaType": OCI_NONDIST_GZIP, "digest": LAYER_DIGEST, "size": 1024, "urls": [url]}
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": image_config.descriptor()}
    manifest = Blob(json.dumps({**document, "layers": [layer]}).encode(), OCI_MANIFEST)
    write(image_config)
    write(manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [manifest.descriptor(annotations={"org.opencontainers.image.ref.name": "1"})],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return f"oci:{root}:1"


@pytest.mark.needs("skopeo")
def test_skopeo_pushes_a_foreign_layer_by_url(pax_registry_factory: RegistryFactory, tmp_path: Path) -> None:
    source = oci_layout_with_foreign_layer(tmp_path / "layout", ALLOWED)
    allowing = pax_registry_factory({"validation": CONFIGS["allow"]})
    skopeo("copy", "--dest-tls-verify=false", source, f"docker://{allowing.host}/win/base:1")
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{allowing.host}/win/base:1").stdout
    assert json.loads(raw)["layers"][0]["urls"] == [ALLOWED]
    # Only the config was uploaded: the layer's URL stands in for it.
    uploads = allowing.requests_matching("PUT", "/v2/win/base/blobs/uploads/*")
    assert len(uploads) == 1
    assert LAYER_DIGEST.partition(":")[2] not in uploads[0].query

    default = pax_registry_factory()
    result = skopeo(
        "copy", "--dest-tls-verify=false", source, f"docker://{default.host}/win/base:1", check=False
    )
    assert result.returncode != 0
    # What the user reads: the refused URL and the rule that refused it.
    assert ALLOWED in result.stderr
    assert "validation.manifests.urls.allow" in result.stderr
