"""Fixtures shared by every group: the target, the client, the run's data and cleanup."""

from __future__ import annotations

import contextlib
import importlib
import os
import typing as t

import pytest
import requests

from conformance.client import RegistryClient
from conformance.client import location
from conformance.configreader import load_raw
from conformance.data import RunData
from conformance.plugin import PREFLIGHT
from conformance.plugin import PREFLIGHT_STATUS
from conformance.plugin import RECORDER_KEY
from conformance.plugin import SETTINGS_KEY
from conformance.preflight import problem
from conformance.settings import Settings


@pytest.fixture(scope="session")
def pax_settings(pytestconfig: pytest.Config) -> Settings:
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def registry_url(pax_settings: Settings) -> t.Iterator[str]:
    """The base URL of the registry under test; without one, an emulator started here."""
    if pax_settings.url:
        yield pax_settings.url
        return
    # The only place the suite touches the emulator: everything else speaks HTTP to whatever runs.
    # Imported by name so that neither the suite nor its type check depends on the emulator's code.
    emulator = importlib.import_module("emulator")
    server = emulator.start(pax_settings.config_path)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def registry(
    registry_url: str, pax_settings: Settings, pytestconfig: pytest.Config
) -> t.Iterator[RegistryClient]:
    client = RegistryClient(
        registry_url,
        username=pax_settings.username,
        password=pax_settings.password,
        cacert=pax_settings.cacert,
        client_cert=pax_settings.client_cert,
        client_key=pax_settings.client_key,
    )
    if not pax_settings.url:
        # The preflight of a URL ran before the session; an emulator started here is looked at now.
        found = problem(pax_settings, registry_url)
        if found:
            client.close()
            pytest.exit(f"{PREFLIGHT}: {found}", returncode=PREFLIGHT_STATUS)
    pytestconfig.stash[RECORDER_KEY] = client
    yield client
    client.close()


@pytest.fixture(scope="session")
def registry_config(pax_settings: Settings) -> dict[str, t.Any] | None:
    """The registry's effective configuration (``REGISTRY_*`` overrides applied), if one was given."""
    if not pax_settings.config_path:
        return None
    # The suite's own reader, so that a mistake of the emulator's is caught rather than mirrored. An
    # emulator started here reads no REGISTRY_* variables, a server elsewhere is assumed to share ours.
    return load_raw(pax_settings.config_path, os.environ if pax_settings.url else {})


@pytest.fixture(scope="session")
def namespace(pax_settings: Settings) -> str:
    return pax_settings.namespace


@pytest.fixture(scope="session")
def crossmount_namespace(pax_settings: Settings) -> str:
    return pax_settings.crossmount_namespace


@pytest.fixture(scope="session")
def run_data() -> RunData:
    return RunData.generate()


class Cleanup:
    """What a group wrote, removed at its end whatever happened in between.

    Failures are ignored: the content may be gone already (the group's own delete checks), or the registry
    may refuse deletes, in which case there is nothing the suite can do.
    """

    def __init__(self, registry: RegistryClient) -> None:
        self.registry = registry
        self.uploads: list[str] = []
        self.manifests: list[tuple[str, str]] = []
        self.blobs: list[tuple[str, str]] = []

    def upload(self, response: requests.Response) -> None:
        url = location(response)
        if url and "/blobs/uploads/" in url:
            self.uploads.append(url)

    def manifest(self, repo: str, digest: str) -> None:
        self.manifests.append((repo, digest))

    def blob(self, repo: str, digest: str) -> None:
        self.blobs.append((repo, digest))

    def run(self) -> None:
        # Uploads first (they hold nothing yet), then manifests newest first (an index before what it
        # lists), then the blobs they referenced.
        steps = [("DELETE", url) for url in self.uploads]
        steps += [("DELETE", f"/v2/{repo}/manifests/{digest}") for repo, digest in reversed(self.manifests)]
        steps += [("DELETE", f"/v2/{repo}/blobs/{digest}") for repo, digest in dict.fromkeys(self.blobs)]
        for method, target in dict.fromkeys(steps):
            with contextlib.suppress(requests.RequestException):
                self.registry.request(method, target)


@pytest.fixture(scope="module")
def cleanup(registry: RegistryClient) -> t.Iterator[Cleanup]:
    tracker = Cleanup(registry)
    yield tracker
    tracker.run()
