"""Real clients against the emulator and Debian's ``docker-registry`` 2.8.2 side by side (issue 12, 1-3).

Each test plays one client's scenario on both registries, each on a fresh filesystem root, and asserts that
both give distribution's outcome. Missing peers (``docker-registry``, skopeo, umoci, python-dxf) fail the
tests: ``noxfile.install_peers`` installs the Debian ones and the ``test`` extra python-dxf.

ctr is not installed here: its case is the request ``ctr image push`` sends, made with requests.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from dxf import DXF
from dxf import DXFBase

from pax_registry_fixtures.distribution import DistributionServer
from pax_registry_fixtures.process import RegistryProcess
from tests.clients import build_image
from tests.clients import skopeo

pytestmark = pytest.mark.peers

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

#: What ``ctr image push`` asks when it checks whether the tag already holds the index it pushes
#: (containerd's pusher: the descriptor's media type, then ``*/*``); any answer but 200 or 404 ends the push
#: with "unexpected status".
CTR_PUSH_ACCEPT = f"{OCI_INDEX}, */*"

QUIET = {"log": {"level": "error", "accesslog": {"disabled": True}}}


class Registry(t.Protocol):
    @property
    def host(self) -> str: ...

    @property
    def url(self) -> str: ...


Registries = dict[str, Registry]


@pytest.fixture
def registries(tmp_path: Path) -> Iterator[Registries]:
    """``distribution`` and ``emulator``, both on filesystem storage with deletes enabled."""
    storage = {"delete": {"enabled": True}}
    emulator_storage = {**storage, "filesystem": {"rootdirectory": str(tmp_path / "emulator")}}
    with (
        DistributionServer({**QUIET, "storage": storage}) as distribution,
        RegistryProcess({**QUIET, "storage": emulator_storage}) as emulator,
    ):
        yield {"distribution": distribution, "emulator": emulator}


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def dxf(registry: Registry, repository: str) -> DXF:
    return DXF(registry.host, repository, insecure=True)


def push_blob(registry: Registry, repository: str, data: bytes) -> str:
    # An iterator, not a list: requests sends a list as form fields but streams an iterator.
    return str(dxf(registry, repository).push_blob(data=iter([data]), digest=sha256(data)))


def open_upload(registry: Registry, repository: str) -> None:
    """Start an upload and leave it open: the repository then holds only ``_uploads``."""
    response = requests.post(f"{registry.url}/v2/{repository}/blobs/uploads/", timeout=30)
    assert response.status_code == 202, response.text


def skopeo_outcome(registry: Registry, *args: str) -> tuple[int, str]:
    """skopeo's exit status, and its output (or its fatal message) with the registry's address removed."""
    result = skopeo(*args, "--tls-verify=false", check=False)
    return result.returncode, _without_host(_output(result), registry)


def _output(result: subprocess.CompletedProcess[str]) -> str:
    if result.returncode == 0:
        return result.stdout
    fatal = re.search(r'msg="(.*)"', result.stderr)
    return fatal.group(1) if fatal else result.stderr


def _without_host(text: str, registry: Registry) -> str:
    return text.replace(registry.host, "HOST")


def each(registries: Registries, scenario: t.Callable[[Registry], t.Any]) -> dict[str, t.Any]:
    return {kind: scenario(registry) for kind, registry in registries.items()}


def same_everywhere(value: t.Any) -> dict[str, t.Any]:
    return {"distribution": value, "emulator": value}


# -- item 1: the catalog lists repositories that hold only blobs ------------------------------------------


def test_python_dxf_lists_repositories_holding_only_blobs(registries: Registries) -> None:
    def scenario(registry: Registry) -> list[str]:
        digest = push_blob(registry, "dxf/pushed", b"a blob and no manifest")
        dxf(registry, "dxf/mounted").mount_blob("dxf/pushed", digest)
        open_upload(registry, "dxf/uploading")
        return list(DXFBase(registry.host, insecure=True).list_repos())

    assert each(registries, scenario) == same_everywhere(["dxf/mounted", "dxf/pushed"])


def test_python_dxf_keeps_listing_a_repository_whose_blobs_were_deleted(registries: Registries) -> None:
    def scenario(registry: Registry) -> list[str]:
        client = dxf(registry, "dxf/emptied")
        client.del_blob(push_blob(registry, "dxf/emptied", b"deleted again"))
        return list(DXFBase(registry.host, insecure=True).list_repos())

    assert each(registries, scenario) == same_everywhere(["dxf/emptied"])


# -- item 2: a repository never tagged has no tags list -------------------------------------------------

NO_TAGS_LIST = "fetching tags list: invalid status code from registry 404 (Not Found)"


def test_skopeo_list_tags_of_a_repository_without_manifests_fails_as_on_distribution(
    registries: Registries,
) -> None:
    def scenario(registry: Registry) -> list[tuple[int, str]]:
        push_blob(registry, "lt/parent/blobs", b"only a blob")
        open_upload(registry, "lt/uploading")
        return [
            skopeo_outcome(registry, "list-tags", f"docker://{registry.host}/{name}")
            for name in ("lt/parent/blobs", "lt/uploading", "lt/parent")
        ]

    failure = (1, f"Error listing repository tags: {NO_TAGS_LIST}")
    assert each(registries, scenario) == same_everywhere([failure, failure, failure])


def test_skopeo_inspect_of_an_image_pushed_by_digest_only_fails_as_on_distribution(
    registries: Registries, tmp_path: Path
) -> None:
    """skopeo inspect lists the repository's tags, and a repository never tagged has none to list."""
    image = build_image(tmp_path)
    digest = json.loads(skopeo("inspect", image).stdout)["Digest"]

    def scenario(registry: Registry) -> tuple[int, str]:
        target = f"docker://{registry.host}/by/digest@{digest}"
        skopeo("copy", "--dest-tls-verify=false", image, target)
        return skopeo_outcome(registry, "inspect", target)

    failure = (1, f"Error determining repository tags: {NO_TAGS_LIST}")
    assert each(registries, scenario) == same_everywhere(failure)


