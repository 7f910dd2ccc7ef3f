"""The examples of the README's "Testing with the fixtures" section, as tests CI runs.

Keep the two in step: each function here appears verbatim in one of that section's snippets, and
tests/test_readme.py checks it (and runs the snippets themselves as pasted).
"""

from __future__ import annotations

import hashlib

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from pax_registry_fixtures import Htpasswd
from pax_registry_fixtures import NotificationSink
from pax_registry_fixtures import RegistryFactory
from pax_registry_fixtures import RegistryServer
from pax_registry_fixtures import TLSFiles


def test_push_and_pull(pax_registry: RegistryServer) -> None:
    image = pax_registry.push_image("team/app", "1.0", layers=2, size=1024)

    response = pax_registry.session().get(
        pax_registry.url_for("/v2/team/app/manifests/1.0"),
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )

    assert response.headers["Docker-Content-Digest"] == image.digest
    pax_registry.assert_request_made("GET", "/v2/team/app/manifests/1.0")
    [entry] = pax_registry.requests
    assert (entry.method, entry.status) == ("GET", 200)


def test_secure_registry(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(tls=True, auth=True, delete=False)

    assert registry.url.startswith("https://127.0.0.1:")
    anonymous = requests.get(registry.url_for("/v2/"), verify=str(registry.ca_path))
    assert anonymous.status_code == 401
    with registry.session() as session:  # carries the CA and the generated user's credentials
        assert session.get(registry.url_for("/v2/")).status_code == 200


def test_retry_after_rate_limit(pax_registry: RegistryServer) -> None:
    pax_registry.push_image("team/app", "1.0")
    pax_registry.faults.fail("GET", "/v2/*/manifests/*", status=503)
    pax_registry.faults.too_many_requests("GET", "/v2/*/manifests/*", retry_after=1)

    session = pax_registry.session()
    retry = Retry(total=3, status_forcelist=[429, 503], respect_retry_after_header=True)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    response = session.get(
        pax_registry.url_for("/v2/team/app/manifests/1.0"),
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )

    assert response.status_code == 200
    assert [entry.status for entry in pax_registry.requests] == [503, 429, 200]


def test_s3_backed_registry(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(storage="s3")  # a fresh bucket on moto's S3 server

    image = registry.push_image("team/app", "1.0")

    assert registry.s3 is not None
    data = f"registry/docker/registry/v2/blobs/sha256/{image.config[7:9]}/{image.config[7:]}/data"
    assert data in registry.s3.list_keys()


def test_own_certificates_and_users(
    pax_registry_factory: RegistryFactory, pax_tls: TLSFiles, pax_htpasswd: Htpasswd
) -> None:
    pax_htpasswd.add("ci", "s3cret")
    config = {
        "http": {"tls": pax_tls.server_config()},
        "auth": {"htpasswd": pax_htpasswd.section()},
    }
    registry = pax_registry_factory(config)

    response = requests.get(registry.url_for("/v2/"), auth=("ci", "s3cret"), verify=str(pax_tls.ca_path))
    assert response.status_code == 200


def test_push_notifies(pax_registry_factory: RegistryFactory) -> None:
    registry = pax_registry_factory(notifications=True)
    digest = "sha256:" + hashlib.sha256(b"layer").hexdigest()

    response = requests.post(
        registry.url_for("/v2/team/app/blobs/uploads/"), params={"digest": digest}, data=b"layer"
    )

    assert response.status_code == 201
    assert registry.notifications is not None
    [event] = registry.notifications.wait_for(action="push", repository="team/app")
    assert event["target"]["digest"] == digest
    assert event["target"]["mediaType"] == "application/octet-stream"  # every blob event says so


def test_webhook_retries(pax_registry_factory: RegistryFactory, pax_notifications: NotificationSink) -> None:
    endpoint = pax_notifications.endpoint(headers={"Authorization": ["Bearer t0ken"]})
    registry = pax_registry_factory({"notifications": {"endpoints": [endpoint]}})
    image = registry.push_image("team/app", "1.0")  # seeding: no event
    pax_notifications.fail_next(2)  # answered 500 twice: the registry tries again

    registry.session().get(
        registry.url_for("/v2/team/app/manifests/1.0"), headers={"Accept": image.media_type}
    )

    [event] = pax_notifications.wait_for(action="pull", tag="1.0")
    assert event["target"]["digest"] == image.digest
    assert [post.status for post in pax_notifications.requests] == [500, 500, 200]
    assert pax_notifications.requests[0].headers["authorization"] == "Bearer t0ken"
