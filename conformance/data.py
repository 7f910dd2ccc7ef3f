"""Test data: blobs, image manifests, referrers artifacts, a Docker image and a pack logo.

Everything a run pushes is derived from one random run id, so digests are unique per run and two runs
against one registry never touch each other's content. Manifests carry fields the registry does not know
(a ``data`` field on the config descriptor, an unknown key on every descriptor): a registry must store the
bytes it was given, unknown fields included.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import io
import json
import random
import secrets
import struct
import tarfile
import typing as t
import zlib
from dataclasses import dataclass

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "DUMMY_DIGEST",
    "EMPTY_JSON",
    "ERROR_CODES",
    "INVALID_MANIFEST_NAME",
    "MANIFEST_ACCEPT",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Blob",
    "Manifest",
    "RunData",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

#: What a client that understands every manifest kind sends; distribution answers 404 for OCI content
#: that the ``Accept`` header does not list.
MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])

#: Referrers artifacts: two artifact types and the type of the index artifact.
ARTIFACT_TYPE_A = "application/vnd.pax.conformance.alpha"
ARTIFACT_TYPE_B = "application/vnd.pax.conformance.beta"
INDEX_ARTIFACT_TYPE = "application/vnd.pax.conformance.bundle"
ANNOTATION_KEY = "io.pax.conformance.test"

#: The key no registry knows; it must survive the round trip.
UNKNOWN_FIELD = "paxUnspecifiedField"

#: A digest nothing in the registry has (sha256 of ``hello world``).
DUMMY_DIGEST = "sha256:" + hashlib.sha256(b"hello world").hexdigest()
#: Neither a tag nor a digest: tags cannot start with a dot.
INVALID_MANIFEST_NAME = ".INVALID_MANIFEST_NAME"

#: Every code the distribution spec defines, plus the two legacy Docker codes it lets registries send.
ERROR_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
        "TAG_INVALID",
        "MANIFEST_UNVERIFIED",
    }
)


def digest_of(content: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:" + hashlib.new(algorithm, content).hexdigest()


def _json(document: t.Mapping[str, t.Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


class _Content:
    """What blobs and manifests are named by: the digest of their exact bytes, and their length."""

    content: bytes
    algorithm: str

    @property
    def digest(self) -> str:
        return digest_of(self.content, self.algorithm)

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass(frozen=True)
class Blob(_Content):
    """Bytes and the media type a descriptor gives them."""

    content: bytes
    media_type: str = "application/octet-stream"
    #: The digest algorithm it is pushed and named with.
    algorithm: str = "sha256"

    def descriptor(self, **extra: t.Any) -> dict[str, t.Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class Manifest(_Content):
    """A manifest's exact bytes and the ``Content-Type`` it is pushed with."""

    content: bytes
    media_type: str
    name: str = ""
    algorithm: str = "sha256"

    @property
    def document(self) -> dict[str, t.Any]:
        return t.cast(dict[str, t.Any], json.loads(self.content))

    @property
    def annotations(self) -> dict[str, str]:
        return t.cast(dict[str, str], self.document.get("annotations", {}))

    def descriptor(self) -> dict[str, t.Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}

    def referrer_descriptor(self) -> dict[str, t.Any]:
        """The descriptor the referrers API lists for this manifest (distribution-spec §Listing Referrers)."""
        document = self.document
        descriptor = self.descriptor()
        artifact_type = document.get("artifactType") or document.get("config", {}).get("mediaType")
        if artifact_type:
            descriptor["artifactType"] = artifact_type
        if document.get("annotations"):
            descriptor["annotations"] = document["annotations"]
        return descriptor


EMPTY_JSON = Blob(b"{}", OCI_EMPTY)


def image_manifest(
    config: Blob,
    layers: t.Sequence[Blob],
    *,
    name: str = "",
    media_type: bool = True,
    artifact_type: str | None = None,
    subject: Manifest | None = None,
    annotations: t.Mapping[str, str] | None = None,
    algorithm: str = "sha256",
) -> Manifest:
    """An OCI image manifest; ``media_type=False`` leaves the optional ``mediaType`` field out."""
    document: dict[str, t.Any] = {"schemaVersion": 2}
    if media_type:
        document["mediaType"] = OCI_MANIFEST
    if artifact_type:
        document["artifactType"] = artifact_type
    document["config"] = config.descriptor(
        data=base64.b64encode(config.content).decode(), **{UNKNOWN_FIELD: "config"}
    )
    document["layers"] = [layer.descriptor(**{UNKNOWN_FIELD: "layer"}) for layer in layers]
    if subject is not None:
        document["subject"] = subject.descriptor()
    if annotations:
        document["annotations"] = dict(annotations)
    return Manifest(_json(document), OCI_MANIFEST, name, algorithm)


