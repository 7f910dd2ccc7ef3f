"""distribution's own example configuration, extended with notifications, the debug server, health
checks and a pull-through proxy, served by ``python -m emulator serve FILE`` and used by real clients.

The files are ``tests/data/distribution/registry.yml`` (distribution's development configuration, with
an enabled endpoint, a file health check and URL validation added) and ``proxy.yml`` (a pull-through
cache of the first). What must differ on each run (addresses, the storage root, the Redis address, the
notification URL) is set through ``REGISTRY_*`` variables, the way a container sets it, so the files are
served exactly as written.

One registry takes pushes from skopeo and oras-py; then the test reads what the notification endpoint
received, scrapes ``/metrics`` and reads ``/debug/health`` on the debug port, and turns the file check on
and off. The proxy, a second process, serves the same image and artifact pulled through it, refuses a
push, and keeps serving them from its cache once the first registry is gone.
"""

from __future__ import annotations

import json
import os
import time
import typing as t
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from pax_registry_fixtures.notifications import NotificationSink
from pax_registry_fixtures.process import RegistryProcess
from pax_registry_fixtures.process import free_port
from tests.clients import build_image
from tests.clients import needs_tools
from tests.clients import oras_client
from tests.clients import skopeo

if t.TYPE_CHECKING:
    from pax_registry_fixtures.redis import RedisServer

pytestmark = [pytest.mark.peers, needs_tools, pytest.mark.needs("redis-server")]

DATA = Path(__file__).parent / "data" / "distribution"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
#: How long a health check may take to notice a change (its interval is 1s).
HEALTH_WAIT = 30.0


