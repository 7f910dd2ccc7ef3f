"""``registry pack ...``: the documented ``spectro pack`` verbs, over the OCI API of any registry.

Palette's OCI pack registries hold each pack as an ``oras`` artifact: ``tar -czf NAME-VERSION.tar.gz
<pack-dir>`` pushed with ``oras push <host>/<prefix>/spectro-packs/archive/<name>:<version>
NAME-VERSION.tar.gz`` (ORAS v1.0.0 in the docs). :func:`push_pack` pushes what oras pushes for one file:
an OCI image manifest whose config is the empty ``{}`` of type ``application/vnd.unknown.config.v1+json``
and whose single layer is the archive, of type ``application/vnd.oci.image.layer.v1.tar``, titled with the
file's name. So packs pushed here pull with oras and the other way round.

The verbs (``spectro pack build`` makes a pack from a Helm chart; ours archives a pack directory):

- ``pack build DIR -o ARCHIVE``: check the pack (:func:`emulator.packs.check`), then archive it;
- ``pack push DIR_OR_ARCHIVE --registry URL [--prefix P] [--force]``: a version that exists is kept
  unless ``--force``;
- ``pack ls --registry URL [--prefix P] [--name N]``;
- ``pack pull NAME[:VERSION|@DIGEST] DIR --registry URL [--extract]``: no version means the highest
  release version;
- ``pack tag add NAME:VERSION TAG [--group G]`` and ``pack tag delete NAME:TAG``.

Every failure is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import tarfile
import tempfile
import typing as t
from pathlib import Path

from .ociclient import OCI_MANIFEST
from .ociclient import Client
from .ociclient import RegistryError
from .ociclient import file_digest

__all__ = [
    "ARCHIVE_PATH",
    "PackError",
    "PushedPack",
    "add_parser",
    "add_tag",
    "check_pack",
    "delete_tag",
    "list_packs",
    "pull_pack",
    "push_pack",
    "repository_for",
    "run",
    "write_archive",
]

#: The path Palette requires in every pack repository: ``<prefix>/spectro-packs/archive/<name>``.
ARCHIVE_PATH = "spectro-packs/archive"
#: What ``oras push`` gives one file: the manifest, its empty config, the file's layer and its title.
ORAS_CONFIG = "application/vnd.unknown.config.v1+json"
ORAS_LAYER = "application/vnd.oci.image.layer.v1.tar"
TITLE = "org.opencontainers.image.title"
#: The titles of a pack archive among an artifact's layers.
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
_EMPTY_CONFIG = b"{}"


class PackError(Exception):
    """A pack that cannot be pushed or built as asked: the message is one line."""


@dataclasses.dataclass(frozen=True)
class PushedPack:
    """What :func:`push_pack` stored."""

    name: str
    version: str
    repository: str
    #: The digest of the manifest, of the archive layer, and of the empty config.
    digest: str
    layer: str
    config: str
    #: The archive's file name: the layer's title.
    title: str
    #: ``REPOSITORY:VERSION``, the reference ``oras pull <host>/...`` takes.
    reference: str


def repository_for(name: str, prefix: str = "") -> str:
    """``<prefix>/spectro-packs/archive/<name>`` (no leading slash without a prefix)."""
    return "/".join(part for part in (prefix.strip("/"), ARCHIVE_PATH, name) if part)


def write_archive(pack_dir: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Archive ``pack_dir`` as ``tar -czf TARGET <pack-dir>`` does: one top directory, the pack's
    folder name, holding its files (symbolic links stored as links, for the check to judge)."""
    source = Path(pack_dir)
    if not source.is_dir():
        raise PackError(f"{source}: not a directory")
    target = Path(target)
    with tarfile.open(target, "w:gz") as archive:
        archive.add(source, arcname=source.resolve().name)
    return target


def _identity(source: Path) -> tuple[str, str]:
    """The pack's ``name`` and ``version`` from its ``pack.json``, read safely from a directory or an
    archive."""
    from .packs import read_pack

    pack = read_pack(source)
    document = pack.pack_json if isinstance(pack.pack_json, dict) else {}
    name, version = document.get("name"), document.get("version")
    if not isinstance(name, str) or not name or not isinstance(version, str) or not version:
        found = "; ".join(str(problem) for problem in pack.problems)
        raise PackError(f"{source}: pack.json gives no name and version" + (f" ({found})" if found else ""))
    return name, version


def check_pack(source: str | os.PathLike[str]) -> None:
    """Raise :class:`PackError` listing every problem of the pack (a directory or an archive)."""
    from .packs import check

    problems = check(source)
    if problems:
        listed = "; ".join(str(problem) for problem in problems)
        raise PackError(f"{os.fspath(source)}: {len(problems)} problem(s): {listed}")