def image_index(
    manifests: t.Sequence[Manifest],
    *,
    name: str = "",
    artifact_type: str | None = None,
    subject: Manifest | None = None,
    annotations: t.Mapping[str, str] | None = None,
    algorithm: str = "sha256",
) -> Manifest:
    document: dict[str, t.Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX}
    if artifact_type:
        document["artifactType"] = artifact_type
    document["manifests"] = [manifest.descriptor() for manifest in manifests]
    if subject is not None:
        document["subject"] = subject.descriptor()
    if annotations:
        document["annotations"] = dict(annotations)
    return Manifest(_json(document), OCI_INDEX, name, algorithm)


def _layer(run_id: str) -> tuple[Blob, str]:
    """A tiny gzip'd tar unique to the run, and its uncompressed digest (the config's ``diff_id``)."""
    payload = f"pax conformance run {run_id}\n".encode()
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo(f"pax-conformance/{run_id}.txt")
        info.size = len(payload)
        info.mtime = 0
        archive.addfile(info, io.BytesIO(payload))
    raw = tar_bytes.getvalue()
    return Blob(gzip.compress(raw, mtime=0), OCI_LAYER), digest_of(raw)


def _config(run_id: str, index: int, diff_id: str, media_type: str = OCI_CONFIG) -> Blob:
    document = {
        "architecture": "amd64",
        "os": "linux",
        "author": f"pax-conformance-{run_id}-{index}",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    return Blob(_json(document), media_type)


def png(rgb: tuple[int, int, int], text: str) -> bytes:
    """A 1x1 PNG of one colour with a ``tEXt`` comment (so every run's logo has its own digest)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(bytes([0, *rgb]))
    comment = b"Comment\x00" + text.encode()
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"tEXt", comment)
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class Referrers:
    """Artifacts whose ``subject`` is :attr:`subject` (six) or :attr:`missing_subject` (one).

    They cover each rule for a referrer's ``artifactType``: a manifest's own (``a_layer``), the config's
    media type when the manifest has none (``a_config``), an index's own (``index``), and none at all
    for an index without one (``untyped_index``).
    """

    subject: Manifest
    missing_subject: Manifest
    blob_a: Blob
    blob_b: Blob
    a_config: Manifest
    a_layer: Manifest
    index: Manifest
    b_config: Manifest
    b_layer: Manifest
    untyped_index: Manifest
    c: Manifest

    @property
    def of_subject(self) -> tuple[Manifest, ...]:
        return (self.a_config, self.a_layer, self.index, self.b_config, self.b_layer, self.untyped_index)

    @property
    def of_type_a(self) -> tuple[Manifest, ...]:
        return (self.a_config, self.a_layer)

    @property
    def manifests(self) -> tuple[Manifest, ...]:
        """Every artifact, the indexes first: each refers to two of the others."""
        return (
            self.index,
            self.untyped_index,
            self.a_config,
            self.a_layer,
            self.b_config,
            self.b_layer,
            self.c,
        )


def _referrers(run_id: str, rng: random.Random, subject: Manifest, missing_subject: Manifest) -> Referrers:
    blob_a = Blob(rng.randbytes(64), "application/vnd.pax.conformance.data")
    blob_b = Blob(rng.randbytes(64), "application/vnd.pax.conformance.data")

    def note(name: str) -> dict[str, str]:
        return {ANNOTATION_KEY: f"{name}-{run_id}"}

    def typed_pair(blob: Blob, artifact_type: str, name: str) -> tuple[Manifest, Manifest]:
        """Two artifacts of ``artifact_type`` about the subject, one for each way the spec lets an
        artifact say its type: its config's media type, and the ``artifactType`` field."""
        by_config = image_manifest(
            Blob(blob.content, artifact_type),
            [EMPTY_JSON],
            name=f"{name}-config",
            subject=subject,
            annotations=note(f"{name}-config"),
        )
        by_field = image_manifest(
            EMPTY_JSON,
            [blob],
            name=f"{name}-layer",
            artifact_type=artifact_type,
            subject=subject,
            annotations=note(f"{name}-layer"),
        )
        return by_config, by_field

    a_config, a_layer = typed_pair(blob_a, ARTIFACT_TYPE_A, "a")
    b_config, b_layer = typed_pair(blob_b, ARTIFACT_TYPE_B, "b")
    index = image_index(
        [a_config, a_layer],
        name="index",
        artifact_type=INDEX_ARTIFACT_TYPE,
        subject=subject,
        annotations=note("index"),
    )
    untyped_index = image_index(
        [b_config, b_layer], name="untyped-index", subject=subject, annotations=note("untyped-index")
    )
    c = image_manifest(
        EMPTY_JSON,
        [blob_b],
        name="c",
        artifact_type=ARTIFACT_TYPE_B,
        subject=missing_subject,
        annotations=note("c"),
    )
    return Referrers(
        subject,
        missing_subject,
        blob_a,
        blob_b,
        a_config,
        a_layer,
        index,
        b_config,
        b_layer,
        untyped_index,
        c,
    )


@dataclass(frozen=True)
class DockerImage:
    """A Docker schema 2 image and a manifest list that points at it for linux/amd64."""

    config: Blob
    layer: Blob
    manifest: Manifest
    manifest_list: Manifest


def _docker_image(run_id: str, layer: Blob, diff_id: str) -> DockerImage:
    config = _config(run_id, 99, diff_id, DOCKER_CONFIG)
    docker_layer = Blob(layer.content, DOCKER_LAYER)
    manifest = Manifest(
        _json(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": config.descriptor(),
                "layers": [docker_layer.descriptor()],
            }
        ),
        DOCKER_MANIFEST,
        "docker",
    )
    entry = {**manifest.descriptor(), "platform": {"architecture": "amd64", "os": "linux"}}
    manifest_list = Manifest(
        _json({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [entry]}), DOCKER_LIST, "list"
    )
    return DockerImage(config, docker_layer, manifest, manifest_list)


