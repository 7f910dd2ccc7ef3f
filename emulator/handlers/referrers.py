"""``/v2/<name>/referrers/<digest>``: the manifests whose ``subject`` is that digest."""

from __future__ import annotations

from werkzeug.wrappers import Response

from ..context import Context
from ..context import json_response
from ..reference import Digest
from ..storage.manifests import OCI_INDEX


def list_referrers(ctx: Context, name: str, digest: Digest) -> Response:
    found = ctx.registry.referrers(name, digest)
    artifact_type = ctx.request.args.get("artifactType")
    if artifact_type:
        found = [d for d in found if d.get("artifactType") == artifact_type]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": found}
    response = json_response(index)
    # The spec compares this Content-Type exactly, so no charset parameter.
    response.headers["Content-Type"] = OCI_INDEX
    if artifact_type:
        response.headers["OCI-Filters-Applied"] = "artifactType"
    return response