def push_pack(
    client: Client,
    source: str | os.PathLike[str],
    *,
    prefix: str = "",
    force: bool = False,
) -> PushedPack:
    """Push a pack directory (archived first, as ``NAME-VERSION.tar.gz``) or a ``.tar.gz`` archive as
    oras pushes a file, under ``<prefix>/spectro-packs/archive/<name>:<version>``.

    :param force: replace a version the registry has; without it, such a push fails before any upload.
    """
    path = Path(source)
    name, version = _identity(path)
    repository = repository_for(name, prefix)
    if not force and client.has_manifest(repository, version):
        raise PackError(f"{repository}:{version} exists already: --force replaces it")
    with tempfile.TemporaryDirectory(prefix="pax-pack-") as scratch:
        if path.is_dir():
            archive = write_archive(path, Path(scratch) / f"{name}-{version}.tar.gz")
        else:
            archive = path
        layer, size = file_digest(archive)
        config = f"sha256:{hashlib.sha256(_EMPTY_CONFIG).hexdigest()}"
        # Blobs the registry has already are not sent again, as oras skips them.
        if not client.has_blob(repository, config):
            client.push_blob(repository, _EMPTY_CONFIG, digest=config)
        if not client.has_blob(repository, layer):
            with open(archive, "rb") as content:
                client.push_blob(repository, content, digest=layer)
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": ORAS_CONFIG, "digest": config, "size": len(_EMPTY_CONFIG)},
            "layers": [
                {
                    "mediaType": ORAS_LAYER,
                    "digest": layer,
                    "size": size,
                    "annotations": {TITLE: archive.name},
                }
            ],
        }
        manifest = json.dumps(document, indent=2).encode()
        digest = client.push_manifest(repository, version, manifest, OCI_MANIFEST)
    return PushedPack(
        name, version, repository, digest, layer, config, archive.name, f"{repository}:{version}"
    )


def _split_reference(reference: str) -> tuple[str, str | None]:
    """``NAME:TAG`` or ``NAME@DIGEST`` into the name and the tag or digest (``None`` when absent)."""
    if "@" in reference:
        name, _, digest = reference.partition("@")
        return name, digest
    name, _, tag = reference.rpartition(":") if ":" in reference else (reference, "", "")
    return name, tag or None


def _archive_layer(manifest: bytes, where: str) -> tuple[str, str]:
    """The digest and title of the pack archive among a manifest's layers: the one titled ``*.tar.gz``
    or ``*.tgz``, else the only layer (the rule the emulator's pack check uses)."""
    try:
        document = json.loads(manifest)
        layers = [layer for layer in document.get("layers") or [] if isinstance(layer, dict)]
    except (ValueError, AttributeError):
        raise PackError(f"{where}: the manifest is not an OCI image manifest") from None
    titled = [layer for layer in layers if _title(layer).endswith(ARCHIVE_SUFFIXES)]
    chosen = titled or layers
    if len(chosen) != 1:
        raise PackError(f"{where}: {len(layers)} layers, none of them a single pack archive")
    layer = chosen[0]
    digest = str(layer.get("digest", ""))
    # Only a plain file name is written: a title is the pusher's to choose, "../x" included.
    title = os.path.basename(_title(layer))
    if title in ("", ".", ".."):
        title = f"{digest.partition(':')[2][:12] or 'pack'}.tar.gz"
    return digest, title


def _title(layer: dict[str, t.Any]) -> str:
    annotations = layer.get("annotations")
    return str(annotations.get(TITLE) or "") if isinstance(annotations, dict) else ""


def _highest_version(tags: t.Iterable[str]) -> str | None:
    """The highest release version among ``tags`` without a group (``1.28.3``, not ``lts__1.29.0``)."""
    from .packs import parse_tag

    versions = [v for v in map(parse_tag, tags) if v is not None and v.is_release and v.group is None]
    return max(versions, key=lambda v: v.sort_key()).tag if versions else None


