"""The referrers of a manifest: manifests in the same repository whose ``subject`` names it.

Nothing extra is stored: the answer is computed from the manifests themselves, so a storage root
written by another registry is answered correctly too.
"""

from __future__ import annotations

import typing as t

from ..drivers.base import PathNotFound
from ..reference import Digest
from .errors import ManifestInvalid
from .manifests import ManifestStore
from .manifests import parse_stored


def referrers(store: ManifestStore, name: str, subject: Digest) -> list[dict[str, t.Any]]:
    found: list[dict[str, t.Any]] = []
    for digest in store.digests(name):
        try:
            content = store.blobs.get(digest)
            parsed = parse_stored(content)
        except (PathNotFound, ManifestInvalid):
            # A revision whose blob vanished, or a schema1 manifest, cannot refer to anything.
            continue
        if parsed.subject != subject:
            continue
        descriptor: dict[str, t.Any] = {
            "mediaType": parsed.media_type,
            "digest": str(digest),
            "size": len(content),
        }
        artifact_type = parsed.artifact_type or parsed.config_media_type
        if artifact_type:
            descriptor["artifactType"] = artifact_type
        if parsed.annotations:
            descriptor["annotations"] = parsed.annotations
        found.append(descriptor)
    return found
