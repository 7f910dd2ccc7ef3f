"""What a pack registry adds to manifest PUT and DELETE under ``.../spectro-packs/archive/<name>``.

Switched on by two keys of ours (``validation.packs.enabled`` and ``validation.packs.floatingtags``);
with both off, nothing here runs. The manifest handler calls :func:`before_put` before anything is
stored, :func:`before_delete` before a delete, and :func:`after_change` once storage succeeded.

Which manifest is a pack (the registry server's own media types are not published, so this is an
inference from the OCI pack docs, which push with ``oras push <repo>:<version> <name>-<version>.tar.gz``):
an image manifest in a repository whose path ends in ``spectro-packs/archive/<name>``, pushed by
tag or by digest, with no ``subject`` (a manifest with a subject is an attached artifact, such as a
signature, not a pack). Its pack archive is the one layer whose ``org.opencontainers.image.title``
ends in ``.tar.gz`` or ``.tgz``, or else its only layer, whatever its media type (oras-py gives files
``application/vnd.oci.image.layer.v1.tar``, oras-go the same). The archive is read from storage as a
stream and checked with :func:`emulator.packs.validate.check_files`; the tag must be pack.json's
``version`` (after any ``group__`` prefix) and the repository's last segment its ``name``.

A bad pack is refused with ``MANIFEST_INVALID`` (400), its ``detail`` listing every problem; the
manifest is neither stored nor linked nor tagged (blobs stay, as distribution leaves unreferenced
blobs). Parent tags are the registry's: pushing or deleting one is refused with ``TAG_INVALID`` (400),
the nearest distribution code; the pack CLI's docs say they "can not be deleted".
"""

from __future__ import annotations

import collections
import json
import re
import threading
import typing as t
from dataclasses import dataclass

from ..reference import Digest
from ..reference import InvalidDigest
from ..reference import looks_like_digest
from ..storage.errors import ManifestInvalid
from ..storage.errors import TagInvalid
from ..storage.manifests import IMAGE_TYPES
from ..storage.manifests import parse
from .archive import DEFAULT_LIMITS
from .archive import Limits
from .archive import read_archive
from .parenttags import relink
from .problems import PackProblem
from .validate import check_files
from .versions import is_parent_tag
from .versions import parse_tag

if t.TYPE_CHECKING:
    from ..config import Config
    from ..storage.registry import Registry

#: A pack repository: ``[<prefix>/]spectro-packs/archive/<name>``.
_PACK_REPOSITORY = re.compile(r"(?:.+/)?spectro-packs/archive/(?P<pack>[^/]+)")
TITLE_ANNOTATION = "org.opencontainers.image.title"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
#: How much of a pushed pack is read (module-level so a test can lower it in-process).
LIMITS = DEFAULT_LIMITS
#: Problems named one by one in the error's message; the detail has them all.
MESSAGE_PROBLEMS = 5


def pack_name(repository: str) -> str | None:
    """The pack a repository holds (its last segment), or ``None`` outside ``spectro-packs/archive/``."""
    match = _PACK_REPOSITORY.fullmatch(repository)
    return match["pack"] if match else None


def before_put(
    registry: Registry,
    config: Config,
    name: str,
    reference: str,
    content: bytes,
    content_type: str | None,
    limits: Limits | None = None,
) -> None:
    """Refuse a parent tag, or a bad pack, before anything of the manifest is stored."""
    settings = config.validation.packs
    pack = pack_name(name)
    if pack is None or not (settings.enabled or settings.floatingtags):
        return
    is_tag = not looks_like_digest(reference)
    if settings.floatingtags and is_tag and is_parent_tag(reference):
        raise TagInvalid(
            {"tag": reference},
            message=f"{reference} is a parent tag, maintained by the registry: push a version instead",
        )
    if settings.enabled:
        problems = pack_problems(
            registry, name, pack, reference if is_tag else None, content, content_type, limits or LIMITS
        )
        if problems:
            raise ManifestInvalid(
                {"problems": [{"path": p.path, "rule": p.rule, "message": p.message} for p in problems]},
                message=invalid_message(problems),
            )


def invalid_message(problems: list[PackProblem]) -> str:
    named = "; ".join(str(p) for p in problems[:MESSAGE_PROBLEMS])
    more = len(problems) - MESSAGE_PROBLEMS
    return f"invalid pack: {named}" + (f"; and {more} more" if more > 0 else "")


