"""The route table, as data: every API path the registry answers, and the handler for each."""

from __future__ import annotations

import functools

from werkzeug.routing import BaseConverter
from werkzeug.routing import Map
from werkzeug.routing import Rule

#: Endpoint names, used by handlers to build ``Location`` URLs from the same table.
VERSION_CHECK = "version_check"
CATALOG = "catalog"
TAGS = "tags"
MANIFEST = "manifest"
BLOB = "blob"
UPLOAD_START = "upload_start"
UPLOAD = "upload"
REFERRERS = "referrers"

READ = ("GET", "HEAD")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class NameConverter(BaseConverter):
    """A repository name: any run of segments, whatever their characters (a line break too); its
    grammar is checked by the app, which answers ``NAME_INVALID`` instead of a bare 404."""

    regex = r"[^/][\s\S]*?"
    part_isolating = False


class SegmentConverter(BaseConverter):
    """One path segment, taken verbatim: the app checks it against the grammar of what it names."""

    regex = r"[^/]+"


def api_rules(root: str, api: str) -> list[Rule]:
    """Rules for one API root such as ``/v2`` or ``/v1``.

    Endpoints are named ``<api>.<endpoint>`` (``v2.blob``) so that ``Location`` URLs are built
    under the root the client used.
    """

    return [
        Rule(f"{root}/", endpoint=f"{api}.{VERSION_CHECK}", methods=None, strict_slashes=False),
        Rule(f"{root}/_catalog", endpoint=f"{api}.{CATALOG}", methods=READ),
        Rule(f"{root}/<name:name>/tags/list", endpoint=f"{api}.{TAGS}", methods=READ),
        Rule(
            f"{root}/<name:name>/manifests/<segment:reference>",
            endpoint=f"{api}.{MANIFEST}",
            methods=[*READ, "PUT", "DELETE"],
        ),
        Rule(f"{root}/<name:name>/blobs/uploads/", endpoint=f"{api}.{UPLOAD_START}", methods=["POST"]),
        Rule(
            f"{root}/<name:name>/blobs/uploads/<segment:upload_id>",
            endpoint=f"{api}.{UPLOAD}",
            methods=[*READ, "PATCH", "PUT", "DELETE"],
        ),
        Rule(
            f"{root}/<name:name>/blobs/<segment:digest>",
            endpoint=f"{api}.{BLOB}",
            methods=[*READ, "DELETE"],
        ),
        Rule(
            f"{root}/<name:name>/referrers/<segment:digest>",
            endpoint=f"{api}.{REFERRERS}",
            methods=READ,
        ),
    ]


@functools.lru_cache(maxsize=16)
def build_map(prefix: str) -> Map:
    """All routes: the v2 API under ``http.prefix``, and its pack-registry mirror under ``/v1``.

    Built once per prefix: a Map is only read once built, and building it is most of an in-process
    registry's start time."""
    root = prefix.rstrip("/")
    rules = api_rules(f"{root}/v2", "v2") + api_rules(f"{root}/v1", "v1")
    return Map(
        rules,
        converters={"name": NameConverter, "segment": SegmentConverter},
        merge_slashes=False,
        strict_slashes=False,
    )
