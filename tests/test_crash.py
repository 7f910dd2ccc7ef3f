"""kill -9 in the middle of pushes (issue 10, suite item f).

A real ``python -m emulator serve`` on filesystem storage is killed with SIGKILL a dozen times: while a
monolithic blob upload receives its body (by PUT, and by ``POST ?digest=``), while a chunk of a chunked
upload arrives, while a manifest body arrives, and at seeded random moments of bursts of manifest and tag
PUTs (tags moving between manifests). After each restart nothing partial is visible (every blob's data
hashes to its digest, every link names the digest it is filed under and what it points to exists, every tag
resolves through the API to a manifest whose bytes hash to its digest) and the interrupted push, retried,
succeeds; a chunked upload is resumed from the ``Range`` the restarted server reports. A last restart with
upload purging every second removes the uploads the kills left and every orphan temporary file.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import random
import signal
import threading
import time
import typing as t
from pathlib import Path

import pytest

from pax_registry_fixtures.client import OCI_MANIFEST
from pax_registry_fixtures.client import Client
from pax_registry_fixtures.client import Response
from pax_registry_fixtures.client import expect
from pax_registry_fixtures.client import request_target
from pax_registry_fixtures.client import with_digest
from pax_registry_fixtures.process import RegistryProcess
from pax_registry_fixtures.seeding import image_manifest
from tests.rawhttp import RawConnection

MiB = 1 << 20
REPO = "crash/app"
V2 = Path("docker/registry/v2")
#: Upload state tokens are signed with it: a chunked upload can then be resumed by the next process.
SECRET = "crash-test-secret"
#: How many kills land at random moments of manifest and tag bursts.
BURSTS = 6


def config(root: Path, **purging: t.Any) -> dict[str, t.Any]:
    storage: dict[str, t.Any] = {"filesystem": {"rootdirectory": str(root)}}
    if purging:
        storage["maintenance"] = {"uploadpurging": {"enabled": True, "dryrun": False, **purging}}
    return {
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "http": {"secret": SECRET},
        "storage": storage,
    }


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def wait_until(condition: t.Callable[[], bool], what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.01)


class Crashes:
    """The storage root, the registry process serving it, and the kill -9 that ends each one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.registry = RegistryProcess(config(root)).start()
        self.client = Client(self.registry.url, timeout=30)
        self.kills = 0

    @property
    def url(self) -> str:
        return self.registry.url

    def kill_and_restart(self, **purging: t.Any) -> None:
        os.kill(self.registry.pid, signal.SIGKILL)
        assert self.registry.stop() == -signal.SIGKILL
        self.kills += 1
        self.client.close()
        self.registry = RegistryProcess(config(self.root, **purging)).start()
        self.client = Client(self.registry.url, timeout=30)

    def stop(self) -> None:
        self.client.close()
        self.registry.stop()

    # -- the storage tree ------------------------------------------------------------------------------

    def uploads(self) -> list[Path]:
        return sorted((self.root / V2 / "repositories").glob("**/_uploads/*"))

    def upload_data_size(self, upload_id: str) -> int:
        """The size of an upload's data file on disk, 0 if there is none yet."""
        data = self.root / V2 / "repositories" / REPO / "_uploads" / upload_id / "data"
        return data.stat().st_size if data.exists() else 0

    def new_upload_ids(self, known: list[Path]) -> list[str]:
        return [upload.name for upload in self.uploads() if upload not in known]

    def temporary_files(self) -> list[Path]:
        return sorted(path for path in self.root.rglob(".tmp-*") if path.is_file())

    def check_nothing_partial(self) -> None:
        """Every file at a real path is whole, and every tag resolves through the API to a whole manifest."""
        blobs = self.root / V2 / "blobs"
        for data in blobs.glob("sha256/*/*/data"):
            assert sha256(data.read_bytes()) == f"sha256:{data.parent.name}", (
                f"{data} does not match its digest"
            )
        for link in (self.root / V2 / "repositories").rglob("link"):
            if "_uploads" in link.parts:
                continue
            digest = link.read_text()
            assert digest.startswith("sha256:") and len(digest) == 71, f"{link} holds {digest!r}"
            hex_ = digest.removeprefix("sha256:")
            if link.parent.name != "current":  # filed under its digest: _layers, revisions, tag index
                assert link.parent.name == hex_, f"{link} holds {digest}"
            assert (blobs / "sha256" / hex_[:2] / hex_ / "data").is_file(), f"{link} points at no blob"
        tags = self.client.request("GET", f"/v2/{REPO}/tags/list")
        if tags.status == 404:
            return
        for tag in tags.json()["tags"] or []:
            manifest = self.client.manifest(REPO, tag)
            assert manifest.status == 200, f"tag {tag}: {manifest.status}"
            assert sha256(manifest.body) == manifest.headers["Docker-Content-Digest"]
            for layer in manifest.json()["layers"]:
                assert sha256(self.client.blob(REPO, layer["digest"])) == layer["digest"]

    # -- pushing ---------------------------------------------------------------------------------------

    def push_blob(self, data: bytes) -> None:
        self.client.push_blob(REPO, data)
        self.check_blob(data)

    def check_blob(self, data: bytes) -> None:
        assert sha256(self.client.blob(REPO, sha256(data))) == sha256(data)

    def blob_is_absent(self, data: bytes) -> bool:
        return self.client.request("HEAD", f"/v2/{REPO}/blobs/{sha256(data)}").status == 404

    def raw_request(self, head: str, body: bytes) -> RawConnection:
        """Send a request head and the start of its body, and leave the connection open."""
        connection = RawConnection(self.registry.port, timeout=10)
        connection.send(head.encode() + body)
        return connection

    def put_manifest(self, reference: str, manifest: bytes) -> Response:
        return self.client.put_manifest(REPO, reference, manifest)


