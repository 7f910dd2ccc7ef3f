"""``/v2/<name>/manifests/<reference>``: get, check, put and delete manifests by tag or digest."""

from __future__ import annotations

import typing as t

from werkzeug.wrappers import Response

from .. import routes
from ..context import Context
from ..errors import ManifestTooLarge
from ..errors import ManifestUnknown
from ..errors import Unsupported
from ..reference import Digest
from ..reference import looks_like_digest
from ..storage.manifests import DOCKER_LIST
from ..storage.manifests import DOCKER_MANIFEST
from ..storage.manifests import MAX_MANIFEST_SIZE
from ..storage.manifests import OCI_INDEX
from ..storage.manifests import OCI_MANIFEST
from ..storage.manifests import StoredManifest
from ..storage.manifests import parse_stored
from .common import body_chunks
from .common import if_none_match

if t.TYPE_CHECKING:
    from ..config import Config


def _pack_rules(config: Config) -> bool:
    """Whether ``validation.packs`` switches the pack hooks on: only then are they imported, since they
    bring jsonschema and tarfile (tens of milliseconds of every registry's start-up)."""
    settings = config.validation.packs
    return settings.enabled or settings.floatingtags


def dispatch(ctx: Context, name: str, reference: str) -> Response:
    # The app has checked ``reference``: a tag, or a digest this registry can verify.
    method = ctx.request.method
    if method == "PUT":
        return put_manifest(ctx, name, reference)
    if method == "DELETE":
        return delete_manifest(ctx, name, reference)
    return get_manifest(ctx, name, reference)


def get_manifest(ctx: Context, name: str, reference: str) -> Response:
    manifest = ctx.registry.get_manifest(name, reference)
    digest = str(manifest.digest)
    etags = if_none_match(ctx.request)
    if ctx.notifier is not None and digest not in etags:
        # Before the Accept check, as distribution notifies once storage returned the manifest, even
        # when it then answers 404 to a client that does not accept its type.
        tag = None if looks_like_digest(reference) else reference
        ctx.notifier.manifest_pulled(name, digest, manifest.media_type, manifest.content, tag)
    manifest = _negotiate(ctx, name, reference, manifest)
    headers = {
        "Content-Type": manifest.media_type,
        "Docker-Content-Digest": str(manifest.digest),
        "ETag": f'"{manifest.digest}"',
        "Content-Length": str(len(manifest.content)),
    }
    if str(manifest.digest) in etags:
        return Response(status=304, headers=headers)
    # Werkzeug sends no body for HEAD but keeps the headers, Content-Length included.
    return Response(manifest.content, headers=headers)


def _accepted_types(ctx: Context) -> set[str]:
    # Straight from the environ: servers join repeated Accept headers with commas, and reading the
    # environ skips building a header view on every manifest request.
    header = ctx.request.environ.get("HTTP_ACCEPT", "")
    return {item.split(";")[0].strip() for item in header.split(",")}


def _negotiate(ctx: Context, name: str, reference: str, manifest: StoredManifest) -> StoredManifest:
    """Apply distribution's Accept rules: OCI types only to clients that accept them, and a Docker
    manifest list asked for by tag without accepting lists answered with its linux/amd64 image."""
    accepted = _accepted_types(ctx)
    media_type = manifest.media_type
    if media_type == OCI_MANIFEST and OCI_MANIFEST not in accepted:
        raise ManifestUnknown(
            {"reference": reference},
            message="OCI manifest found, but accept header does not support OCI manifests",
        )
    if media_type == OCI_INDEX and OCI_INDEX not in accepted:
        raise ManifestUnknown(
            {"reference": reference},
            message="OCI index found, but accept header does not support OCI indexes",
        )
    if media_type == DOCKER_LIST and DOCKER_LIST not in accepted and not looks_like_digest(reference):
        return _platform_image(ctx, name, reference, manifest, accepted)
    return manifest


def _platform_image(
    ctx: Context, name: str, reference: str, manifest_list: StoredManifest, accepted: set[str]
) -> StoredManifest:
    """What distribution serves for a Docker manifest list asked for by tag by a client that does not
    name the list type: its linux/amd64 image, 404 when it has none.

    A schema 2 image for a client that does not name schema 2 either (``*/*``, no Accept, only OCI
    types) distribution rewrites as a signed schema 1 manifest, with 200. There is no schema 1 here:
    the list is served as stored, as a schema 2 manifest asked for by tag is served whatever the Accept.
    """
    for os_name, architecture, child in parse_stored(manifest_list.content).platforms:
        if (os_name, architecture) == ("linux", "amd64"):
            chosen = ctx.registry.manifests.get(name, child)
            if chosen.media_type == DOCKER_MANIFEST and DOCKER_MANIFEST not in accepted:
                return manifest_list
            return chosen
    raise ManifestUnknown({"reference": reference}, message="no linux/amd64 manifest in list")


def put_manifest(ctx: Context, name: str, reference: str) -> Response:
    # One read() returns what one recv() got (64 KiB or so on loopback): read until the end.
    received = bytearray()
    for chunk in body_chunks(ctx.request):
        received += chunk
        if len(received) > MAX_MANIFEST_SIZE:
            raise ManifestTooLarge({"limit": MAX_MANIFEST_SIZE}, message="manifest is larger than 4 MiB")
    content = bytes(received)
    content_type = ctx.request.headers.get("Content-Type")
    pack_rules = _pack_rules(ctx.config)
    if pack_rules:
        from ..packs import hooks as packs

        packs.before_put(ctx.registry, ctx.config, name, reference, content, content_type)
    digest, parsed = ctx.registry.put_manifest(name, reference, content, content_type)
    if pack_rules:
        from ..packs import hooks as packs

        packs.after_change(ctx.registry, ctx.config, name)
    headers = {
        "Location": ctx.url_for(routes.MANIFEST, name=name, reference=str(digest)),
        "Docker-Content-Digest": str(digest),
        "Content-Length": "0",
    }
    if parsed.subject is not None:
        headers["OCI-Subject"] = str(parsed.subject)
    if ctx.notifier is not None:
        tag = None if looks_like_digest(reference) else reference
        ctx.notifier.manifest_pushed(name, str(digest), parsed.media_type, content, tag)
    return Response(status=201, headers=headers)


def delete_manifest(ctx: Context, name: str, reference: str) -> Response:
    if not ctx.config.storage.delete_enabled:
        raise Unsupported({"reason": "deletes are disabled: storage.delete.enabled is false"})
    pack_rules = _pack_rules(ctx.config)
    if pack_rules:
        from ..packs import hooks as packs

        packs.before_delete(ctx.config, name, reference)
    if ctx.notifier is None:
        ctx.registry.delete_manifest(name, reference)
    elif looks_like_digest(reference):
        # The tags that go with the manifest are only known before it goes.
        tags = ctx.registry.tags.tags_for(name, Digest.parse(reference))
        ctx.registry.delete_manifest(name, reference)
        ctx.notifier.manifest_deleted(name, reference, tags)
    else:
        ctx.registry.delete_manifest(name, reference)
        ctx.notifier.tag_deleted(name, reference)
    if pack_rules:
        from ..packs import hooks as packs

        packs.after_change(ctx.registry, ctx.config, name)
    return Response(status=202, headers={"Content-Length": "0"})