def pull_pack(
    client: Client,
    reference: str,
    target_dir: str | os.PathLike[str],
    *,
    prefix: str = "",
    extract: bool = False,
) -> Path:
    """Download a pack's archive into ``target_dir`` under its title (as ``oras pull`` does), and return
    its path; with ``extract``, unpack it there too (tar's ``data`` filter: nothing lands outside)."""
    name, ref = _split_reference(reference)
    repository = repository_for(name, prefix)
    if ref is None:
        ref = _highest_version(client.tags(repository))
        if ref is None:
            raise PackError(f"{repository}: no release version to pull")
    manifest, _, _ = client.get_manifest(repository, ref)
    digest, title = _archive_layer(manifest, f"{repository}:{ref}")
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    archive = target / title
    client.pull_blob(repository, digest, archive)
    if extract:
        try:
            with tarfile.open(archive, "r:gz") as opened:
                opened.extractall(target, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise PackError(f"{archive}: cannot extract: {e}") from None
    return archive


def _tag_order(tag: str) -> tuple[str, int, t.Any, str]:
    """Tags by group, versions in semantic version order within it, other tags (``latest``) last."""
    from .packs import parse_tag

    version = parse_tag(tag)
    if version is None:
        return ("\uffff", 1, (), tag)
    return (version.group or "", 0, version.sort_key(), tag)


def list_packs(client: Client, *, prefix: str = "", name: str | None = None) -> list[tuple[str, list[str]]]:
    """Each pack under ``<prefix>/spectro-packs/archive/`` and its tags, in version order. With ``name``,
    only that pack (from its tag list alone: no catalog needed)."""
    if name is not None:
        names = [name]
    else:
        base = repository_for("", prefix) + "/"
        names = sorted(
            repository[len(base) :]
            for repository in client.catalog()
            if repository.startswith(base) and "/" not in repository[len(base) :]
        )
    listed = []
    for pack in names:
        tags = client.tags(repository_for(pack, prefix))
        if not tags and name is not None:
            raise PackError(f"{repository_for(pack, prefix)}: no such pack")
        listed.append((pack, sorted(tags, key=_tag_order)))
    return listed


def add_tag(client: Client, reference: str, label: str, *, group: str | None = None, prefix: str = "") -> str:
    """Tag the manifest of ``NAME:VERSION`` (or ``NAME@DIGEST``) with ``[GROUP__]LABEL``; returns the tag."""
    name, ref = _split_reference(reference)
    if ref is None:
        raise PackError(f"{reference}: give NAME:VERSION or NAME@DIGEST")
    repository = repository_for(name, prefix)
    content, media_type, _ = client.get_manifest(repository, ref)
    tag = f"{group}__{label}" if group else label
    client.push_manifest(repository, tag, content, media_type or OCI_MANIFEST)
    return tag


def delete_tag(client: Client, reference: str, *, prefix: str = "") -> None:
    """Delete the tag of ``NAME:TAG``: the registry must allow deleting by tag (distribution 2.8 does
    not; the emulator does with deletes enabled)."""
    name, ref = _split_reference(reference)
    if ref is None or ref.startswith("sha256:"):
        raise PackError(f"{reference}: give NAME:TAG")
    try:
        client.delete_manifest(repository_for(name, prefix), ref)
    except RegistryError as e:
        # What distribution 2.8 answers (it deletes manifests by digest only), and what the spec allows.
        if e.status == 405 or (e.status == 400 and {"DIGEST_INVALID", "UNSUPPORTED"} & set(e.codes)):
            raise PackError(f"the registry does not delete tags: {e}") from None
        raise


# -- the command line ---------------------------------------------------------------------------------


def _environment(name: str) -> str | None:
    return os.environ.get(name) or None


def _registry_options(parser: argparse.ArgumentParser) -> None:
    # Named and defaulted like the conformance suite's --pax-registry-* options, without the prefix.
    parser.add_argument(
        "--registry",
        "-r",
        default=_environment("PAX_REGISTRY_URL"),
        metavar="URL",
        help="registry: http(s)://HOST:PORT, or HOST:PORT for HTTPS (env PAX_REGISTRY_URL)",
    )
    parser.add_argument(
        "--username", default=_environment("PAX_REGISTRY_USERNAME"), help="env PAX_REGISTRY_USERNAME"
    )
    parser.add_argument(
        "--password", default=_environment("PAX_REGISTRY_PASSWORD"), help="env PAX_REGISTRY_PASSWORD"
    )
    parser.add_argument(
        "--cacert",
        default=_environment("PAX_REGISTRY_CACERT"),
        metavar="PEM",
        help="CA bundle that verifies the registry (env PAX_REGISTRY_CACERT)",
    )
    parser.add_argument("--client-cert", default=_environment("PAX_REGISTRY_CLIENT_CERT"), metavar="PEM")
    parser.add_argument("--client-key", default=_environment("PAX_REGISTRY_CLIENT_KEY"), metavar="PEM")
    parser.add_argument(
        "--insecure",
        "-i",
        action="store_true",
        help="no certificate verification; for HOST:PORT, plain HTTP if the registry has no TLS",
    )
    parser.add_argument(
        "--prefix",
        "-p",
        default="",
        help="base path of the pack repositories: PREFIX/spectro-packs/archive/NAME",
    )


def add_parser(commands: t.Any) -> None:
    """Add ``pack`` and its verbs to the ``registry`` command's subparsers."""
    pack = commands.add_parser(
        "pack",
        help="build, push, list, pull and tag packs on any OCI registry",
        description="The spectro pack verbs over the OCI API: packs live under "
        "PREFIX/spectro-packs/archive/NAME:VERSION as oras pushes a NAME-VERSION.tar.gz file.",
    )
    verbs = pack.add_subparsers(dest="verb", required=True)
    build = verbs.add_parser("build", help="check a pack directory and archive it")
    build.add_argument("dir", help="pack directory (pack.json, values.yaml, logo.png, ...)")
    build.add_argument("-o", "--output", help="archive to write (default NAME-VERSION.tar.gz here)")
    push = verbs.add_parser("push", help="push a pack directory or archive")
    push.add_argument("source", help="pack directory or NAME-VERSION.tar.gz")
    push.add_argument("--force", "-f", action="store_true", help="replace a version the registry has")
    push.add_argument(
        "--skip-validation", action="store_true", help="push without checking the pack here first"
    )
    _registry_options(push)
    ls = verbs.add_parser("ls", help="list packs and their versions")
    ls.add_argument("--name", "-n", help="only this pack")
    _registry_options(ls)
    pull = verbs.add_parser("pull", help="download a pack's archive")
    pull.add_argument("reference", help="NAME[:VERSION|@DIGEST]; no version: the highest release")
    pull.add_argument("dir", help="directory to write the archive to")
    pull.add_argument("--extract", "-x", action="store_true", help="also unpack the archive there")
    _registry_options(pull)
    tag = verbs.add_parser("tag", help="add or delete a pack's tags")
    tag_verbs = tag.add_subparsers(dest="tag_verb", required=True)
    tag_add = tag_verbs.add_parser("add", help="tag NAME:VERSION with [GROUP__]LABEL")
    tag_add.add_argument("reference", help="NAME:VERSION or NAME@DIGEST")
    tag_add.add_argument("label")
    tag_add.add_argument("--group", "-g", help="tag GROUP__LABEL, as lts__14.4.3")
    _registry_options(tag_add)
    tag_delete = tag_verbs.add_parser("delete", help="delete the tag of NAME:TAG")
    tag_delete.add_argument("reference", help="NAME:TAG")
    _registry_options(tag_delete)


def _client(args: argparse.Namespace) -> Client:
    if not args.registry:
        raise PackError("--registry URL is required (or PAX_REGISTRY_URL)")
    return Client(
        args.registry,
        username=args.username,
        password=args.password,
        cacert=args.cacert,
        client_cert=args.client_cert,
        client_key=args.client_key,
        insecure=args.insecure,
        user_agent="pax-registry-pack",
    )


def _build(args: argparse.Namespace) -> None:
    source = Path(args.dir)
    if not source.is_dir():
        raise PackError(f"{source}: not a directory")
    check_pack(source)
    name, version = _identity(source)
    target = Path(args.output or f"{name}-{version}.tar.gz")
    write_archive(source, target)
    print(target)


def _push(args: argparse.Namespace) -> None:
    if not os.path.exists(args.source):
        raise PackError(f"{args.source}: no such file or directory")
    if not args.skip_validation:
        check_pack(args.source)
    pushed = push_pack(_client(args), args.source, prefix=args.prefix, force=args.force)
    print(f"{pushed.reference} {pushed.digest}")
    print(f"layer {pushed.layer} {pushed.title}")
    print(f"config {pushed.config}")


def _ls(args: argparse.Namespace) -> None:
    for name, tags in list_packs(_client(args), prefix=args.prefix, name=args.name):
        print(f"{name}\t{' '.join(tags)}")


def _pull(args: argparse.Namespace) -> None:
    print(pull_pack(_client(args), args.reference, args.dir, prefix=args.prefix, extract=args.extract))


def _tag(args: argparse.Namespace) -> None:
    client = _client(args)
    if args.tag_verb == "add":
        print(add_tag(client, args.reference, args.label, group=args.group, prefix=args.prefix))
    else:
        delete_tag(client, args.reference, prefix=args.prefix)


_VERBS: dict[str, t.Callable[[argparse.Namespace], None]] = {
    "build": _build,
    "push": _push,
    "ls": _ls,
    "pull": _pull,
    "tag": _tag,
}


def run(args: argparse.Namespace) -> int:
    """Run the verb ``args`` names; a failure is one line on stderr and status 1."""
    try:
        _VERBS[args.verb](args)
    except (PackError, RegistryError) as e:
        print(f"pack {args.verb}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        # A file the command names (the pack, the output, a certificate) that cannot be read or written.
        where = f"{e.filename}: " if e.filename else ""
        print(f"pack {args.verb}: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    return 0