def manifest(config_blob: bytes, layer: bytes, variant: int) -> bytes:
    return image_manifest(config_blob, [layer], annotations={"variant": str(variant)})


@pytest.fixture
def crashes(tmp_path: Path) -> t.Iterator[Crashes]:
    crashes = Crashes(tmp_path / "storage")
    try:
        yield crashes
    finally:
        crashes.stop()


def kill_during_monolithic_put(crashes: Crashes, blob: bytes) -> None:
    started = crashes.client.start_upload(REPO)
    upload_id = started.headers["Docker-Upload-UUID"]
    target = with_digest(request_target(started.headers["Location"]), sha256(blob))
    head = (
        f"PUT {target} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(blob)}\r\n\r\n"
    )
    connection = crashes.raw_request(head, blob[: len(blob) // 2])
    wait_until(lambda: crashes.upload_data_size(upload_id) >= MiB, "the server writes the blob")
    crashes.kill_and_restart()
    connection.close()


def kill_during_post_with_digest(crashes: Crashes, blob: bytes) -> None:
    head = (
        f"POST /v2/{REPO}/blobs/uploads/?digest={sha256(blob)} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(blob)}\r\n\r\n"
    )
    known = crashes.uploads()
    connection = crashes.raw_request(head, blob[: len(blob) // 2])
    wait_until(
        lambda: any(crashes.upload_data_size(new) >= MiB for new in crashes.new_upload_ids(known)),
        "the server writes the blob",
    )
    crashes.kill_and_restart()
    connection.close()


def kill_during_chunk_and_resume(crashes: Crashes, blob: bytes) -> None:
    started = crashes.client.start_upload(REPO)
    upload_id = started.headers["Docker-Upload-UUID"]
    location = crashes.client.patch(started.headers["Location"], blob[:MiB], 0)
    head = (
        f"PATCH {request_target(location)} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Range: {MiB}-{len(blob) - 1}\r\n"
        f"Content-Length: {len(blob) - MiB}\r\n\r\n"
    )
    connection = crashes.raw_request(head, blob[MiB : MiB + (len(blob) - MiB) // 2])
    wait_until(lambda: crashes.upload_data_size(upload_id) >= 2 * MiB, "the server writes the chunk")
    crashes.kill_and_restart()
    connection.close()
    crashes.check_nothing_partial()
    assert crashes.blob_is_absent(blob)
    # The restarted server reports what reached the disk, a prefix of the blob: resume from there.
    status = expect(crashes.client.request("GET", f"/v2/{REPO}/blobs/uploads/{upload_id}"), 204, "status")
    size = int(status.headers["Range"].split("-")[1]) + 1
    assert MiB <= size < len(blob)
    rest = crashes.client.patch(status.headers["Location"], blob[size:], size)
    crashes.client.finish_upload(rest, sha256(blob))
    crashes.check_blob(blob)


def kill_during_manifest_body(crashes: Crashes, content: bytes) -> None:
    head = (
        f"PUT /v2/{REPO}/manifests/half HTTP/1.1\r\nHost: x\r\nContent-Type: {OCI_MANIFEST}\r\n"
        f"Content-Length: {len(content)}\r\n\r\n"
    )
    connection = crashes.raw_request(head, content[: len(content) // 2])
    time.sleep(0.2)  # let the server take the request in; nothing it could write may show after the kill
    crashes.kill_and_restart()
    connection.close()
    assert crashes.client.request("HEAD", f"/v2/{REPO}/manifests/half").status == 404


class Burst(threading.Thread):
    """PUTs manifests by tag and by digest, moving tags between them, until the server dies."""

    def __init__(self, crashes: Crashes, manifests: list[bytes], seed: int) -> None:
        super().__init__()
        self.url = crashes.url
        self.manifests = manifests
        self.random = random.Random(seed)
        #: The PUT in flight when the server died (or the last one sent), to retry.
        self.last: tuple[str, bytes] | None = None
        self.done = 0

    def run(self) -> None:
        with Client(self.url, timeout=10) as client:
            while True:
                content = self.random.choice(self.manifests)
                reference = self.random.choice([f"t{self.random.randrange(4)}", sha256(content)])
                self.last = (reference, content)
                try:
                    response = client.put_manifest(REPO, reference, content)
                except (ConnectionError, http.client.HTTPException):  # the server died
                    return
                expect(response, 201, f"manifest PUT {reference}")
                self.done += 1


def test_kill_9_cycles_leave_nothing_partial_and_purging_cleans_up(crashes: Crashes) -> None:
    rng = random.Random(10)
    config_blob = b'{"architecture":"amd64","os":"linux"}'
    layer = rng.randbytes(64 * 1024)
    crashes.push_blob(config_blob)
    crashes.push_blob(layer)
    manifests = [manifest(config_blob, layer, n) for n in range(8)]
    assert crashes.put_manifest("t0", manifests[0]).status == 201

    # Blobs, killed while their data is being written; each retried in full, or resumed.
    for _ in range(2):
        blob = rng.randbytes(4 * MiB)
        kill_during_monolithic_put(crashes, blob)
        crashes.check_nothing_partial()
        assert crashes.blob_is_absent(blob)
        crashes.push_blob(blob)
    blob = rng.randbytes(4 * MiB)
    kill_during_post_with_digest(crashes, blob)
    crashes.check_nothing_partial()
    assert crashes.blob_is_absent(blob)
    crashes.push_blob(blob)
    for _ in range(2):
        kill_during_chunk_and_resume(crashes, rng.randbytes(4 * MiB))

    # Manifests and tags: killed mid-body, then at random moments of bursts of writes.
    kill_during_manifest_body(crashes, manifests[1])
    crashes.check_nothing_partial()
    assert crashes.put_manifest("half", manifests[1]).status == 201
    for number in range(BURSTS):
        burst = Burst(crashes, manifests, seed=number)
        burst.start()
        wait_until(lambda: burst.done >= 3, "the burst is under way")  # noqa: B023 - waited on at once
        time.sleep(rng.uniform(0.0, 0.3))
        crashes.kill_and_restart()
        burst.join(10)
        assert not burst.is_alive()
        crashes.check_nothing_partial()
        assert burst.last is not None
        reference, content = burst.last
        expect(crashes.put_manifest(reference, content), 201, "the retried PUT")
        resolved = crashes.client.manifest(REPO, reference)
        assert (resolved.status, resolved.body) == (200, content)
    assert crashes.kills >= 12

    # What the kills left behind: uploads that never finished, and perhaps temporary files. A temporary
    # file and an upload directory as a kill inside the upload's start leaves them are added, dated an
    # hour back, so that purging them is tested whatever moments the kills hit.
    leftovers = crashes.uploads()
    assert len(leftovers) >= 3
    hour_ago = time.time() - 3600
    planted = crashes.root / V2 / "repositories" / REPO / "_manifests/tags/t0/current/.tmp-killed"
    planted.write_bytes(b"sha256:0123")
    killed_in_start = (
        crashes.root / V2 / "repositories" / REPO / "_uploads/0a1b2c3d-0000-4000-8000-000000000000"
    )
    killed_in_start.mkdir()
    (killed_in_start / ".tmp-startedat").write_bytes(b"2025-")
    for path in (planted, killed_in_start / ".tmp-startedat", killed_in_start):
        os.utime(path, (hour_ago, hour_ago))
    crashes.kill_and_restart(age="1s", interval="1s")
    wait_until(
        lambda: not crashes.uploads() and not crashes.temporary_files(),
        "one purge removes every stale upload and temporary file",
    )
    crashes.check_nothing_partial()
    assert "orphan temporary file" in crashes.registry.stderr_text()
    tags = crashes.client.request("GET", f"/v2/{REPO}/tags/list").json()["tags"]
    assert {"t0", "half"} <= set(tags)