def pack_problems(
    registry: Registry,
    name: str,
    pack: str,
    tag: str | None,
    content: bytes,
    content_type: str | None,
    limits: Limits,
) -> list[PackProblem]:
    """What is wrong with the pack a manifest pushes; ``[]`` for a good one, or for a manifest that is
    not a pack or that storage will refuse anyway (malformed, blobs missing), with its own error."""
    try:
        parsed = parse(content, content_type)
    except ManifestInvalid:
        return []
    if parsed.subject is not None:
        return []
    if parsed.media_type not in IMAGE_TYPES:
        return [PackProblem("manifest", "pack-manifest", "a pack is an image manifest, not an index")]
    layers = [layer for layer in json.loads(content).get("layers", []) if isinstance(layer, dict)]
    layer = _archive_layer(layers)
    if layer is None:
        return [
            PackProblem(
                "manifest",
                "pack-manifest",
                f"a pack manifest has one pack archive layer (titled *.tar.gz), found {len(layers)} layers",
            )
        ]
    try:
        digest = Digest.parse(str(layer.get("digest", "")))
    except InvalidDigest:
        return []
    if not registry.blobs.is_linked(name, digest):
        return []
    size = layer.get("size")
    if isinstance(size, int) and size > limits.compressed:
        return [PackProblem("archive", "size", f"the archive is larger than {limits.compressed} bytes")]
    checked = _check_archive(registry, name, digest, limits)
    problems = list(checked.problems)
    if checked.pack_json is not None:
        declared_name = checked.pack_json.get("name")
        if isinstance(declared_name, str) and declared_name and declared_name != pack:
            problems.append(
                PackProblem(
                    "$.name", "repository", f"the pack is {declared_name!r} but the repository is {pack!r}"
                )
            )
        version = checked.pack_json.get("version")
        label = _label(tag) if tag is not None else None
        if label is not None and isinstance(version, str) and version and version != label:
            problems.append(
                PackProblem("$.version", "tag", f"the pack is version {version!r} but is pushed as {tag!r}")
            )
    return problems


@dataclass(frozen=True)
class _Checked:
    """What the hooks keep of a checked archive: its problems, and its pack.json's name and version."""

    problems: tuple[PackProblem, ...]
    pack_json: dict[str, t.Any] | None


#: Archives checked lately, by digest: a blob is immutable, so its problems are too, and a client
#: pushing manifest after manifest that point at one zip bomb (two seconds of gunzip to reach the
#: 2 GiB cap) has it read once. Results with many problems are not kept, to bound the memory.
CHECKED_ARCHIVES = 256
_KEPT_PROBLEMS = 100
_checked: collections.OrderedDict[tuple[Digest, Limits], _Checked] = collections.OrderedDict()
_checked_lock = threading.Lock()


def _check_archive(registry: Registry, name: str, digest: Digest, limits: Limits) -> _Checked:
    key = (digest, limits)
    with _checked_lock:
        if key in _checked:
            _checked.move_to_end(key)
            return _checked[key]
    with registry.blobs.open(name, digest) as stream:
        result = check_files(read_archive(stream, limits))
    document = result.pack_json
    kept = None if document is None else {k: document.get(k) for k in ("name", "version")}
    checked = _Checked(result.problems, kept)
    if len(checked.problems) <= _KEPT_PROBLEMS:
        with _checked_lock:
            _checked[key] = checked
            while len(_checked) > CHECKED_ARCHIVES:
                _checked.popitem(last=False)
    return checked


def _label(tag: str) -> str:
    version = parse_tag(tag)
    return version.label if version is not None else tag


def _archive_layer(layers: list[dict[str, t.Any]]) -> dict[str, t.Any] | None:
    titled = [
        layer
        for layer in layers
        if isinstance(layer.get("annotations"), dict)
        and str(layer["annotations"].get(TITLE_ANNOTATION, "")).endswith(ARCHIVE_SUFFIXES)
    ]
    if len(titled) == 1:
        return titled[0]
    if not titled and len(layers) == 1:
        return layers[0]
    return None


def before_delete(config: Config, name: str, reference: str) -> None:
    """Refuse deleting a parent tag: it follows the versions, so delete a version instead."""
    if not config.validation.packs.floatingtags or pack_name(name) is None:
        return
    if not looks_like_digest(reference) and is_parent_tag(reference):
        raise TagInvalid(
            {"tag": reference},
            message=f"{reference} is a parent tag, maintained by the registry: delete a version instead",
        )


def after_change(registry: Registry, config: Config, name: str) -> None:
    """Once a manifest is stored or deleted: move the repository's parent tags."""
    if config.validation.packs.floatingtags and pack_name(name) is not None:
        relink(registry, name)