def test_a_repository_whose_manifests_were_all_deleted_lists_no_tags(
    registries: Registries, tmp_path: Path
) -> None:
    image = build_image(tmp_path)

    def scenario(registry: Registry) -> tuple[tuple[int, str], t.Any]:
        target = f"docker://{registry.host}/deleted/all:1"
        skopeo("copy", "--dest-tls-verify=false", image, target)
        skopeo("delete", "--tls-verify=false", target)
        listed = skopeo_outcome(registry, "list-tags", f"docker://{registry.host}/deleted/all")
        # distribution's Go encoder writes the empty list as null; skopeo shows it as [].
        raw = requests.get(f"{registry.url}/v2/deleted/all/tags/list", timeout=30)
        return listed, json.loads(raw.content)

    listing = json.dumps({"Repository": "HOST/deleted/all", "Tags": []}, indent=4) + "\n"
    answer = {"name": "deleted/all", "tags": None}
    assert each(registries, scenario) == same_everywhere(((0, listing), answer))


# -- item 3: a Docker manifest list asked for by tag by a client that names neither list nor schema 2 ----


def push_docker_list(registry: Registry, image: str, repository: str, tag: str) -> bytes:
    """Push ``image`` as Docker schema 2 and a Docker manifest list of it (linux/amd64) under ``tag``."""
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        image,
        f"docker://{registry.host}/{repository}:amd64",
    )
    child = requests.get(
        f"{registry.url}/v2/{repository}/manifests/amd64", headers={"Accept": DOCKER_MANIFEST}, timeout=30
    ).content
    entry = {
        "mediaType": DOCKER_MANIFEST,
        "digest": sha256(child),
        "size": len(child),
        "platform": {"architecture": "amd64", "os": "linux"},
    }
    manifest_list = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [entry]}).encode()
    assert put_manifest(registry, repository, tag, manifest_list, DOCKER_LIST) == 201
    return manifest_list


def put_manifest(registry: Registry, repository: str, reference: str, content: bytes, media_type: str) -> int:
    response = requests.put(
        f"{registry.url}/v2/{repository}/manifests/{reference}",
        data=content,
        headers={"Content-Type": media_type},
        timeout=30,
    )
    return response.status_code


def head_manifest(
    registry: Registry, repository: str, reference: str, accept: str | None
) -> requests.Response:
    """HEAD with exactly this Accept; ``None`` sends none (requests would otherwise send ``*/*``)."""
    return requests.head(
        f"{registry.url}/v2/{repository}/manifests/{reference}", headers={"Accept": accept}, timeout=30
    )


def test_ctr_push_of_an_oci_index_onto_a_tag_holding_a_docker_list(
    registries: Registries, tmp_path: Path
) -> None:
    """ctr checks the tag with HEAD before it PUTs the index there: 200 or 404 let the push go on."""
    docker_image = build_image(tmp_path / "docker")
    oci_image = build_image(tmp_path / "oci")
    child_digest = json.loads(skopeo("inspect", oci_image).stdout)["Digest"]

    def scenario(registry: Registry) -> tuple[int, int, int, bool]:
        push_docker_list(registry, docker_image, "ctr/app", "latest")
        # ctr pushes the index's children by digest first, then checks the tag, then PUTs the index.
        skopeo(
            "copy", "--dest-tls-verify=false", oci_image, f"docker://{registry.host}/ctr/app@{child_digest}"
        )
        child = requests.get(
            f"{registry.url}/v2/ctr/app/manifests/{child_digest}",
            headers={"Accept": OCI_MANIFEST},
            timeout=30,
        ).content
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": child_digest,
                        "size": len(child),
                        "platform": {"architecture": "amd64", "os": "linux"},
                    }
                ],
            }
        ).encode()
        check = head_manifest(registry, "ctr/app", "latest", CTR_PUSH_ACCEPT)
        pushed = put_manifest(registry, "ctr/app", "latest", index, OCI_INDEX)
        served = head_manifest(registry, "ctr/app", "latest", OCI_INDEX)
        return (
            check.status_code,
            pushed,
            served.status_code,
            served.headers.get("Docker-Content-Digest") == sha256(index),
        )

    assert each(registries, scenario) == same_everywhere((200, 201, 200, True))


@pytest.mark.parametrize(
    "accept",
    [CTR_PUSH_ACCEPT, "*/*", None, OCI_INDEX, f"{OCI_INDEX}, {OCI_MANIFEST}", "application/json"],
    ids=["ctr-push", "any", "none", "oci-index", "oci-only", "json"],
)
def test_a_docker_list_by_tag_answers_200_whatever_the_accept(
    registries: Registries, tmp_path: Path, accept: str | None
) -> None:
    """distribution rewrites the linux/amd64 image as schema 1 for such a client; the emulator has no
    schema 1 and serves the list as stored."""
    image = build_image(tmp_path)
    statuses = {}
    for kind, registry in registries.items():
        manifest_list = push_docker_list(registry, image, "neither/app", "latest")
        response = head_manifest(registry, "neither/app", "latest", accept)
        statuses[kind] = response.status_code
        if kind == "emulator":
            assert response.headers["Content-Type"] == DOCKER_LIST
            assert response.headers["Docker-Content-Digest"] == sha256(manifest_list)
    assert statuses == same_everywhere(200)
