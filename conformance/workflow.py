"""The state a workflow's checks share (pull, content discovery): its own repository, the run's data and
the profile, with pushes that first tell the cleanup what they store, so a run leaves nothing behind even
when a check stops half-way."""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    import requests

    from conformance.client import RegistryClient
    from conformance.conftest import Cleanup
    from conformance.data import Blob
    from conformance.data import Manifest
    from conformance.data import RunData


class Workflow:
    """A workflow's state. Subclasses make each request a ``functools.cached_property``, so it runs
    once, when the first check needs it, and the checks that follow read its answer."""

    def __init__(
        self, registry: RegistryClient, repo: str, data: RunData, cleanup: Cleanup, profile: str
    ) -> None:
        self.registry = registry
        self.repo = repo
        self.data = data
        self.cleanup = cleanup
        self.profile = profile

    def push_blob(self, blob: Blob) -> requests.Response:
        self.cleanup.blob(self.repo, blob.digest)
        return self.registry.push_blob(self.repo, blob)

    def push_manifest(self, reference: str, manifest: Manifest) -> requests.Response:
        self.cleanup.manifest(self.repo, manifest.digest)
        return self.registry.push_manifest(self.repo, reference, manifest)
