"""Notifications (issue 13): the events a registry POSTs to its endpoints, as distribution 2.8 sends them,
and how they are delivered: in order, retried, never in a request's way.

The registries send to ``pax_notifications`` sinks over real HTTP; pushes and pulls come from skopeo,
oras-py or plain HTTP requests where the test is about one request. Seeding (``push_image``) writes
straight to storage and notifies nobody, so it sets up content without events.

Nothing waits for an absence: to show that a request sent no event, a later request that does send one is
made and waited for; delivery is in order, so an event from the first would have arrived before it.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import json
import logging
import socket
import threading
import time
import typing as t
import uuid
from pathlib import Path

import pytest
import requests
from werkzeug.test import Client

from benchmarks.features import Sink
from emulator import routes
from emulator.app import make_app
from emulator.config import EndpointConfig
from emulator.inprocess import load_config
from emulator.notifications import ENVELOPE_MEDIA_TYPE
from emulator.notifications import EndpointMetrics
from emulator.notifications.events import CAPTURED_VALUE_SIZE
from emulator.notifications.events import Captured
from emulator.notifications.events import CapturedRequest
from emulator.notifications.events import Encoder
from emulator.notifications.events import Ids
from emulator.notifications.events import Target
from emulator.notifications.events import encode_document
from emulator.notifications.events import references
from emulator.notifications.events import remote_addr
from emulator.notifications.events import rfc3339nano
from emulator.notifications.events import source_fields
from emulator.notifications.events import timestamp
from emulator.notifications.sender import MAX_BATCH_EVENTS
from emulator.notifications.sender import EndpointSender
from emulator.routes import build_map
from pax_registry_fixtures import NotificationSink
from pax_registry_fixtures import RegistryFactory
from pax_registry_fixtures import RegistryServer
from pax_registry_fixtures.process import RegistryProcess
from pax_registry_fixtures.process import free_port
from tests.clients import build_image
from tests.clients import needs_tools
from tests.clients import oras_client
from tests.clients import skopeo

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
BLOB = "application/octet-stream"
ENDPOINT = "pax-notifications"


# -- helpers -----------------------------------------------------------------------------------------------


def notifying(factory: RegistryFactory, **options: t.Any) -> tuple[RegistryServer, NotificationSink]:
    """A registry started with ``options`` that notifies a new sink, and that sink."""
    registry = factory(notifications=True, **options)
    assert registry.notifications is not None
    return registry, registry.notifications


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def upload(
    registry: RegistryServer,
    repository: str,
    data: bytes,
    *,
    session: requests.Session | None = None,
    **kwargs: t.Any,
) -> str:
    """A monolithic upload (POST then PUT), as most clients do it; returns the digest. ``kwargs`` go to
    both requests (``auth=``)."""
    session = session or requests.Session()
    digest = sha256(data)
    started = session.post(registry.url_for(f"/v2/{repository}/blobs/uploads/"), timeout=30, **kwargs)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    finished = session.put(location, params={"digest": digest}, data=data, timeout=30, **kwargs)
    assert finished.status_code == 201, finished.text
    return digest


def head_blob(registry: RegistryServer, repository: str, digest: str) -> None:
    response = requests.head(registry.url_for(f"/v2/{repository}/blobs/{digest}"), timeout=30)
    assert response.status_code == 200


def metrics(registry: RegistryServer) -> EndpointMetrics:
    assert registry.app.notifier is not None
    [endpoint] = registry.app.notifier.endpoint_metrics()
    return endpoint


def wait_for_metrics(
    registry: RegistryServer, ready: t.Callable[[EndpointMetrics], bool], timeout: float = 10.0
) -> EndpointMetrics:
    """The endpoint's counters once ``ready`` holds (polled: the sender updates them in its thread)."""
    return poll_counters(lambda: metrics(registry), ready, timeout)


def poll_counters(
    read: t.Callable[[], EndpointMetrics], ready: t.Callable[[EndpointMetrics], bool], timeout: float = 10.0
) -> EndpointMetrics:
    deadline = time.monotonic() + timeout
    while not ready(current := read()):
        assert time.monotonic() < deadline, f"counters never got there: {current}"
        time.sleep(0.02)
    return current


def layout_manifest(layout: Path) -> tuple[str, dict[str, t.Any]]:
    """The digest and document of the only manifest of an OCI layout umoci built."""
    [entry] = json.loads((layout / "index.json").read_text())["manifests"]
    digest = entry["digest"]
    algorithm, _, encoded = digest.partition(":")
    return digest, json.loads((layout / "blobs" / algorithm / encoded).read_bytes())


# -- what is sent ------------------------------------------------------------------------------------------


