"""The only module that knows where things live in storage.

The layout is distribution's, so one storage root can be served by either registry::

    /docker/registry/v2/
        blobs/<alg>/<hex[:2]>/<hex>/data
        repositories/<name>/
            _layers/<alg>/<hex>/link
            _manifests/revisions/<alg>/<hex>/link
            _manifests/tags/<tag>/current/link
            _manifests/tags/<tag>/index/<alg>/<hex>/link
            _uploads/<id>/data
            _uploads/<id>/startedat
            _uploads/<id>/hashstates/<alg>/<offset>

A ``link`` file holds a digest string such as ``sha256:ab…`` with no newline.
"""

from __future__ import annotations

from ..reference import Digest

ROOT = "/docker/registry/v2"
REPOSITORIES = f"{ROOT}/repositories"
BLOBS = f"{ROOT}/blobs"

#: Directory names inside a repository; a path segment starting with "_" is never part of a name.
LAYERS, MANIFESTS, UPLOADS = "_layers", "_manifests", "_uploads"


def blob_dir(digest: Digest) -> str:
    return f"{BLOBS}/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def blob_data(digest: Digest) -> str:
    return f"{blob_dir(digest)}/data"


def layer_link(name: str, digest: Digest) -> str:
    return f"{REPOSITORIES}/{name}/{LAYERS}/{digest.algorithm}/{digest.hex}/link"


def manifest_revisions(name: str) -> str:
    return f"{REPOSITORIES}/{name}/{MANIFESTS}/revisions"


def manifest_revision_link(name: str, digest: Digest) -> str:
    return f"{manifest_revisions(name)}/{digest.algorithm}/{digest.hex}/link"


def tags(name: str) -> str:
    return f"{REPOSITORIES}/{name}/{MANIFESTS}/tags"


def tag(name: str, tag: str) -> str:
    return f"{tags(name)}/{tag}"


def tag_current_link(name: str, tag_name: str) -> str:
    return f"{tag(name, tag_name)}/current/link"


def tag_index_link(name: str, tag_name: str, digest: Digest) -> str:
    return f"{tag(name, tag_name)}/index/{digest.algorithm}/{digest.hex}/link"


def uploads(name: str) -> str:
    return f"{REPOSITORIES}/{name}/{UPLOADS}"


def upload(name: str, upload_id: str) -> str:
    return f"{uploads(name)}/{upload_id}"


def upload_data(name: str, upload_id: str) -> str:
    return f"{upload(name, upload_id)}/data"


def upload_started_at(name: str, upload_id: str) -> str:
    return f"{upload(name, upload_id)}/startedat"