@dataclass(frozen=True)
class Sha512Image:
    """An image and an index over it, every digest sha512: pushed by digest only."""

    config: Blob
    layer: Blob
    manifest: Manifest
    index: Manifest

    @property
    def blobs(self) -> tuple[Blob, Blob]:
        return (self.config, self.layer)


def _sha512_image(run_id: str, layer: Blob, diff_id: str) -> Sha512Image:
    config = dataclasses.replace(_config(run_id, 512, diff_id), algorithm="sha512")
    layer512 = dataclasses.replace(layer, algorithm="sha512")
    manifest = image_manifest(config, [layer512], name="sha512", algorithm="sha512")
    index = image_index([manifest], name="sha512-index", algorithm="sha512")
    return Sha512Image(config, layer512, manifest, index)


#: What ``oras push`` gives a pack archive's config and its single layer (Palette's OCI pack registries).
ORAS_CONFIG = "application/vnd.unknown.config.v1+json"
ORAS_LAYER = "application/vnd.oci.image.layer.v1.tar"
TITLE = "org.opencontainers.image.title"


@dataclass(frozen=True)
class PackArchive:
    """A pack as Palette pushes it to an OCI registry: ``spectro-packs/archive/<name>:<version>``."""

    name: str
    version: str
    config: Blob
    archive: Blob
    manifest: Manifest

    @property
    def repository(self) -> str:
        return f"spectro-packs/archive/{self.name}"


def pack_tarball(name: str, version: str, *, valid: bool = True) -> bytes:
    """``tar -czf NAME-VERSION.tar.gz NAME-VERSION/`` of a manifest pack with the documented layout
    (``pack.json``, ``values.yaml``, ``logo.png``, ``README.md``, ``manifests/``). ``valid=False`` gives
    a ``layer`` outside the schema's values and no ``logo.png``: a registry that checks packs refuses it."""
    document = {
        "name": name,
        "displayName": f"Conformance {name}",
        "version": version,
        "layer": "addon" if valid else "database",
        "addonType": "system app",
        "kubeManifests": ["manifests/x.yaml"],
    }
    files = {
        "pack.json": _json(document),
        "values.yaml": b"pack:\n  namespace: pax-conformance\n",
        "README.md": f"# {name}\n".encode(),
        "manifests/x.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: pax-conformance\n",
    }
    if valid:
        files["logo.png"] = png((40, 120, 200), name)
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for file_name, payload in files.items():
            info = tarfile.TarInfo(f"{name}-{version}/{file_name}")
            info.size = len(payload)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(payload))
    return gzip.compress(tar_bytes.getvalue(), mtime=0)