@pytest.mark.peers
@needs_tools
def test_skopeo_push_sends_one_push_per_blob_and_per_manifest(
    pax_registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    registry, sink = notifying(pax_registry_factory)
    source = build_image(tmp_path, layers=2)
    manifest_digest, manifest = layout_manifest(tmp_path / "image")
    blobs = {d["digest"]: d["size"] for d in [manifest["config"], *manifest["layers"]]}

    skopeo("copy", "--dest-tls-verify=false", source, f"docker://{registry.host}/team/app:1")

    [pushed] = sink.wait_for(action="push", media_type=OCI_MANIFEST)
    # Delivery is in order and skopeo pushes the manifest last: every blob event came before.
    blob_pushes = [event["target"] for event in sink.events if event["target"]["mediaType"] == BLOB]
    assert sorted(target["digest"] for target in blob_pushes) == sorted(blobs)
    for target in blob_pushes:
        digest = target["digest"]
        assert target == {
            "mediaType": BLOB,
            "size": blobs[digest],
            "digest": digest,
            "length": blobs[digest],
            "repository": "team/app",
            "url": registry.url_for(f"/v2/team/app/blobs/{digest}"),
        }
    size = len((tmp_path / "image" / "blobs" / "sha256" / manifest_digest.partition(":")[2]).read_bytes())
    assert pushed["target"] == {
        "mediaType": OCI_MANIFEST,
        "size": size,
        "digest": manifest_digest,
        "length": size,
        "repository": "team/app",
        "url": registry.url_for(f"/v2/team/app/manifests/{manifest_digest}"),
        "tag": "1",
    }
    assert {event["action"] for event in sink.events} == {"push"}
    assert len(sink.events) == len(blobs) + 1


@pytest.mark.peers
@needs_tools
def test_skopeo_pull_sends_pull_events(pax_registry_factory: RegistryFactory, tmp_path: Path) -> None:
    registry, sink = notifying(pax_registry_factory)
    image = registry.push_image("team/app", "1.0", layers=2)

    skopeo("copy", "--src-tls-verify=false", f"docker://{image.reference}", f"oci:{tmp_path / 'out'}:1")

    pulled = sink.wait_for(action="pull", media_type=BLOB, count=3)
    assert {event["target"]["digest"] for event in pulled} == {image.config, *image.layers}
    manifest_pulls = sink.wait_for(action="pull", media_type=OCI_MANIFEST, tag="1.0")
    assert {event["target"]["digest"] for event in manifest_pulls} == {image.digest}
    assert {event["target"]["repository"] for event in sink.events} == {"team/app"}
    assert {event["request"]["method"] for event in sink.events} <= {"GET", "HEAD"}


@pytest.mark.peers
def test_oras_push_notifies_the_artifact_blobs_and_manifest(
    pax_registry_factory: RegistryFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, sink = notifying(pax_registry_factory)
    (tmp_path / "notes.txt").write_bytes(b"released\n")
    monkeypatch.chdir(tmp_path)  # oras-py pushes only files under the working directory

    oras_client(registry.host).push(target=f"{registry.host}/team/notes:v1", files=["notes.txt"])

    [manifest] = sink.wait_for(action="push", repository="team/notes", tag="v1")
    assert manifest["target"]["mediaType"] == OCI_MANIFEST
    blob_pushes = sink.wait_for(action="push", media_type=BLOB)
    assert sha256(b"released\n") in {event["target"]["digest"] for event in blob_pushes}


def test_the_served_registry_notifies(pax_notifications: NotificationSink) -> None:
    config = {"storage": {"inmemory": {}}, "notifications": {"endpoints": [pax_notifications.endpoint()]}}

    with RegistryProcess(config) as process:
        digest = sha256(b"layer")
        response = requests.post(
            f"{process.url}/v2/team/app/blobs/uploads/", params={"digest": digest}, data=b"layer", timeout=30
        )
        assert response.status_code == 201
        [event] = pax_notifications.wait_for(action="push")

    assert event["target"]["url"] == f"{process.url}/v2/team/app/blobs/{digest}"
    assert event["source"]["addr"] == f"{socket.gethostname()}:{process.port}"


def test_the_envelope_and_its_event_keys(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory)

    digest = upload(registry, "team/app", b"layer")

    sink.wait_for(action="push")
    [post] = sink.requests
    assert post.headers["content-type"] == ENVELOPE_MEDIA_TYPE
    assert post.path == "/events"
    [envelope] = sink.envelopes
    assert list(envelope) == ["events"]
    [event] = envelope["events"]
    assert list(event) == ["id", "timestamp", "action", "target", "request", "actor", "source"]
    assert uuid.UUID(event["id"]).version == 4
    assert datetime.datetime.fromisoformat(event["timestamp"]).tzinfo is not None
    assert event["action"] == "push"
    assert event["target"]["digest"] == digest
    assert event["target"]["size"] == event["target"]["length"] == len(b"layer")
    request = event["request"]
    assert list(request) == ["id", "addr", "host", "method", "useragent"]
    assert request["method"] == "PUT"
    assert request["host"] == registry.host
    assert request["addr"].startswith("127.0.0.1:")
    assert request["useragent"].startswith("python-requests/")
    assert event["actor"] == {}
    # The port of http.addr as configured (the fixtures ask for a free one, 0), and this registry's id.
    assert event["source"]["addr"] == f"{socket.gethostname()}:0"
    assert uuid.UUID(event["source"]["instanceID"])


def test_one_request_id_per_request_and_one_instance_id_per_registry(
    pax_registry_factory: RegistryFactory,
) -> None:
    registry, sink = notifying(pax_registry_factory)
    image = registry.push_image("team/app", "1.0")
    registry.registry.tags.tag("team/app", "stable", registry.registry.resolve("team/app", "1.0"))

    requests.delete(registry.url_for(f"/v2/team/app/manifests/{image.digest}"), timeout=30)
    upload(registry, "team/app", b"other")

    events = sink.wait_for(count=4)
    deletes = [event for event in events if event["action"] == "delete"]
    assert len({event["request"]["id"] for event in deletes}) == 1
    assert len({event["request"]["id"] for event in events}) == 2
    assert len({event["source"]["instanceID"] for event in events}) == 1


def test_chunked_upload_notifies_once_at_the_final_put(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory)
    session = requests.Session()
    started = session.post(registry.url_for("/v2/team/app/blobs/uploads/"), timeout=30)
    first = session.patch(
        started.headers["Location"],
        data=b"abc",
        headers={"Content-Range": "0-2", "Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert first.status_code == 202
    done = session.put(
        first.headers["Location"], params={"digest": sha256(b"abcdef")}, data=b"def", timeout=30
    )
    assert done.status_code == 201

    [event] = sink.wait_for(action="push")
    assert event["target"]["digest"] == sha256(b"abcdef")
    assert event["target"]["size"] == 6
    assert [e["request"]["method"] for e in sink.events] == ["PUT"]


def test_a_monolithic_post_notifies_a_push(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory)

    response = requests.post(
        registry.url_for("/v2/team/app/blobs/uploads/"),
        params={"digest": sha256(b"whole")},
        data=b"whole",
        timeout=30,
    )

    assert response.status_code == 201
    [event] = sink.wait_for(action="push")
    assert event["target"]["digest"] == sha256(b"whole")
    assert event["request"]["method"] == "POST"


def test_manifest_push_by_digest_has_no_tag(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory)
    image = registry.push_image("team/app", None)

    response = requests.put(
        registry.url_for(f"/v2/team/app/manifests/{image.digest}"),
        data=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=30,
    )

    assert response.status_code == 201
    [event] = sink.wait_for(action="push")
    assert event["target"]["digest"] == image.digest
    assert event["target"]["mediaType"] == OCI_MANIFEST
    assert "tag" not in event["target"]


def test_manifest_get_and_head_notify_pulls(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory)
    image = registry.push_image("team/app", "1.0")
    accept = {"Accept": OCI_MANIFEST}

    by_tag = requests.get(registry.url_for("/v2/team/app/manifests/1.0"), headers=accept, timeout=30)
    by_digest = requests.head(
        registry.url_for(f"/v2/team/app/manifests/{image.digest}"), headers=accept, timeout=30
    )

    assert (by_tag.status_code, by_digest.status_code) == (200, 200)
    first, second = sink.wait_for(action="pull", count=2)
    assert first["target"]["tag"] == "1.0"
    assert first["request"]["method"] == "GET"
    assert "tag" not in second["target"]
    assert second["request"]["method"] == "HEAD"
    for event in (first, second):
        assert event["target"]["digest"] == image.digest
        assert event["target"]["size"] == len(image.manifest)
        assert event["target"]["url"] == registry.url_for(f"/v2/team/app/manifests/{image.digest}")


def test_a_manifest_refused_for_its_accept_header_still_notifies_a_pull(
    pax_registry_factory: RegistryFactory,
) -> None:
    # distribution notifies once storage returned the manifest, before it checks the client's Accept.
    registry, sink = notifying(pax_registry_factory)
    image = registry.push_image("team/app", "1.0")

    response = requests.get(
        registry.url_for("/v2/team/app/manifests/1.0"),
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=30,
    )

    assert response.status_code == 404
    [event] = sink.wait_for(action="pull")
    assert (event["target"]["digest"], event["target"]["tag"]) == (image.digest, "1.0")


def test_blob_get_and_head_notify_pulls(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory)
    digest = registry.push_blob("team/app", b"content")

    got = requests.get(registry.url_for(f"/v2/team/app/blobs/{digest}"), timeout=30)
    head_blob(registry, "team/app", digest)

    assert got.content == b"content"
    events = sink.wait_for(action="pull", count=2)
    assert [event["request"]["method"] for event in events] == ["GET", "HEAD"]
    for event in events:
        assert event["target"] == {
            "mediaType": BLOB,
            "size": 7,
            "digest": digest,
            "length": 7,
            "repository": "team/app",
            "url": registry.url_for(f"/v2/team/app/blobs/{digest}"),
        }


def test_answers_304_notify_nobody(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory)
    image = registry.push_image("team/app", "1.0")
    marker = registry.push_blob("team/marker", b"marker")

    manifest = requests.get(
        registry.url_for("/v2/team/app/manifests/1.0"),
        headers={"Accept": OCI_MANIFEST, "If-None-Match": f'"{image.digest}"'},
        timeout=30,
    )
    blob = requests.get(
        registry.url_for(f"/v2/team/app/blobs/{image.config}"),
        headers={"If-None-Match": f'"{image.config}"'},
        timeout=30,
    )
    head_blob(registry, "team/marker", marker)

    assert (manifest.status_code, blob.status_code) == (304, 304)
    sink.wait_for(repository="team/marker")
    assert [event["target"]["repository"] for event in sink.events] == ["team/marker"]


def test_failures_notify_nobody(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory)
    marker = registry.push_blob("team/marker", b"marker")

    missing = requests.get(registry.url_for("/v2/team/app/manifests/1.0"), timeout=30)
    wrong = requests.post(
        registry.url_for("/v2/team/app/blobs/uploads/"),
        params={"digest": sha256(b"x")},
        data=b"y",
        timeout=30,
    )
    head_blob(registry, "team/marker", marker)

    assert (missing.status_code, wrong.status_code) == (404, 400)
    sink.wait_for(repository="team/marker")
    assert len(sink.events) == 1


def test_delete_by_digest_notifies_the_manifest_then_each_tag(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory, delete=True)
    image = registry.push_image("team/app", "1.0")
    registry.registry.tags.tag("team/app", "stable", registry.registry.resolve("team/app", "1.0"))

    response = requests.delete(registry.url_for(f"/v2/team/app/manifests/{image.digest}"), timeout=30)

    assert response.status_code == 202
    first, *tags = sink.wait_for(action="delete", count=3)
    assert first["target"] == {"digest": image.digest, "repository": "team/app"}
    assert sorted(event["target"]["tag"] for event in tags) == ["1.0", "stable"]
    for event in tags:
        assert event["target"] == {"repository": "team/app", "tag": event["target"]["tag"]}


def test_tag_delete_notifies_the_tag_as_3x_does(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory, delete=True)
    registry.push_image("team/app", "1.0")

    response = requests.delete(registry.url_for("/v2/team/app/manifests/1.0"), timeout=30)

    assert response.status_code == 202
    [event] = sink.wait_for(action="delete")
    assert event["target"] == {"repository": "team/app", "tag": "1.0"}


def test_blob_delete_notifies_the_digest(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory, delete=True)
    digest = registry.push_blob("team/app", b"content")

    response = requests.delete(registry.url_for(f"/v2/team/app/blobs/{digest}"), timeout=30)

    assert response.status_code == 202
    [event] = sink.wait_for(action="delete")
    assert event["target"] == {"digest": digest, "repository": "team/app"}
    assert event["request"]["method"] == "DELETE"


def test_mount_notifies_with_the_source_repository(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory)
    digest = registry.push_blob("team/base", b"shared layer")

    response = requests.post(
        registry.url_for("/v2/team/app/blobs/uploads/"),
        params={"mount": digest, "from": "team/base"},
        timeout=30,
    )

    assert response.status_code == 201
    [event] = sink.wait_for(action="mount")
    assert event["target"] == {
        "mediaType": BLOB,
        "size": len(b"shared layer"),
        "digest": digest,
        "length": len(b"shared layer"),
        "repository": "team/app",
        "fromRepository": "team/base",
        "url": registry.url_for(f"/v2/team/app/blobs/{digest}"),
    }


def test_references_when_configured_on_push_and_pull_only(
    pax_registry_factory: RegistryFactory, pax_notifications: NotificationSink
) -> None:
    registry = pax_registry_factory(
        {
            "notifications": {
                "events": {"includereferences": True},
                "endpoints": [pax_notifications.endpoint()],
            }
        },
        delete=True,
    )
    image = registry.push_image("team/app", None, layers=2)
    document = json.loads(image.manifest)
    expected = [document["config"], *document["layers"]]

    pushed = requests.put(
        registry.url_for("/v2/team/app/manifests/1.0"),
        data=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=30,
    )
    pulled = requests.get(
        registry.url_for("/v2/team/app/manifests/1.0"), headers={"Accept": OCI_MANIFEST}, timeout=30
    )
    deleted = requests.delete(registry.url_for(f"/v2/team/app/manifests/{image.digest}"), timeout=30)

    assert (pushed.status_code, pulled.status_code, deleted.status_code) == (201, 200, 202)
    push, pull, *deletes = pax_notifications.wait_for(count=4)
    assert push["target"]["references"] == expected
    assert pull["target"]["references"] == expected
    assert [event["action"] for event in deletes] == ["delete", "delete"]
    assert all("references" not in event["target"] for event in deletes)


def test_actor_is_the_authenticated_user(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory, auth=True)

    upload(registry, "team/app", b"layer", session=registry.session())

    [event] = sink.wait_for(action="push")
    assert event["actor"] == {"name": registry.username}


def test_actor_is_the_basic_auth_user_even_without_auth(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory)

    upload(registry, "team/app", b"layer", auth=("ci-bot", "anything"))

    [event] = sink.wait_for(action="push")
    assert event["actor"] == {"name": "ci-bot"}


def test_request_addr_follows_forwarding_headers(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory)
    digest = registry.push_blob("team/app", b"content")
    url = registry.url_for(f"/v2/team/app/blobs/{digest}")

    for headers in (
        {"X-Forwarded-For": "203.0.113.7, 10.0.0.1"},
        {"X-Forwarded-For": "not-an-ip", "X-Real-Ip": "198.51.100.2"},
        {"X-Forwarded-For": "not-an-ip", "X-Real-Ip": "also not"},
    ):
        requests.head(url, headers=headers, timeout=30)

    addrs = [event["request"]["addr"] for event in sink.wait_for(action="pull", count=3)]
    assert addrs[:2] == ["203.0.113.7", "198.51.100.2"]
    assert addrs[2].startswith("127.0.0.1:")


def test_target_urls_are_built_as_locations_are(pax_registry_factory: RegistryFactory) -> None:
    """The sender builds a target's URL from what the request left behind, as the handlers build their
    Location headers: forwarding headers when well formed, ``http.host``, ``http.relativeurls``."""
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example:8443"}
    forged = {"X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "evil.example/x y"}
    cases: list[tuple[dict[str, t.Any], dict[str, str], str]] = [
        ({}, forwarded, "https://registry.example:8443"),
        ({}, forged, "<served>"),
        ({"http": {"host": "https://mirror.example/"}}, forwarded, "https://mirror.example"),
        ({"http": {"relativeurls": True}}, forwarded, ""),
    ]
    for config, headers, base in cases:
        registry, sink = notifying(pax_registry_factory, config=config)
        digest = registry.push_blob("team/app", b"content")
        started = requests.post(registry.url_for("/v2/team/app/blobs/uploads/"), headers=headers, timeout=30)
        requests.head(registry.url_for(f"/v2/team/app/blobs/{digest}"), headers=headers, timeout=30)

        expected_base = registry.url if base == "<served>" else base
        assert started.headers["Location"].startswith(expected_base + "/v2/team/app/blobs/uploads/")
        (event,) = sink.wait_for(action="pull")
        assert event["target"]["url"] == f"{expected_base}/v2/team/app/blobs/{digest}"


def test_target_urls_keep_the_script_name_of_a_mounted_app(pax_notifications: NotificationSink) -> None:
    """Mounted by another WSGI server under a script name and ``http.prefix``, the registry's events
    name their targets where its Location headers send clients: below both."""
    config = load_config(
        {
            "version": "0.1",
            "storage": {"inmemory": {}},
            "http": {"prefix": "/registry/"},
            "notifications": {"endpoints": [pax_notifications.endpoint()]},
        }
    )
    app = make_app(config)
    app.open()
    try:
        client = Client(app)
        mounted = {"SCRIPT_NAME": "/mirror"}
        base = "http://registry.test/mirror/registry/v2/team/app"
        data = b"mounted"
        digest = sha256(data)
        started = client.post(
            "/registry/v2/team/app/blobs/uploads/",
            base_url="http://registry.test/",
            environ_overrides=mounted,
        )
        assert started.status_code == 202
        assert started.headers["Location"].startswith(base + "/blobs/uploads/")
        pushed = client.put(
            started.headers["Location"].removeprefix("http://registry.test/mirror") + f"&digest={digest}",
            data=data,
            base_url="http://registry.test/",
            environ_overrides=mounted,
        )
        assert pushed.status_code == 201
        assert pushed.headers["Location"] == f"{base}/blobs/{digest}"
        (event,) = pax_notifications.wait_for(action="push", digest=digest)
    finally:
        app.close()
    assert event["target"]["url"] == f"{base}/blobs/{digest}"


def test_huge_headers_are_cut_in_events_and_not_remembered(pax_registry_factory: RegistryFactory) -> None:
    """A queue of events must not hold every header a client sent: a user agent of 64 KiB is cut to
    CAPTURED_VALUE_SIZE characters, and an event of a request with headers that large is not kept in the
    encoder's memo."""
    registry, sink = notifying(pax_registry_factory)
    digest = registry.push_blob("team/app", b"content")
    agent = "a" * 65536
    requests.head(registry.url_for(f"/v2/team/app/blobs/{digest}"), headers={"User-Agent": agent}, timeout=30)
    (event,) = sink.wait_for(action="pull")
    assert event["request"]["useragent"] == agent[:CAPTURED_VALUE_SIZE]

    ids = Ids()
    encode = Encoder(ids, {"addr": "box:5000", "instanceID": "instance"}, build_map(""))
    environ = {"REMOTE_ADDR": "10.0.0.1", "HTTP_HOST": "registry.test", "wsgi.url_scheme": "http"}
    # A script name comes from whoever serves the app, but a prefix middleware may take it from a header.
    for agent, script_name in (("agent", ""), ("b" * 8192, ""), ("agent", "/p" * 8192)):
        request = CapturedRequest.of(
            ids.take(), {**environ, "HTTP_USER_AGENT": agent}, "", script_name=script_name, api="v2"
        )
        assert len(request.script_name) <= CAPTURED_VALUE_SIZE
        encode(Captured(request, ids.take(), time.time(), Target("delete", repository="team/app", tag="1.0")))
    assert len(encode._memo) == 1


def test_events_put_from_many_threads_are_each_counted_once(pax_notifications: NotificationSink) -> None:
    """put() takes no lock on its way: every event is still either delivered or dropped, once, and each
    thread's events arrive in its order."""
    threads, each, limit = 8, 1_500, 2_000
    sender = EndpointSender(
        EndpointConfig(name="unit", url=pax_notifications.url, queuesize=limit), encode_document
    )
    sender.start()
    start = threading.Barrier(threads)

    def put_many(number: int) -> None:
        start.wait()
        for n in range(each):
            sender.put({"action": "push", "target": {"repository": f"t{number}", "size": n}})

    try:
        workers = [threading.Thread(target=put_many, args=(number,)) for number in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        total = threads * each
        counters = poll_counters(sender.metrics, lambda m: m.pending == 0, timeout=60)
    finally:
        sender.stop()
    assert counters.events == total
    assert counters.successes + counters.dropped == total
    assert len(pax_notifications.events) == counters.successes
    for number in range(threads):
        sizes = [
            e["target"]["size"] for e in pax_notifications.events if e["target"]["repository"] == f"t{number}"
        ]
        assert sizes == sorted(sizes)
        assert len(set(sizes)) == len(sizes)


def test_configured_headers_are_sent(
    pax_registry_factory: RegistryFactory, pax_notifications: NotificationSink
) -> None:
    endpoint = pax_notifications.endpoint(headers={"Authorization": ["Bearer s3cret"], "X-Team": ["a", "b"]})
    registry = pax_registry_factory({"notifications": {"endpoints": [endpoint]}})

    upload(registry, "team/app", b"layer")

    pax_notifications.wait_for(action="push")
    [post] = pax_notifications.requests
    assert post.headers["authorization"] == "Bearer s3cret"
    # Sent as two header lines; the WSGI server joins repeated headers.
    assert post.headers["x-team"].replace(" ", "") == "a,b"


# -- what is dropped ---------------------------------------------------------------------------------------


def test_ignored_media_types_drop_events(
    pax_registry_factory: RegistryFactory, pax_notifications: NotificationSink
) -> None:
    endpoint = pax_notifications.endpoint(ignore={"mediatypes": [BLOB]})
    registry = pax_registry_factory({"notifications": {"endpoints": [endpoint]}})
    image = registry.push_image("team/app", "1.0")

    head_blob(registry, "team/app", image.config)
    requests.head(
        registry.url_for("/v2/team/app/manifests/1.0"), headers={"Accept": OCI_MANIFEST}, timeout=30
    )

    pax_notifications.wait_for(action="pull")
    assert [event["target"]["mediaType"] for event in pax_notifications.events] == [OCI_MANIFEST]


def test_ignored_actions_drop_events_even_without_ignored_media_types(
    pax_registry_factory: RegistryFactory, pax_notifications: NotificationSink
) -> None:
    # distribution 2.8.3 ignores ignore.actions unless some media type is ignored too; 3.1 fixed it.
    endpoint = pax_notifications.endpoint(ignore={"actions": ["pull"]})
    registry = pax_registry_factory({"notifications": {"endpoints": [endpoint]}})
    digest = registry.push_blob("team/app", b"content")

    head_blob(registry, "team/app", digest)
    upload(registry, "team/app", b"more")

    pax_notifications.wait_for(action="push")
    assert [event["action"] for event in pax_notifications.events] == ["push"]


def test_a_disabled_endpoint_gets_nothing(
    pax_registry_factory: RegistryFactory,
    pax_notifications: NotificationSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with NotificationSink() as disabled:
        endpoints = [disabled.endpoint("off", disabled=True), pax_notifications.endpoint()]
        with caplog.at_level(logging.INFO, logger="emulator.notifications"):
            registry = pax_registry_factory({"notifications": {"endpoints": endpoints}})

        upload(registry, "team/app", b"layer")

        pax_notifications.wait_for(action="push")
        assert disabled.requests == []
    assert any(
        "off" in record.getMessage() and "disabled" in record.getMessage() for record in caplog.records
    )
    assert registry.app.notifier is not None
    assert [m.name for m in registry.app.notifier.endpoint_metrics()] == [ENDPOINT]


def test_only_disabled_endpoints_build_no_notifier(pax_registry_factory: RegistryFactory) -> None:
    endpoint = {"name": "off", "url": "http://127.0.0.1:9/", "disabled": True}
    registry = pax_registry_factory({"notifications": {"endpoints": [endpoint]}})

    assert registry.app.notifier is None
    assert registry.app.services == []


# -- delivery ----------------------------------------------------------------------------------------------


def test_an_endpoint_that_fails_twice_gets_every_event_in_order(
    pax_registry_factory: RegistryFactory,
) -> None:
    registry, sink = notifying(pax_registry_factory)
    sink.fail_next(2, status=500)

    digests = [upload(registry, "team/app", f"layer {n}".encode()) for n in range(3)]

    events = sink.wait_for(action="push", count=3)
    assert [event["target"]["digest"] for event in events] == digests
    posts = sink.requests
    assert [post.status for post in posts[:3]] == [500, 500, 200]
    assert all(post.status == 200 for post in posts[3:])
    # The failed batch was sent again whole, byte for byte, and it started with the first event: nothing
    # overtook it. Later events may have joined the queue meanwhile, never the batch.
    assert posts[0].body == posts[1].body == posts[2].body
    batch = len(json.loads(posts[0].body)["events"])
    assert json.loads(posts[0].body)["events"][0]["target"]["digest"] == digests[0]
    counters = wait_for_metrics(registry, lambda m: m.pending == 0)
    # Every count is of events, as distribution's are: each failed POST counts each event it carried.
    assert counters == EndpointMetrics(
        name=ENDPOINT,
        url=sink.url,
        pending=0,
        events=3,
        successes=3,
        failures=2 * batch,
        errors=0,
        statuses={"500 Internal Server Error": 2 * batch, "200 OK": 3},
    )


def test_retries_back_off_after_threshold_failures(
    pax_registry_factory: RegistryFactory, pax_notifications: NotificationSink
) -> None:
    endpoint = pax_notifications.endpoint(threshold=2, backoff="100ms")
    registry = pax_registry_factory({"notifications": {"endpoints": [endpoint]}})
    pax_notifications.fail_next(4, status=503)

    upload(registry, "team/app", b"layer")

    pax_notifications.wait_for(action="push")
    assert [post.status for post in pax_notifications.requests] == [503, 503, 503, 503, 200]
    counters = wait_for_metrics(registry, lambda m: m.successes == 1)
    assert (counters.failures, counters.statuses["503 Service Unavailable"]) == (4, 4)


def test_a_stuck_endpoint_never_holds_up_requests(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory)
    sink.pause()

    digests = [upload(registry, "team/app", f"layer {n}".encode()) for n in range(3)]

    # Every upload returned while the sink held the first POST unanswered.
    sink.wait_until_held(1)
    assert sink.events == []
    assert wait_for_metrics(registry, lambda m: m.pending == 3).successes == 0
    sink.resume()
    events = sink.wait_for(action="push", count=3)
    assert [event["target"]["digest"] for event in events] == digests


def test_a_refusing_endpoint_counts_errors_and_requests_succeed(
    pax_registry_factory: RegistryFactory,
) -> None:
    dead = {
        "name": "dead",
        "url": f"http://127.0.0.1:{free_port()}/events",
        "backoff": "50ms",
        "threshold": 1,
    }
    registry = pax_registry_factory({"notifications": {"endpoints": [dead]}})

    digest = upload(registry, "team/app", b"layer")

    assert requests.head(registry.url_for(f"/v2/team/app/blobs/{digest}"), timeout=30).status_code == 200
    counters = wait_for_metrics(registry, lambda m: m.errors >= 2)
    assert (counters.successes, counters.failures, counters.statuses) == (0, 0, {})
    assert counters.pending == 2


def test_a_dead_endpoint_does_not_delay_another(
    pax_registry_factory: RegistryFactory, pax_notifications: NotificationSink
) -> None:
    with NotificationSink() as stuck:
        stuck.pause()
        endpoints = [stuck.endpoint("stuck"), pax_notifications.endpoint()]
        registry = pax_registry_factory({"notifications": {"endpoints": endpoints}})

        digests = [upload(registry, "team/app", f"layer {n}".encode()) for n in range(2)]

        events = pax_notifications.wait_for(action="push", count=2)
        assert [event["target"]["digest"] for event in events] == digests
        assert stuck.events == []


def test_a_full_queue_drops_the_oldest_event_with_a_warning(
    pax_registry_factory: RegistryFactory,
    pax_notifications: NotificationSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = pax_registry_factory(
        {"notifications": {"endpoints": [pax_notifications.endpoint(queuesize=2)]}}
    )
    pax_notifications.pause()
    first = upload(registry, "team/app", b"first")
    # The first event is on its way; the queue behind it holds two.
    pax_notifications.wait_until_held(1)

    with caplog.at_level(logging.WARNING, logger="emulator.notifications"):
        second, third, fourth = (upload(registry, "team/app", data) for data in (b"2nd", b"3rd", b"4th"))

    pax_notifications.resume()
    events = pax_notifications.wait_for(action="push", count=3)
    assert [event["target"]["digest"] for event in events] == [first, third, fourth]
    assert second not in {event["target"]["digest"] for event in pax_notifications.events}
    [warning] = [r for r in caplog.records if r.name == "emulator.notifications"]
    assert ENDPOINT in warning.getMessage()
    assert "dropped the oldest" in warning.getMessage()
    assert wait_for_metrics(registry, lambda m: m.pending == 0).dropped == 1


def test_stopping_the_registry_stops_delivery(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory)
    sink.pause()
    for n in range(3):
        upload(registry, "team/app", f"layer {n}".encode())
    sink.wait_until_held(1)

    registry.stop()

    assert not [thread for thread in threading.enumerate() if thread.name == f"notifications-{ENDPOINT}"]
    # The POST in flight was cut off, so its event counts as undelivered, with the two queued behind it.
    assert metrics(registry).pending == 3
    sink.resume()


def test_reset_keeps_notifying(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory)

    registry.reset()
    digest = upload(registry, "team/app", b"after reset")

    [event] = sink.wait_for(action="push")
    assert event["target"]["digest"] == digest


def test_a_sender_keeps_what_it_holds_across_stop_and_start(pax_notifications: NotificationSink) -> None:
    sender = EndpointSender(EndpointConfig(name="unit", url=pax_notifications.url), encode_document)
    sender.put({"action": "push", "target": {"repository": "unit/one"}})

    sender.start()
    sender.start()
    # Delivered once the sender has read the answer: stopped before that, it would send the event again.
    poll_counters(sender.metrics, lambda m: m.successes == 1)
    sender.stop()
    sender.stop()
    sender.put({"action": "push", "target": {"repository": "unit/two"}})

    assert sender.metrics().pending == 1
    sender.start()
    try:
        pax_notifications.wait_for(repository="unit/two")
    finally:
        sender.stop()
    assert [event["target"]["repository"] for event in pax_notifications.events] == ["unit/one", "unit/two"]


def test_credentials_in_the_endpoint_url_are_sent_as_basic_auth(pax_notifications: NotificationSink) -> None:
    url = pax_notifications.url.replace("http://", "http://ci:p%40ss@")
    sender = EndpointSender(EndpointConfig(name="unit", url=url), encode_document)
    sender.put({"action": "push", "target": {"repository": "unit/app"}})

    sender.start()
    try:
        pax_notifications.wait_for(repository="unit/app")
    finally:
        sender.stop()

    [post] = pax_notifications.requests
    assert post.headers["authorization"] == "Basic " + base64.b64encode(b"ci:p@ss").decode()


def test_an_unusable_endpoint_url_counts_errors(pax_notifications: NotificationSink) -> None:
    sender = EndpointSender(
        EndpointConfig(name="unit", url="ftp://127.0.0.1/events", backoff=0.05), encode_document
    )
    sender.put({"action": "push", "target": {"repository": "unit/app"}})

    sender.start()
    try:
        poll_counters(sender.metrics, lambda m: m.errors >= 2)
    finally:
        sender.stop()
    assert sender.metrics().pending == 1


# -- batching ------------------------------------------------------------------------------------------------


def test_events_queued_behind_a_post_leave_in_bounded_batches_in_order(
    pax_registry_factory: RegistryFactory,
) -> None:
    registry, sink = notifying(pax_registry_factory)
    image = registry.push_image("team/app", "1.0")
    url = registry.url_for(f"/v2/team/app/manifests/{image.digest}")
    count = 2 * MAX_BATCH_EVENTS + 1
    sink.pause()

    with requests.Session() as session:
        for n in range(count):
            headers = {"Accept": OCI_MANIFEST, "User-Agent": f"client-{n}"}
            pulled = session.head(url, headers=headers, timeout=30)
            assert pulled.status_code == 200
    sink.wait_until_held(1)
    sink.resume()

    events = sink.wait_for(action="pull", count=count)
    assert [event["request"]["useragent"] for event in events] == [f"client-{n}" for n in range(count)]
    sizes = [len(json.loads(post.body)["events"]) for post in sink.requests]
    assert sum(sizes) == count
    # The first POST left with what was queued when the sender woke; the rest waited behind it and
    # left a full batch at a time.
    assert max(sizes) == MAX_BATCH_EVENTS
    assert len(sizes) < count // 2
    counters = wait_for_metrics(registry, lambda m: m.pending == 0)
    assert (counters.events, counters.successes, counters.statuses) == (count, count, {"200 OK": count})


def test_a_failed_batch_is_retried_whole_and_counted_per_event(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory)
    sink.pause()
    first = upload(registry, "team/app", b"first")
    sink.wait_until_held(1)
    queued = [upload(registry, "team/app", f"layer {n}".encode()) for n in range(3)]
    # The held POST is answered 200, the batch queued behind it 503 once.
    sink.fail_next(1, status=200)
    sink.fail_next(1, status=503)
    sink.resume()

    events = sink.wait_for(action="push", count=4)
    assert [event["target"]["digest"] for event in events] == [first, *queued]
    posts = sink.requests
    assert [post.status for post in posts] == [200, 503, 200]
    assert posts[1].body == posts[2].body
    assert [event["target"]["digest"] for event in json.loads(posts[1].body)["events"]] == queued
    counters = wait_for_metrics(registry, lambda m: m.pending == 0)
    assert counters == EndpointMetrics(
        name=ENDPOINT,
        url=sink.url,
        pending=0,
        events=4,
        successes=4,
        failures=3,
        errors=0,
        statuses={"200 OK": 4, "503 Service Unavailable": 3},
    )


def delivered(count: int, counters: EndpointMetrics) -> bool:
    return counters.successes == count


def test_one_connection_is_kept_and_replaced_once_the_endpoint_closed_it() -> None:
    endpoint = Sink()
    sender = EndpointSender(EndpointConfig(name="unit", url=endpoint.url), encode_document)
    sender.start()
    try:
        for n in range(1, 4):
            sender.put({"action": "push", "target": {"repository": f"unit/{n}"}})
            poll_counters(sender.metrics, functools.partial(delivered, n))
        assert (endpoint.posts, len(endpoint.connections)) == (3, 1)

        endpoint.close_connections()
        sender.put({"action": "push", "target": {"repository": "unit/after"}})
        counters = poll_counters(sender.metrics, lambda m: m.successes == 4)
    finally:
        sender.stop()
        endpoint.stop()
    assert len(endpoint.connections) == 2
    # The closed connection was noticed and replaced: no failure, no error, nothing sent twice.
    assert (counters.failures, counters.errors, endpoint.posts) == (0, 0, 4)


def test_encoded_events_carry_their_own_fields_whatever_the_encoder_remembers() -> None:
    ids = Ids()
    source = {"addr": "box:5000", "instanceID": "instance"}
    encode = Encoder(ids, source, build_map(""))

    def captured(
        action: str,
        *,
        addr: str = "10.0.0.1:1",
        actor: str = "",
        manifest: bytes | None = None,
        **target: t.Any,
    ) -> Captured:
        peer, port = addr.split(":")
        environ = {
            "REMOTE_ADDR": peer, "REMOTE_PORT": port, "HTTP_HOST": "registry.test", "REQUEST_METHOD": "GET",
            "HTTP_USER_AGENT": "agent", "wsgi.url_scheme": "http",
        }  # fmt: skip
        request = CapturedRequest.of(ids.take(), environ, actor, script_name="", api="v2")
        return Captured(request, ids.take(), time.time(), Target(action, **target), manifest)

    digest = "sha256:" + "1" * 64
    layer: dict[str, t.Any] = {"media_type": BLOB, "size": 7, "digest": digest, "repository": "team/app"}
    samples = [
        captured("pull", **layer, route=routes.BLOB),
        captured("pull", **layer, route=routes.BLOB),  # the same kind of event again
        captured("pull", **layer, route=routes.BLOB, addr="10.0.0.2:2"),
        captured("pull", **layer, route=routes.BLOB, actor="ci"),
        captured("mount", **layer, route=routes.BLOB, from_repository="team/base"),
        captured("pull", **{**layer, "size": 8}, route=routes.BLOB),
        captured(
            "push",
            media_type=OCI_MANIFEST,
            size=3,
            digest=digest,
            repository="team/app",
            route=routes.MANIFEST,
            tag="1.0",
            manifest=json.dumps({"layers": [{"digest": "sha256:" + "2" * 64}]}).encode(),
        ),
        captured("delete", repository="team/app", tag="1.0"),
    ]
    for event in samples:
        request, target = event.request, event.target
        url = ""
        if target.route == routes.BLOB:
            url = f"http://registry.test/v2/{target.repository}/blobs/{target.digest}"
        elif target.route == routes.MANIFEST:
            url = f"http://registry.test/v2/{target.repository}/manifests/{target.digest}"
        expected_target = {
            "mediaType": target.media_type,
            "size": target.size,
            "digest": target.digest,
            "length": target.size,
            "repository": target.repository,
            "fromRepository": target.from_repository,
            "url": url,
            "tag": target.tag,
            "references": None if event.manifest is None else references(event.manifest),
        }
        assert json.loads(encode(event)) == {
            "id": ids.format(event.number),
            "timestamp": rfc3339nano(datetime.datetime.fromtimestamp(event.when).astimezone()),
            "action": target.action,
            "target": {key: value for key, value in expected_target.items() if value},
            "request": {
                "id": ids.format(request.number),
                "addr": "{REMOTE_ADDR}:{REMOTE_PORT}".format(**request.environ()),
                "host": "registry.test",
                "method": "GET",
                "useragent": "agent",
            },
            "actor": {"name": request.actor} if request.actor else {},
            "source": source,
        }
    numbers = [ids.format(event.number) for event in samples] + [
        ids.format(e.request.number) for e in samples
    ]
    assert len(set(numbers)) == len(numbers)
    assert all(uuid.UUID(number).version == 4 for number in numbers)


@pytest.mark.parametrize("seconds", [1767322245.0, 1767322245.12, 1767322245.000001, 1767322245.9999996])
def test_timestamps_of_time_time_are_written_as_for_the_local_time(seconds: float) -> None:
    moment = datetime.datetime.fromtimestamp(seconds).astimezone()
    assert timestamp(seconds) == rfc3339nano(moment)


# -- the sink ----------------------------------------------------------------------------------------------


def test_the_sink_says_what_arrived_when_an_event_does_not(pax_registry_factory: RegistryFactory) -> None:
    registry, sink = notifying(pax_registry_factory)
    digest = upload(registry, "team/app", b"layer")
    sink.wait_for(action="push")

    with pytest.raises(AssertionError) as raised:
        sink.wait_for(action="delete", repository="team/app", timeout=0.1)

    message = str(raised.value)
    assert "action='delete', repository='team/app'" in message
    assert f"push team/app@{digest} {BLOB}" in message
    sink.clear()
    assert (sink.events, sink.requests) == ([], [])


def test_a_sink_given_to_the_factory_serves_several_registries(
    pax_registry_factory: RegistryFactory, pax_notifications: NotificationSink
) -> None:
    first = pax_registry_factory(notifications=pax_notifications)
    second = pax_registry_factory(notifications=pax_notifications)

    upload(first, "team/one", b"one")
    upload(second, "team/two", b"two")

    pax_notifications.wait_for(repository="team/one")
    pax_notifications.wait_for(repository="team/two")
    assert first.notifications is second.notifications is pax_notifications
    instances = {event["source"]["instanceID"] for event in pax_notifications.events}
    assert len(instances) == 2


# -- event fields, unit by unit ----------------------------------------------------------------------------


def test_timestamps_are_written_as_go_writes_rfc3339nano() -> None:
    utc = datetime.UTC
    assert rfc3339nano(datetime.datetime(2026, 1, 2, 3, 4, 5, 120000, utc)) == "2026-01-02T03:04:05.12Z"
    assert rfc3339nano(datetime.datetime(2026, 1, 2, 3, 4, 5, 0, utc)) == "2026-01-02T03:04:05Z"
    zone = datetime.timezone(-datetime.timedelta(hours=5, minutes=30))
    assert rfc3339nano(datetime.datetime(2026, 1, 2, 3, 4, 5, 1, zone)) == "2026-01-02T03:04:05.000001-05:30"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"REMOTE_ADDR": "10.1.2.3", "REMOTE_PORT": "5555"}, "10.1.2.3:5555"),
        ({"REMOTE_ADDR": "::1", "REMOTE_PORT": "5555"}, "[::1]:5555"),
        ({"HTTP_X_FORWARDED_FOR": " 2001:db8::1 , 10.0.0.1", "REMOTE_ADDR": "::1"}, "2001:db8::1"),
        ({"HTTP_X_FORWARDED_FOR": "proxy", "HTTP_X_REAL_IP": "10.9.9.9", "REMOTE_ADDR": "::1"}, "10.9.9.9"),
        ({"HTTP_X_REAL_IP": "nonsense", "REMOTE_ADDR": "10.1.2.3"}, "10.1.2.3"),
    ],
)
def test_remote_addr(environ: dict[str, str], expected: str) -> None:
    assert remote_addr(environ) == expected


def test_source_addr_takes_the_port_of_http_addr() -> None:
    assert source_fields("box", ":5000", "id") == {"addr": "box:5000", "instanceID": "id"}
    assert source_fields("box", "[::1]:5001", "id")["addr"] == "box:5001"
    assert source_fields("box", "/run/registry.sock", "id")["addr"] == "box"