class Debug:
    """The debug port of a registry process."""

    def __init__(self, addr: str) -> None:
        self.url = f"http://{addr}"
        self.session = requests.Session()
        self.session.trust_env = False

    def health(self) -> requests.Response:
        return self.session.get(f"{self.url}/debug/health", timeout=10)

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        """Every sample of a ``/metrics`` scrape: name, labels, value."""
        response = self.session.get(f"{self.url}/metrics", timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/plain")
        return [
            (sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        ]

    def total(self, name: str, **labels: str) -> float:
        return sum(
            value
            for sample_name, sample_labels, value in self.samples()
            if sample_name == name and labels.items() <= sample_labels.items()
        )

    def wait_for_health(self, status: int) -> requests.Response:
        """Wait until ``/debug/health`` answers ``status`` (the checks run once per interval)."""
        deadline = time.monotonic() + HEALTH_WAIT
        while (response := self.health()).status_code != status and time.monotonic() < deadline:
            time.sleep(0.2)
        return response


def start(path: Path, workdir: Path, env: dict[str, str]) -> tuple[RegistryProcess, Debug]:
    """Serve ``path`` with its storage under ``workdir`` (also its working directory) and a free debug
    port; ``env`` adds ``REGISTRY_*`` variables."""
    workdir.mkdir()
    debug_addr = f"127.0.0.1:{free_port()}"
    process = RegistryProcess(
        path,
        env={
            "REGISTRY_HTTP_DEBUG_ADDR": debug_addr,
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(workdir / "storage"),
            **env,
        },
        cwd=workdir,
    )
    return process.start(), Debug(debug_addr)


def digest_of_manifest(reference: str) -> str:
    inspected = skopeo("inspect", "--tls-verify=false", reference).stdout
    return str(json.loads(inspected)["Digest"])


def test_distribution_example_config_end_to_end(
    pax_redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = build_image(tmp_path / "build", layers=2, layer_size=64 * 1024)
    artifact = tmp_path / "artifact" / "notes.txt"
    artifact.parent.mkdir()
    artifact.write_bytes(os.urandom(4096))
    monkeypatch.chdir(artifact.parent)  # oras-py names layers by the paths it is given

    with NotificationSink() as sink:
        registry, debug = start(
            DATA / "registry.yml",
            tmp_path / "registry",
            {
                "REGISTRY_REDIS_ADDR": pax_redis.addr,
                "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL": sink.url,
            },
        )
        with registry:
            check_registry(registry, debug, sink, image, artifact, tmp_path)
            check_proxy(registry, tmp_path, image, artifact)


def check_registry(
    registry: RegistryProcess,
    debug: Debug,
    sink: NotificationSink,
    image: str,
    artifact: Path,
    tmp_path: Path,
) -> None:
    # Healthy from the start: the checks have not run yet, or found nothing wrong.
    healthy = debug.health()
    assert (healthy.status_code, healthy.json()) == (200, {})

    pushed = f"docker://{registry.host}/e2e/app:1"
    skopeo("copy", "--dest-tls-verify=false", image, pushed)
    oras_client(registry.host).push(files=[artifact.name], target=f"{registry.host}/e2e/notes:v1")
    skopeo("copy", "--src-tls-verify=false", pushed, f"dir:{tmp_path / 'pulled'}")
    oras_client(registry.host).pull(target=f"{registry.host}/e2e/notes:v1", outdir=str(tmp_path / "notes"))
    assert (tmp_path / "notes" / artifact.name).read_bytes() == artifact.read_bytes()
    manifest = json.loads((tmp_path / "pulled" / "manifest.json").read_bytes())
    digest = digest_of_manifest(pushed)

    # Notifications: the manifest push with its references (events.includereferences), each layer's push,
    # the pulls, and the configured header on every POST.
    (push,) = sink.wait_for(action="push", repository="e2e/app", tag="1")
    assert push["target"]["digest"] == digest
    assert push["target"]["mediaType"] == OCI_MANIFEST
    referenced = [descriptor["digest"] for descriptor in push["target"]["references"]]
    assert referenced == [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
    for layer in manifest["layers"]:
        sink.wait_for(action="push", repository="e2e/app", digest=layer["digest"])
        sink.wait_for(action="pull", repository="e2e/app", digest=layer["digest"])
    sink.wait_for(action="pull", repository="e2e/app", digest=digest)
    sink.wait_for(action="push", repository="e2e/notes", tag="v1")
    assert {post.headers.get("authorization") for post in sink.requests} == {"Bearer an-example-token"}
    assert {post.path for post in sink.requests} == {"/events"}

    # Metrics: on the debug port only, counting what the clients did.
    assert debug.total("registry_http_requests_total", handler="manifest", method="put", code="201") >= 2
    assert (
        debug.total("registry_http_requests_total", handler="blob_upload_chunk", method="put", code="201")
        >= 3
    )
    assert debug.total("registry_http_requests_total", handler="blob", method="get", code="200") >= 2
    assert requests.get(f"{registry.url}/metrics", timeout=10).status_code == 404

    # Health: the file check fails while its file exists, and the main port refuses every request.
    maintenance = registry.cwd / "maintenance-mode"
    maintenance.touch()
    unhealthy = debug.wait_for_health(503)
    assert unhealthy.status_code == 503
    assert unhealthy.json() == {"maintenance-mode": "file exists"}
    refused = requests.get(f"{registry.url}/v2/", timeout=10)
    assert refused.status_code == 503
    assert [error["code"] for error in refused.json()["errors"]] == ["UNAVAILABLE"]
    maintenance.unlink()
    assert debug.wait_for_health(200).json() == {}
    assert requests.get(f"{registry.url}/v2/", timeout=10).status_code == 200


def check_proxy(upstream: RegistryProcess, tmp_path: Path, image: str, artifact: Path) -> None:
    proxy, debug = start(DATA / "proxy.yml", tmp_path / "proxy", {"REGISTRY_PROXY_REMOTEURL": upstream.url})
    with proxy:
        through = f"docker://{proxy.host}/e2e/app:1"
        assert digest_of_manifest(through) == digest_of_manifest(f"docker://{upstream.host}/e2e/app:1")
        skopeo("copy", "--src-tls-verify=false", through, f"dir:{tmp_path / 'via-proxy'}")
        assert (tmp_path / "via-proxy" / "manifest.json").read_bytes() == (
            tmp_path / "pulled" / "manifest.json"
        ).read_bytes()
        notes = f"{proxy.host}/e2e/notes:v1"
        oras_client(proxy.host).pull(target=notes, outdir=str(tmp_path / "notes-via-proxy"))
        assert (tmp_path / "notes-via-proxy" / artifact.name).read_bytes() == artifact.read_bytes()

        # A cache takes no pushes.
        refused = skopeo(
            "copy", "--dest-tls-verify=false", image, f"docker://{proxy.host}/e2e/new:1", check=False
        )
        assert refused.returncode != 0
        assert debug.health().status_code == 200
        assert debug.total("registry_http_requests_total", handler="manifest", method="get", code="200") >= 1

        # With the upstream gone, what was pulled is served from the cache.
        upstream.stop()
        skopeo("copy", "--src-tls-verify=false", through, f"dir:{tmp_path / 'from-cache'}")
        assert (tmp_path / "from-cache" / "manifest.json").read_bytes() == (
            tmp_path / "pulled" / "manifest.json"
        ).read_bytes()
