"""The only module that knows where things live in storage: it builds every path and reads every one back.

The layout is distribution's, so one storage root can be served by either registry. These are the paths
written here::

    /docker/registry/v2/
        blobs/<alg>/<hex[:2]>/<hex>/data
        repositories/<name>/
            _layers/<alg>/<hex>/link
            _manifests/revisions/<alg>/<hex>/link
            _manifests/tags/<tag>/current/link
            _manifests/tags/<tag>/index/<alg>/<hex>/link
            _uploads/<id>/data
            _uploads/<id>/startedat
    /scheduler-state.json        (a pull-through cache's expiry schedule, at the storage root)

A ``link`` file holds a digest string such as ``sha256:ab…`` with no newline. distribution also keeps
hash states beside an upload's data; none are written here (they live in memory, see ``uploads.py``),
and any found go with their upload.
"""

from __future__ import annotations

from ..reference import Digest

ROOT = "/docker/registry/v2"
REPOSITORIES = f"{ROOT}/repositories"
BLOBS = f"{ROOT}/blobs"

#: Directory names inside a repository; a path segment starting with "_" is never part of a name.
LAYERS, MANIFESTS, UPLOADS = "_layers", "_manifests", "_uploads"

#: A pull-through cache's expiry schedule, where distribution keeps it: at the root, outside ROOT.
SCHEDULER_STATE = "/scheduler-state.json"


def blob_dir(digest: Digest) -> str:
    return f"{BLOBS}/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def blob_data(digest: Digest) -> str:
    return f"{blob_dir(digest)}/data"


def repository(name: str) -> str:
    return f"{REPOSITORIES}/{name}"


def layer_link(name: str, digest: Digest) -> str:
    return _link(f"{repository(name)}/{LAYERS}/{digest.algorithm}/{digest.hex}")


def manifest_revisions(name: str) -> str:
    return f"{repository(name)}/{MANIFESTS}/revisions"


def manifest_revision(name: str, digest: Digest) -> str:
    """The directory of a manifest revision: deleting it unlinks the manifest from the repository."""
    return f"{manifest_revisions(name)}/{digest.algorithm}/{digest.hex}"


def manifest_revision_link(name: str, digest: Digest) -> str:
    return revision_link(manifest_revision(name, digest))


def revision_link(revision: str) -> str:
    """The link file of a revision directory, as listed under :func:`manifest_revisions`."""
    return _link(revision)


def tags(name: str) -> str:
    return f"{repository(name)}/{MANIFESTS}/tags"


def tag(name: str, tag: str) -> str:
    return f"{tags(name)}/{tag}"


def tag_current_link(name: str, tag_name: str) -> str:
    return _link(f"{tag(name, tag_name)}/current")


def tag_index_link(name: str, tag_name: str, digest: Digest) -> str:
    return _link(f"{tag(name, tag_name)}/index/{digest.algorithm}/{digest.hex}")


def uploads(name: str) -> str:
    return f"{repository(name)}/{UPLOADS}"


def upload(name: str, upload_id: str) -> str:
    return f"{uploads(name)}/{upload_id}"


def upload_data(name: str, upload_id: str) -> str:
    return f"{upload(name, upload_id)}/data"


def upload_started_at(name: str, upload_id: str) -> str:
    return upload_started_at_in(upload(name, upload_id))


def upload_started_at_in(upload: str) -> str:
    """The ``startedat`` file of an upload directory, as found by :func:`is_upload`."""
    return f"{upload}/startedat"


# -- reading paths back: what a listed or walked path stands for ---------------------------------------


def repository_name_of(path: str) -> str:
    """The repository name a directory under :data:`REPOSITORIES` stands for (``""`` for that root)."""
    return path[len(REPOSITORIES) + 1 :]


def is_repository_own(path: str) -> bool:
    """Whether a directory under a repository is one of its own (``_layers``, ``_manifests``, …)
    rather than part of a longer repository name."""
    return _leaf(path).startswith("_")


def is_layers(path: str) -> bool:
    """Whether ``path`` is a repository's ``_layers`` directory: its presence lists the repository."""
    return _leaf(path) == LAYERS


def revision_digest_of(revision: str) -> Digest:
    """The digest a revision directory, as listed under :func:`manifest_revisions`, is filed under."""
    return Digest(_leaf(_parent(revision)), _leaf(revision))


def tag_of(path: str) -> str:
    """The tag a directory listed under :func:`tags` stands for."""
    return _leaf(path)


def is_upload(path: str) -> bool:
    """Whether ``path`` (a directory under :data:`REPOSITORIES`) is an upload's directory."""
    return _leaf(_parent(path)) == UPLOADS


def upload_id_of(upload: str) -> str:
    """The id of an upload directory, as built by :func:`upload` or found by :func:`is_upload`."""
    return _leaf(upload)


def _link(directory: str) -> str:
    return f"{directory}/link"


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _leaf(path: str) -> str:
    return path.rpartition("/")[2]