def _pack_archive(run_id: str) -> PackArchive:
    name, version = f"pax-conformance-{run_id}", "1.0.0"
    config = Blob(b"{}", ORAS_CONFIG)
    layer = Blob(pack_tarball(name, version), ORAS_LAYER)
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor(annotations={TITLE: f"{name}-{version}.tar.gz"})],
    }
    return PackArchive(name, version, config, layer, Manifest(_json(document), OCI_MANIFEST, "pack-archive"))


@dataclass(frozen=True)
class RunData:
    """Everything one run pushes. Build it with :meth:`generate`."""

    run_id: str
    #: One config per workflow (pull 0 and 1, push 1, discovery 2, management 3, referrers subject 4).
    configs: tuple[Blob, ...]
    layer: Blob
    #: ``manifests[i]`` is config ``i`` plus :attr:`layer`.
    manifests: tuple[Manifest, ...]
    #: No ``mediaType`` field and no layers.
    empty_layer_manifest: Manifest
    #: Streamed upload and cross-repository mount.
    blob_a: Blob
    #: Chunked upload (see :meth:`chunks`).
    blob_b: Blob
    #: Single-request (``POST ?digest=``) upload.
    monolithic: Blob
    referrers: Referrers
    docker: DockerImage
    #: The pack logo served with ``?type=image/png``.
    logo: Blob
    #: Range requests: 2048 bytes.
    ranged: Blob
    #: No bytes at all.
    zero: Blob
    sha512: Sha512Image
    pack_archive: PackArchive

    @classmethod
    def generate(cls, run_id: str | None = None) -> RunData:
        run_id = run_id or secrets.token_hex(6)
        rng = random.Random(run_id)
        layer, diff_id = _layer(run_id)
        configs = tuple(_config(run_id, index, diff_id) for index in range(5))
        manifests = tuple(
            image_manifest(config, [layer], name=f"manifest{i}") for i, config in enumerate(configs)
        )
        empty_layer = image_manifest(configs[1], [], name="emptylayer", media_type=False)
        return cls(
            run_id=run_id,
            configs=configs,
            layer=layer,
            manifests=manifests,
            empty_layer_manifest=empty_layer,
            blob_a=Blob(rng.randbytes(42)),
            blob_b=Blob(rng.randbytes(42)),
            monolithic=Blob(rng.randbytes(42)),
            referrers=_referrers(run_id, rng, manifests[4], manifests[3]),
            docker=_docker_image(run_id, layer, diff_id),
            logo=Blob(png((rng.randrange(256), rng.randrange(256), rng.randrange(256)), run_id), "image/png"),
            ranged=Blob(rng.randbytes(2048)),
            zero=Blob(b""),
            sha512=_sha512_image(run_id, layer, diff_id),
            pack_archive=_pack_archive(run_id),
        )

    def chunks(self, min_length: int = 0) -> tuple[Blob, bytes, bytes]:
        """The chunked-upload blob and its two chunks, honouring ``OCI-Chunk-Min-Length``.

        The first chunk is 22 bytes of :attr:`blob_b`; a registry that wants longer chunks gets a blob of
        twice its minimum instead, split in the middle.
        """
        if min_length <= 22:
            content = self.blob_b.content
            return self.blob_b, content[:22], content[22:]
        content = random.Random(f"{self.run_id}-chunks").randbytes(2 * min_length)
        return Blob(content), content[:min_length], content[min_length:]

    def blob(self, label: str, size: int, algorithm: str = "sha256") -> Blob:
        """Random bytes of ``size``, the same for one label within a run and new in every run."""
        return Blob(random.Random(f"{self.run_id}-{label}").randbytes(size), algorithm=algorithm)

    def three_chunks(self, label: str, min_length: int) -> tuple[Blob, tuple[bytes, bytes, bytes]]:
        """A blob of three chunks: two of the chunk size, the last five bytes shorter.

        The chunk size is ``OCI-Chunk-Min-Length`` when the registry sets one, and at least 1 KiB.
        """
        size = max(1024, min_length)
        blob = self.blob(label, 3 * size - 5)
        content = blob.content
        return blob, (content[:size], content[size : 2 * size], content[2 * size :])
