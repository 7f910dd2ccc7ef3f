"""The worst a client, an upstream or a storage can send to the surfaces added with issues 13 and 14:
pack archives built to exhaust memory or time, pack.json and values.yaml at the edges of their
specifications, parent-tag names in odd places, foreign-layer URLs at the edges of Go's URL parser,
the debug port, health checks against upstreams that hang, a pull-through cache's lying remote and
a damaged expiry state.

Every case goes over HTTP (raw sockets where framing matters) to a registry served in this process,
so a test can lower the pack limits with ``monkeypatch``. Each answer is the one distribution gives
(checked against docker-registry where the two could differ), nothing of a refused push stays
visible, and the registry goes on serving.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import gzip
import hashlib
import io
import json
import socket
import tarfile
import threading
import time
import typing as t
import urllib.parse
from pathlib import Path

import pytest
import requests
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import Client

from conformance.client import RegistryClient
from conformance.client import error_codes
from conformance.data import Blob
from emulator.app import make_app
from emulator.cli import main
from emulator.inprocess import load_config
from emulator.notifications.events import CAPTURED_VALUE_SIZE
from emulator.notifications.events import Encoder
from emulator.packs import Limits
from emulator.packs import hooks
from emulator.packs.validate import _load_yaml
from emulator.proxy.expiry import STATE_PATH
from emulator.reference import Digest
from pax_registry_fixtures.factory import RegistryFactory
from pax_registry_fixtures.packs import pack_dir
from pax_registry_fixtures.server import RegistryServer
from tests.packhelpers import ORAS_CONFIG
from tests.packhelpers import ORAS_LAYER
from tests.packhelpers import REPOSITORY
from tests.packhelpers import TITLE
from tests.packhelpers import archive_of
from tests.packhelpers import assert_nothing_stored
from tests.packhelpers import client_fixture  # noqa: F401 - a fixture
from tests.packhelpers import manifest_for
from tests.packhelpers import problems_of
from tests.packhelpers import push_archive
from tests.packhelpers import registry_fixture  # noqa: F401 - a fixture
from tests.rawhttp import RawConnection
from tests.test_health import wait_for_status
from tests.test_metrics import by
from tests.test_metrics import golang_request_size
from tests.test_metrics import scrape
from tests.test_validation import OCI_MANIFEST
from tests.test_validation import OCI_NONDIST_GZIP
from tests.test_validation import Case
from tests.test_validation import Outcome
from tests.test_validation import Registries
from tests.test_validation import build
from tests.test_validation import distributions  # noqa: F401 - a fixture
from tests.test_validation import emulators  # noqa: F401 - a fixture

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

TOP = "pax-demo-1.0.0"
PROXY_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
PROXY_REPOSITORY = "team/app"


# -- pack archives ----------------------------------------------------------------------------------


def header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    """One ustar header block, as written before ``size`` bytes of content."""
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % tarfile.BLOCKSIZE)


def pax_record(keyword: str, value: bytes) -> bytes:
    """``LENGTH keyword=value\\n``, LENGTH counting itself."""
    body = f" {keyword}=".encode() + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def with_tail(folder: Path, tail: bytes) -> bytes:
    """A good pack's archive with raw tar blocks appended before the end-of-archive blocks."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.add(folder, arcname=folder.name)
    good = buffer.getvalue()
    end = len(good)
    while end >= tarfile.BLOCKSIZE and not good[end - tarfile.BLOCKSIZE : end].strip(b"\0"):
        end -= tarfile.BLOCKSIZE
    return gzip.compress(good[:end] + tail + bytes(2 * tarfile.BLOCKSIZE))


class ZeroStream(io.RawIOBase):
    """``count`` bytes of ``fill`` after ``head``, made as they are read (never held whole)."""

    def __init__(self, head: bytes, count: int, fill: bytes = b"a") -> None:
        self.head, self.left, self.fill = head, count, fill

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: t.Any) -> int:
        view = memoryview(buffer).cast("B")
        if self.head:
            n = min(len(view), len(self.head))
            view[:n], self.head = self.head[:n], self.head[n:]
            return n
        n = min(len(view), self.left)
        view[:n] = self.fill * n
        self.left -= n
        return n


def gzip_of_stream(stream: io.RawIOBase) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0) as g:
        while chunk := stream.read(1024 * 1024):
            g.write(chunk)
    return out.getvalue()


def refused(client: RegistryClient, registry: RegistryServer, data: bytes) -> set[tuple[str, str]]:
    problems = problems_of(push_archive(client, REPOSITORY, "1.0.0", data))
    assert_nothing_stored(registry, client, REPOSITORY, "1.0.0")
    return problems


def test_a_pax_header_declaring_300_mib_is_refused_before_it_is_read(
    registry: RegistryServer, client: RegistryClient
) -> None:
    # 1.3 MB on the wire; tarfile reads a PAX header whole, so before the cap this held 300 MiB.
    size = 300 * 1024 * 1024
    data = gzip_of_stream(ZeroStream(header(f"{TOP}/PaxHeader", size, tarfile.XHDTYPE), size))
    assert len(data) < 2 * 1024 * 1024
    assert refused(client, registry, data) == {("archive", "header")}


def test_a_gnu_long_name_of_300_mib_is_refused_before_it_is_read(
    registry: RegistryServer, client: RegistryClient
) -> None:
    size = 300 * 1024 * 1024
    data = gzip_of_stream(ZeroStream(header("././@LongLink", size, tarfile.GNUTYPE_LONGNAME), size))
    assert refused(client, registry, data) == {("archive", "header")}


def bomb(members: int, size: int) -> bytes:
    """``members`` files of ``size`` zero bytes each, gzipped as they are made."""
    out = io.BytesIO()
    zeros = bytes(1024 * 1024)
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0) as g:
        for n in range(members):
            g.write(header(f"{TOP}/zeros{n}.bin", size))
            for _ in range(size // len(zeros)):
                g.write(zeros)
    return out.getvalue()


def test_a_gzip_bomb_stops_at_the_uncompressed_cap(
    registry: RegistryServer, client: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hooks, "LIMITS", Limits(uncompressed=8 * 1024 * 1024))
    # One member declaring more than the cap is refused from its header alone...
    assert refused(client, registry, bomb(1, 16 * 1024 * 1024)) == {("zeros0.bin", "uncompressed-size")}
    # ...members within it are counted as they gunzip.
    data = bomb(16, 4 * 1024 * 1024)
    assert len(data) < 128 * 1024
    assert refused(client, registry, data) == {("archive", "uncompressed-size")}


def test_deeply_nested_paths_stop_at_the_names_budget(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each member 2,000 directories deep implies 2,000 prefixes of up to 4 KiB: before the budget,
    # 3,000 such members (60 KiB compressed) kept about 12 GB of directory names.
    monkeypatch.setattr(hooks, "LIMITS", Limits(names=1024 * 1024))
    folder = pack_dir(tmp_path)
    tail = b""
    for n in range(40):
        name = f"{TOP}/d{n}/" + "a/" * 2000 + "f"
        tail += pax_member(name)
    assert refused(client, registry, with_tail(folder, tail)) == {("archive", "names")}


def pax_member(name: str) -> bytes:
    records = pax_record("path", name.encode())
    return header("././@PaxHeader", len(records), tarfile.XHDTYPE) + padded(records) + header("x", 0)


def test_refused_member_names_count_against_the_names_budget(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Members refused for their path are kept by tarfile until the end, their names with them.
    monkeypatch.setattr(hooks, "LIMITS", Limits(names=256 * 1024))
    tail = b"".join(pax_member("/" + "a" * 60_000 + str(n)) for n in range(8))
    problems = refused(client, registry, with_tail(pack_dir(tmp_path), tail))
    assert ("archive", "names") in problems


def test_many_tiny_members_stop_at_the_member_cap(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hooks, "LIMITS", Limits(members=500))
    tail = b"".join(header(f"{TOP}/m/{n}", 0) for n in range(2000))
    assert refused(client, registry, with_tail(pack_dir(tmp_path), tail)) == {("archive", "members")}


@pytest.mark.parametrize(
    "records",
    [
        pytest.param(pax_record("path", b"9" * 200), id="a 200-digit run (CVE-2024-6232)"),
        pytest.param(b"1" * 4096, id="digits without records"),
        pytest.param(b"5 ab\n" * 200 + b"6 a=b\n", id="records without '='"),
        pytest.param(b"99 path=x\n", id="a length past the header"),
    ],
)
def test_pax_headers_that_tarfile_parses_in_quadratic_time_are_refused(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path, records: bytes
) -> None:
    # Python 3.11.7's tarfile searches these with patterns quadratic in their length: at 1 MiB,
    # minutes of CPU with the GIL held. Small ones show the check; the cap makes large ones the same.
    tail = header("././@PaxHeader", len(records), tarfile.XHDTYPE) + padded(records) + header("x", 0)
    assert refused(client, registry, with_tail(pack_dir(tmp_path), tail)) == {("archive", "header")}


def test_a_chain_of_pax_headers_is_refused(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path
) -> None:
    # tarfile recurses for every header of a chain: before, a RecursionError was a 500.
    tail = header("././@PaxHeader", 0, tarfile.XHDTYPE) * 5000
    assert refused(client, registry, with_tail(pack_dir(tmp_path), tail)) == {("archive", "header")}


def sparse_gnu_1_0(name: str, fields: int) -> bytes:
    """A GNU sparse 1.0 member: PAX keys, then a map of ``fields`` regions in the member's data."""
    records = b"".join(
        [
            pax_record("GNU.sparse.major", b"1"),
            pax_record("GNU.sparse.minor", b"0"),
            pax_record("GNU.sparse.name", name.encode()),
            pax_record("GNU.sparse.realsize", b"1048576"),
        ]
    )
    data = f"{fields}\n".encode() + b"0\n1\n" * fields
    return (
        header("././@PaxHeader", len(records), tarfile.XHDTYPE)
        + padded(records)
        + header(f"{TOP}/GNUSparseFile.0/x", len(data))
        + padded(data)
    )


def sparse_old_gnu(name: str, extensions: int) -> bytes:
    """An old GNU sparse member whose header says that ``extensions`` more map blocks follow."""
    block = bytearray(header(name, 0, tarfile.GNUTYPE_SPARSE))
    block[482] = 1  # isextended
    _checksum(block)
    extension = bytearray(tarfile.BLOCKSIZE)
    extension[504] = 1
    return bytes(block) + bytes(extension) * extensions + bytes(tarfile.BLOCKSIZE)


def _checksum(block: bytearray) -> None:
    block[148:156] = b" " * 8
    block[148:155] = b"%06o\0" % sum(block)


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(sparse_gnu_1_0(f"{TOP}/holes", 4), id="GNU sparse 1.0"),
        pytest.param(sparse_old_gnu(f"{TOP}/holes", 64), id="old GNU sparse"),
    ],
)
def test_sparse_members_are_refused_before_their_maps_are_read(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path, tail: bytes
) -> None:
    # tarfile reads a sparse map whole, as long as the archive says it goes on: memory without a bound.
    problems = refused(client, registry, with_tail(pack_dir(tmp_path), tail))
    assert problems == {(f"{TOP}/holes", "special-file")}


def test_a_layer_larger_than_its_descriptor_says_stops_at_the_cap(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The descriptor's size is the client's word; the archive is read against the cap whatever it says.
    monkeypatch.setattr(hooks, "LIMITS", Limits(compressed=64 * 1024))
    data = archive_of(pack_dir(tmp_path)) + bytes(256 * 1024)
    layer, config = Blob(data, ORAS_LAYER), Blob(b"{}", ORAS_CONFIG)
    for blob in (layer, config):
        assert client.push_blob(REPOSITORY, blob).status_code == 201
    descriptor = {**layer.descriptor(annotations={TITLE: "pax-demo-1.0.0.tar.gz"}), "size": 1000}
    response = client.push_manifest(REPOSITORY, "1.0.0", manifest_for([descriptor], config))
    assert problems_of(response) == {("archive", "size")}
    assert_nothing_stored(registry, client, REPOSITORY, "1.0.0")


def test_a_layer_declared_at_5_gib_is_refused_without_reading(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path
) -> None:
    data = archive_of(pack_dir(tmp_path))
    layer, config = Blob(data, ORAS_LAYER), Blob(b"{}", ORAS_CONFIG)
    for blob in (layer, config):
        assert client.push_blob(REPOSITORY, blob).status_code == 201
    descriptor = {**layer.descriptor(annotations={TITLE: "pax-demo-1.0.0.tar.gz"}), "size": 5 * 1024**3}
    response = client.push_manifest(REPOSITORY, "1.0.0", manifest_for([descriptor], config))
    assert problems_of(response) == {("archive", "size")}
    assert_nothing_stored(registry, client, REPOSITORY, "1.0.0")


# -- pack.json and values.yaml ----------------------------------------------------------------------


def with_file(folder: Path, name: str, content: bytes) -> Path:
    (folder / name).write_bytes(content)
    return folder


def good_pack_json(folder: Path) -> bytes:
    return (folder / "pack.json").read_bytes()


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda raw: raw.rstrip()[:-1] + b', "x": NaN}', id="NaN"),
        pytest.param(lambda raw: raw.rstrip()[:-1] + b', "x": -Infinity}', id="Infinity"),
        pytest.param(lambda raw: raw.rstrip()[:-1] + b', "x": 1e99999}', id="a float out of range"),
        pytest.param(lambda raw: raw.rstrip()[:-1] + b', "x": ' + b"1" * 5000 + b"}", id="5000 digits"),
        pytest.param(lambda raw: b"\xef\xbb\xbf" + raw, id="a byte order mark"),
        pytest.param(lambda raw: raw.decode().encode("utf-16"), id="UTF-16"),
        pytest.param(lambda raw: b"[" * 100_000 + b"]" * 100_000, id="nested 100,000 deep"),
    ],
)
def test_pack_json_that_go_would_not_read_is_refused(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path, edit: t.Callable[[bytes], bytes]
) -> None:
    folder = pack_dir(tmp_path)
    with_file(folder, "pack.json", edit(good_pack_json(folder)))
    assert ("pack.json", "json") in refused(client, registry, archive_of(folder))


def laughs(levels: int) -> bytes:
    lines = [b"l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [b"l%d: &l%d [%s]" % (n, n, b", ".join([b"*l%d" % (n - 1)] * 9)) for n in range(1, levels)]
    return b"\n".join(lines) + b"\n"


def merge_laughs(levels: int) -> bytes:
    lines = [b"m0: &m0 {a: 1, b: 2}"]
    lines += [b"m%d: &m%d {<<: [%s]}" % (n, n, b", ".join([b"*m%d" % (n - 1)] * 9)) for n in range(1, levels)]
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(laughs(10), id="billion laughs"),
        pytest.param(merge_laughs(12), id="billion laughs through merge keys"),
        pytest.param(b"a: &a [*a]\n", id="an anchor containing itself"),
        pytest.param(b"a: !!python/object/apply:os.system ['touch /tmp/pax-yaml']\n", id="a python tag"),
        pytest.param(b"a: " + b"1" * 5000 + b"\n", id="an integer of 5000 digits"),
        pytest.param(b"a: " + b"[" * 100_000 + b"\n", id="nested 100,000 deep"),
    ],
)
def test_values_yaml_bombs_and_tags_are_refused(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path, values: bytes
) -> None:
    folder = with_file(pack_dir(tmp_path), "values.yaml", values)
    assert refused(client, registry, archive_of(folder)) == {("values.yaml", "yaml")}
    assert not Path("/tmp/pax-yaml").exists()


def test_base_60_numbers_are_strings_as_in_yaml_1_2() -> None:
    # PyYAML converts YAML 1.1's 1:20:30 in time quadratic in its length (a 1 MiB one: minutes).
    assert _load_yaml(b"a: 1:20:30\nb: 1:20:30.5\nc: 10\n") == {"a": "1:20:30", "b": "1:20:30.5", "c": 10}


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(b"a: 1" + b":1" * 300_000 + b"\n", id="a 600 KB base-60 number"),
        pytest.param(b"a: 1" + b":1" * 1000 + b".5\n", id="a base-60 float beyond a float's range"),
        pytest.param(laughs(6), id="aliases within reason"),
    ],
)
def test_values_yaml_that_reads_as_strings_is_accepted(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path, values: bytes
) -> None:
    folder = with_file(pack_dir(tmp_path), "values.yaml", values)
    response = push_archive(client, REPOSITORY, "1.0.0", archive_of(folder))
    assert response.status_code == 201, response.text


# -- parent tags and concurrent pushes --------------------------------------------------------------


def test_concurrent_pushes_of_one_version_leave_one_consistent_state(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path
) -> None:
    data = archive_of(pack_dir(tmp_path, version="1.2.3"))

    def push(_: int) -> int:
        own = RegistryClient(registry.url)
        try:
            return push_archive(own, REPOSITORY, "1.2.3", data).status_code
        finally:
            own.close()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(push, range(8))) == {201}
    tags = client.get(f"/v2/{REPOSITORY}/tags/list").json()["tags"]
    assert sorted(tags) == ["1.2.3", "1.2.x", "1.x"]
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    digests = {
        client.head(f"/v2/{REPOSITORY}/manifests/{tag}", headers=accept).headers["Docker-Content-Digest"]
        for tag in tags
    }
    assert len(digests) == 1


def test_parent_tag_names_elsewhere_are_ordinary(client: RegistryClient, tmp_path: Path) -> None:
    manifest_only = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}
    config = Blob(b"{}", ORAS_CONFIG)
    # A repository named like a parent tag, and a parent-tag name outside spectro-packs/archive/<name>.
    for repository in ("1.x", "team/1.x", f"{REPOSITORY}/nested", "spectro-packs/archive"):
        assert client.push_blob(repository, config).status_code == 201
        document = {**manifest_only, "config": config.descriptor(), "layers": []}
        response = client.put(
            f"/v2/{repository}/manifests/1.x",
            data=json.dumps(document).encode(),
            headers={"Content-Type": manifest_only["mediaType"]},
        )
        assert response.status_code == 201, (repository, response.text)
    # A pack named 1.x gets its own parents, and its name is no tag.
    folder = pack_dir(tmp_path, name="1.x", version="1.0.0")
    assert push_archive(client, "spectro-packs/archive/1.x", "1.0.0", archive_of(folder)).status_code == 201
    tags = client.get("/v2/spectro-packs/archive/1.x/tags/list").json()["tags"]
    assert sorted(tags) == ["1.0.0", "1.0.x", "1.x"]
    refusal = client.put(
        "/v2/spectro-packs/archive/1.x/manifests/2.x",
        data=json.dumps({**manifest_only, "config": config.descriptor(), "layers": []}).encode(),
        headers={"Content-Type": manifest_only["mediaType"]},
    )
    assert refusal.status_code == 400
    assert error_codes(refusal) == ["TAG_INVALID"]


# -- foreign-layer URLs -----------------------------------------------------------------------------

#: URLs at the edges of Go's url.Parse, under a deny-only filter (so only the URL rules decide),
#: each with distribution 2.8's outcome (checked against docker-registry below).
EDGE_URLS = [
    (" https://host.test/x", Outcome.URL_REFUSED),  # Go finds no scheme; Python strips the space
    ("https://host.test:99999/x", Outcome.ACCEPTED),  # Go checks a port's digits, not its range
    ("https://host.test:\u0668\u0660/x", Outcome.URL_REFUSED),  # Arabic-Indic digits are no port
    ("https://host.test:/x", Outcome.ACCEPTED),
    ("https://user:secret@host.test/x", Outcome.ACCEPTED),
    ("https://us er@host.test/x", Outcome.URL_REFUSED),
    ("https://b\u00fccher.example/x", Outcome.ACCEPTED),
    ("https://xn--bcher-kva.example/x", Outcome.ACCEPTED),
    ("https://host.test/a b ", Outcome.ACCEPTED),
    ("https://host.test/\tx", Outcome.URL_REFUSED),
    ("https://[::1/x", Outcome.URL_REFUSED),
    ("https://host.test/x%", Outcome.URL_REFUSED),
]
EDGE_CASES = [
    Case(f"edge-url-{n}", "deny", OCI_MANIFEST, OCI_NONDIST_GZIP, (url,), expected)
    for n, (url, expected) in enumerate(EDGE_URLS)
]


def push_case(client: RegistryClient, case: Case) -> t.Any:
    manifest, blobs = build(case)
    for blob in blobs:
        assert client.push_blob(f"hardening/{case.id}", blob).status_code == 201
    return client.push_manifest(f"hardening/{case.id}", "t", manifest)


@pytest.mark.parametrize("case", EDGE_CASES, ids=[repr(url) for url, _ in EDGE_URLS])
def test_edge_urls_are_judged_as_distribution_judges_them(emulators: Registries, case: Case) -> None:  # noqa: F811
    response = push_case(emulators.client(case.config), case)
    if case.expected is Outcome.ACCEPTED:
        assert response.status_code == 201, response.text
    else:
        assert response.status_code == 400, response.text
        assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]


@pytest.mark.peers
@pytest.mark.needs("docker-registry")
@pytest.mark.parametrize("case", EDGE_CASES, ids=[repr(url) for url, _ in EDGE_URLS])
def test_distribution_judges_the_edge_urls_so(distributions: Registries, case: Case) -> None:  # noqa: F811
    response = push_case(distributions.client(case.config), case)
    assert response.status_code == (201 if case.expected is Outcome.ACCEPTED else 500), response.text


def test_thousands_of_urls_are_each_judged(emulators: Registries) -> None:  # noqa: F811
    urls = tuple(f"https://host{n}.test/layer" for n in range(5000))
    case = Case("many-urls", "deny", OCI_MANIFEST, OCI_NONDIST_GZIP, urls, Outcome.ACCEPTED)
    accepted = push_case(emulators.client("deny"), case)
    assert accepted.status_code == 201, accepted.text[:300]
    denied = Case(
        "many-urls-denied",
        "deny",
        OCI_MANIFEST,
        OCI_NONDIST_GZIP,
        (*urls, "https://denied/"),
        Outcome.URL_REFUSED,
    )
    response = push_case(emulators.client("deny"), denied)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert [entry.get("url") for entry in error["detail"] if "reason" in entry] == ["https://denied/"]


# -- manifest bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [200_000, 3 * 1024 * 1024])
def test_a_manifest_arriving_in_pieces_is_stored_whole(
    pax_registry_factory: RegistryFactory, size: int
) -> None:
    # A manifest with thousands of URLs or annotations is hundreds of KB: its body arrives in several
    # reads of the socket, and all of them are the manifest.
    registry = pax_registry_factory()
    client = RegistryClient(registry.url)
    try:
        config = Blob(b"{}", "application/vnd.oci.image.config.v1+json")
        assert client.push_blob("big", config).status_code == 201
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [],
            "annotations": {"filler": "x" * size},
        }
        content = json.dumps(document).encode()
        head = (
            f"PUT /v2/big/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Type: {OCI_MANIFEST}\r\n"
            f"Content-Length: {len(content)}\r\n\r\n"
        ).encode()
        with RawConnection(registry.port) as conn:
            conn.send(head + content[:1000])
            time.sleep(0.2)  # the server reads what came so far: the rest comes in another read
            conn.send(content[1000:])
            response = conn.read_response("PUT")
        assert response.status == 201, response.body[:300]
        stored = client.get("/v2/big/manifests/t", headers={"Accept": OCI_MANIFEST})
        assert stored.content == content
    finally:
        client.close()


# -- the debug port ---------------------------------------------------------------------------------


def debug_port(registry: RegistryServer) -> int:
    return int(registry.debug_url.rsplit(":", 1)[1])


def test_slowloris_on_the_debug_port_leaves_both_ports_answering(
    pax_registry_factory: RegistryFactory,
) -> None:
    registry = pax_registry_factory({"http": {"debug": {"addr": "127.0.0.1:0"}}})
    port = debug_port(registry)
    stalled = [RawConnection(port) for _ in range(200)]
    try:
        for conn in stalled:
            conn.send(b"GET /debug/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        assert requests.get(f"{registry.url}/v2/", timeout=30).status_code == 200
        assert requests.get(f"{registry.debug_url}/debug/health", timeout=30).status_code == 200
    finally:
        for conn in stalled:
            conn.close()


@pytest.mark.parametrize(
    ("request_bytes", "method", "status"),
    [
        (b"HEAD /debug/health HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD", 404),
        (b"POST /debug/health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "POST", 404),
        (b"GET /debug/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 << 20) + b"\r\n\r\n", "GET", 431),
        (b"GET /debug/" + b"a" * (128 << 10) + b" HTTP/1.1\r\nHost: x\r\n\r\n", "GET", 414),
        (b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n", "CONNECT", 400),
        (b"GET /debug/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "GET", 501),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64) + b"\r\n\r\n", "GET", 400),
    ],
    ids=["HEAD", "POST", "a 2 MiB header", "a 128 KiB target", "CONNECT", "an unknown coding", "TLS"],
)
def test_the_debug_port_frames_odd_requests_as_the_main_port_does(
    pax_registry_factory: RegistryFactory, request_bytes: bytes, method: str, status: int
) -> None:
    registry = pax_registry_factory({"http": {"debug": {"addr": "127.0.0.1:0"}}})
    with RawConnection(debug_port(registry)) as conn:
        conn.send_until_closed(request_bytes)
        assert conn.read_response(method).status == status
    assert requests.get(f"{registry.debug_url}/debug/health", timeout=30).status_code == 200


def test_a_huge_body_sent_to_the_metrics_is_not_read(pax_registry_factory: RegistryFactory) -> None:
    # promhttp answers any method; a body it never reads must not be received whole.
    registry = pax_registry_factory(
        {"http": {"debug": {"addr": "127.0.0.1:0", "prometheus": {"enabled": True}}}}
    )
    with RawConnection(debug_port(registry)) as conn:
        conn.send(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n")
        assert conn.read_response("POST").status == 200
        # Not drained: the connection is closed instead of reading 10 GB.
        assert not conn.send_until_closed(bytes(1 << 20) * 64) or conn.closes_within(10)


# -- notifications ------------------------------------------------------------------------------------


def test_headers_of_a_hostile_client_cannot_grow_the_notification_queue(
    pax_registry_factory: RegistryFactory,
) -> None:
    """An endpoint that is down keeps every event queued: what each event holds of its request must not be
    whatever a client chose to send (up to the 1 MiB head), nor may a forged forwarding header reach it."""
    dead = {"name": "dead", "url": "http://127.0.0.1:9/events", "threshold": 1, "backoff": "60s"}
    registry = pax_registry_factory({"notifications": {"endpoints": [dead]}})
    digest = registry.push_blob("team/app", b"content")
    hostile = {
        "User-Agent": "a" * 300_000,
        "X-Forwarded-For": "b" * 300_000,
        "X-Forwarded-Host": "evil.example/" + "c" * 300_000,
        "X-Forwarded-Proto": "gopher",
    }
    for _ in range(20):
        response = requests.head(
            registry.url_for(f"/v2/team/app/blobs/{digest}"), headers=hostile, timeout=30
        )
        assert response.status_code == 200
    assert registry.app.notifier is not None
    sender = registry.app.notifier.senders[0][0]
    queued = [event for event in list(sender._queue) if event.target.action == "pull"]
    # The first batch left the queue for the POST that failed and waits out the backoff in flight.
    assert len(queued) >= 19
    for event in queued:
        kept = [value for value in event.request.values if value]
        assert max(map(len, kept)) <= 1024
        assert event.request.url_base(None) == registry.url  # the forged host and scheme are not used


def test_a_short_head_of_repeated_headers_stays_within_what_is_captured_and_is_measured_exactly(
    pax_registry_factory: RegistryFactory,
) -> None:
    """A head of at most 1,024 characters spares the capture its sum (our server counted the head): forty
    one-character X-Forwarded-For lines, which the environ joins by commas, an absolute-form target that
    replaces the Host, and a header with an underscore that never reaches the environ must not make the
    captured client values longer than that count; the metrics measure the head as it was sent."""
    dead = {"name": "dead", "url": "http://127.0.0.1:9/events", "threshold": 1, "backoff": "60s"}
    registry = pax_registry_factory(
        {
            "http": {"debug": {"addr": "127.0.0.1:0", "prometheus": {"enabled": True}}},
            "notifications": {"endpoints": [dead]},
        }
    )
    digest = registry.push_blob("team/app", b"content")
    target = f"http://registry.test/v2/team/app/blobs/{digest}"
    headers = [("Host", "elsewhere.test"), ("X_Under", "dropped"), *[("X-Forwarded-For", "1")] * 40]
    head = f"HEAD {target} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n"
    with RawConnection(registry.port, timeout=30) as conn:
        for _ in range(2):  # the first event leaves in the POST that fails; the second stays queued
            conn.send(head.encode())
            assert conn.read_response("HEAD").status == 200

    counted = golang_request_size("HEAD", target, headers, b"")
    assert counted <= CAPTURED_VALUE_SIZE
    sizes = by(scrape(registry)["registry_http_request_size_bytes_sum"], "handler")
    assert sizes[("blob",)] == 2 * counted
    assert registry.app.notifier is not None
    sender = registry.app.notifier.senders[0][0]
    queued = [event for event in list(sender._queue) if event.target.action == "pull"]
    assert queued
    pulled = queued[-1]
    captured = pulled.request.environ()
    assert captured["HTTP_HOST"] == "registry.test"
    assert captured["HTTP_X_FORWARDED_FOR"] == ",".join("1" * 40)
    from_client = sum(len(value) for key, value in captured.items() if key.startswith("HTTP_"))
    assert from_client <= pulled.request.size <= CAPTURED_VALUE_SIZE


def test_a_forwarded_prefix_cannot_grow_queued_events_or_the_encoders_memo() -> None:
    """Behind a prefix middleware (Werkzeug's ProxyFix with ``x_prefix``) the script name is whatever a
    client sends as X-Forwarded-Prefix: a queued event keeps at most CAPTURED_VALUE_SIZE characters of it,
    its target URL stays below what was kept, and the encoder remembers none of these events."""
    dead = {"name": "dead", "url": "http://127.0.0.1:9/events"}
    config = {"version": "0.1", "storage": {"inmemory": {}}, "notifications": {"endpoints": [dead]}}
    app = make_app(load_config(config))  # not opened: no sender runs, every event stays queued
    client = Client(ProxyFix(app, x_prefix=1))
    data = b"content"
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    pushed = client.post(f"/v2/team/app/blobs/uploads/?digest={digest}", data=data)
    assert pushed.status_code == 201
    for number in range(20):
        prefix = f"/{number}" + "p" * 300_000
        pulled = client.head(f"/v2/team/app/blobs/{digest}", headers={"X-Forwarded-Prefix": prefix})
        assert pulled.status_code == 200

    assert app.notifier is not None
    sender = app.notifier.senders[0][0]
    queued = [event for event in list(sender._queue) if event.target.action == "pull"]
    assert len(queued) == 20
    encode = t.cast(Encoder, sender._encode)
    for event in queued:
        assert len(event.request.script_name) <= CAPTURED_VALUE_SIZE
        url = json.loads(encode(event))["target"]["url"]
        assert url.endswith(f"/v2/team/app/blobs/{digest}")
        assert len(url) <= len(f"http://localhost/v2/team/app/blobs/{digest}") + CAPTURED_VALUE_SIZE
    assert not encode._memo


# -- health checks ----------------------------------------------------------------------------------


class Blackhole:
    """A TCP listener that accepts connections and never answers: an upstream that hangs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.first = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.accepted.append(conn)
                self.first.set()
                self.answer(conn)

    def answer(self, conn: socket.socket) -> None:
        """Never: the connection stays open and silent until ``close``."""

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def test_a_hanging_http_check_is_one_request_in_flight(pax_registry_factory: RegistryFactory) -> None:
    # No timeout (distribution's default): the check waits as long as the upstream does, but the next
    # run waits for it; checks never pile up as threads or connections.
    upstream = Blackhole()
    try:
        check = {"uri": f"http://127.0.0.1:{upstream.port}/", "interval": "10ms"}
        registry = pax_registry_factory(
            {"http": {"debug": {"addr": "127.0.0.1:0"}}, "health": {"http": [check]}}
        )
        assert upstream.first.wait(30)
        time.sleep(0.5)  # fifty intervals: a checker per interval would have connected fifty times
        assert len(upstream.accepted) == 1
        # Until it answers, the last status stands: healthy, as in distribution.
        assert requests.get(f"{registry.url}/v2/", timeout=30).status_code == 200
    finally:
        upstream.close()


def test_a_hanging_http_check_with_a_timeout_fails(pax_registry_factory: RegistryFactory) -> None:
    upstream = Blackhole()
    try:
        check = {"uri": f"http://127.0.0.1:{upstream.port}/", "interval": "10ms", "timeout": "50ms"}
        registry = pax_registry_factory(
            {"http": {"debug": {"addr": "127.0.0.1:0"}}, "health": {"http": [check]}}
        )
        response = wait_for_status(registry.debug_url + "/debug/health", 503)
        assert response.json() == {check["uri"]: f"error while checking: {check['uri']}"}
        assert requests.get(f"{registry.url}/v2/", timeout=30).status_code == 503
    finally:
        upstream.close()


# -- the pull-through cache -------------------------------------------------------------------------


class Answers:
    """WSGI middleware in front of a remote registry: requests whose path contains ``marker`` get
    ``respond``'s answer instead of the registry's."""

    def __init__(self, app: WSGIApplication, marker: str, respond: WSGIApplication) -> None:
        self.app, self.marker, self.respond = app, marker, respond
        self.calls = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        if self.marker not in environ["PATH_INFO"]:
            return self.app(environ, start_response)
        self.calls += 1
        return self.respond(environ, start_response)


def endless_manifest(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    start_response(
        "200 OK", [("Content-Type", PROXY_MANIFEST), ("Docker-Content-Digest", "sha256:" + "a" * 64)]
    )
    if environ["REQUEST_METHOD"] == "HEAD":
        return []

    def forever() -> t.Iterator[bytes]:
        yield b'{"schemaVersion": 2, "annotations": {"x": "'
        while True:
            yield b"x" * 65536

    return forever()


def redirect_to_itself(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    start_response("307 Temporary Redirect", [("Location", environ["PATH_INFO"]), ("Content-Length", "0")])
    return []


def unauthorized_forever(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    challenge = f'Bearer realm="http://{environ["HTTP_HOST"]}/token-denied",service="x"'
    body = b'{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}'
    start_response("401 Unauthorized", [("WWW-Authenticate", challenge), ("Content-Length", str(len(body)))])
    return [body]


def proxied(
    factory: RegistryFactory, marker: str, respond: WSGIApplication
) -> tuple[RegistryServer, RegistryServer, Answers]:
    remote = factory()
    remote.push_image(PROXY_REPOSITORY, "1.0")
    answers = Answers(remote.middleware.app, marker, respond)
    remote.middleware.app = answers
    return remote, factory(proxy=remote), answers


def test_an_endless_manifest_from_the_remote_is_cut_at_4_mib(pax_registry_factory: RegistryFactory) -> None:
    _, cache, _ = proxied(pax_registry_factory, "/manifests/", endless_manifest)
    response = requests.get(
        f"{cache.url}/v2/{PROXY_REPOSITORY}/manifests/sha256:{'a' * 64}",
        headers={"Accept": PROXY_MANIFEST},
        timeout=60,
    )
    assert response.status_code == 500, response.text
    assert error_codes(response) == ["UNKNOWN"]
    assert cache.registry.blobs.stat_global(Digest.parse("sha256:" + "a" * 64)) is None


def test_a_remote_redirecting_to_itself_is_an_error(pax_registry_factory: RegistryFactory) -> None:
    _, cache, answers = proxied(pax_registry_factory, "/manifests/", redirect_to_itself)
    response = requests.get(
        f"{cache.url}/v2/{PROXY_REPOSITORY}/manifests/1.0", headers={"Accept": PROXY_MANIFEST}, timeout=60
    )
    # An uncached tag the remote cannot give: distribution's 404.
    assert response.status_code == 404, response.text
    assert error_codes(response) == ["MANIFEST_UNKNOWN"]
    assert answers.calls <= 30


def test_a_remote_answering_401_forever_is_asked_a_bounded_number_of_times(
    pax_registry_factory: RegistryFactory,
) -> None:
    _, cache, answers = proxied(pax_registry_factory, "/v2/", unauthorized_forever)
    response = requests.get(
        f"{cache.url}/v2/{PROXY_REPOSITORY}/manifests/1.0", headers={"Accept": PROXY_MANIFEST}, timeout=60
    )
    assert response.status_code in (401, 404, 500), response.text
    first = answers.calls
    assert first <= 5
    requests.get(
        f"{cache.url}/v2/{PROXY_REPOSITORY}/manifests/1.0", headers={"Accept": PROXY_MANIFEST}, timeout=60
    )
    assert answers.calls - first <= 5


def test_a_manifest_not_matching_its_digest_is_not_stored(pax_registry_factory: RegistryFactory) -> None:
    def other_manifest(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        body = b'{"schemaVersion": 2, "mediaType": "%s", "layers": []}' % PROXY_MANIFEST.encode()
        start_response("200 OK", [("Content-Type", PROXY_MANIFEST), ("Content-Length", str(len(body)))])
        return [body]

    _, cache, _ = proxied(pax_registry_factory, "/manifests/sha256:", other_manifest)
    digest = "sha256:" + "b" * 64
    response = requests.get(
        f"{cache.url}/v2/{PROXY_REPOSITORY}/manifests/{digest}",
        headers={"Accept": PROXY_MANIFEST},
        timeout=60,
    )
    assert response.status_code == 500, response.text
    assert cache.registry.blobs.stat_global(Digest.parse(digest)) is None


@pytest.mark.parametrize(
    "state",
    [
        b'{"a": ' * 100_000,
        b"[1, 2, 3]",
        b'{"a@sha256:x": 5}',
        b'{"team/app@sha256:%s": {"EntryType": 1e999, "ExpiryData": "2020-01-01T00:00:00Z"}}' % (b"c" * 64),
        b'{"team/app@sha256:%s": {"EntryType": NaN, "ExpiryData": "2020-01-01T00:00:00Z"}}' % (b"c" * 64),
        b'{"team/app@sha256:%s": {"EntryType": 0, "ExpiryData": "9999-99-99"}}' % (b"c" * 64),
        b"\xff\xfe not utf-8",
    ],
    ids=[
        "nested 100,000 deep",
        "a list",
        "an entry that is a number",
        "a type of 1e999",
        "a type of NaN",
        "a bad time",
        "not UTF-8",
    ],
)
def test_a_malformed_expiry_state_is_ignored_and_the_cache_serves(
    pax_registry_factory: RegistryFactory, tmp_path: Path, state: bytes
) -> None:
    remote = pax_registry_factory()
    remote.push_image(PROXY_REPOSITORY, "1.0")
    root = tmp_path / "cache"
    (root / STATE_PATH.lstrip("/")).parent.mkdir(parents=True)
    (root / STATE_PATH.lstrip("/")).write_bytes(state)
    config = {"storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}}}
    cache = pax_registry_factory(config, proxy=remote)
    response = requests.get(
        f"{cache.url}/v2/{PROXY_REPOSITORY}/manifests/1.0", headers={"Accept": PROXY_MANIFEST}, timeout=60
    )
    assert response.status_code == 200, response.text


def test_member_names_that_are_not_utf8_are_reported_not_a_500(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path
) -> None:
    raw = "/" + b"\xff\xfe".decode("utf-8", "surrogateescape")
    info = tarfile.TarInfo(raw)
    block = info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape")
    problems = refused(client, registry, with_tail(pack_dir(tmp_path), block))
    assert [rule for _, rule in problems] == ["absolute-path"]


def test_pack_build_reports_a_loop_of_links_instead_of_crashing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = pack_dir(tmp_path)
    (folder / "a").symlink_to("b")
    (folder / "b").symlink_to("a")
    output = tmp_path / "out.tar.gz"
    # Before, Path.resolve raised RuntimeError("Symlink loop") through the CLI: a traceback.
    assert main(["pack", "build", str(folder), "-o", str(output)]) == 1
    err = capsys.readouterr().err
    assert "a: the link leads to a loop of links" in err
    assert not output.exists()


@pytest.mark.parametrize(
    "declared", [-100, 100], ids=["more bytes than declared", "fewer bytes than declared"]
)
def test_a_manifest_with_a_wrong_content_length_is_never_stored_wrong(
    pax_registry_factory: RegistryFactory, declared: int
) -> None:
    remote = pax_registry_factory()
    image = remote.push_image(PROXY_REPOSITORY, "1.0")

    def wrong_length(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        body = image.manifest
        headers = [("Content-Type", PROXY_MANIFEST), ("Docker-Content-Digest", image.digest)]
        start_response("200 OK", [*headers, ("Content-Length", str(len(body) + declared))])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]

    remote.middleware.app = Answers(remote.middleware.app, "/manifests/", wrong_length)
    cache = pax_registry_factory(proxy=remote)
    response = requests.get(
        f"{cache.url}/v2/{PROXY_REPOSITORY}/manifests/{image.digest}",
        headers={"Accept": PROXY_MANIFEST},
        timeout=60,
    )
    if declared < 0:
        # Cut at its Content-Length, the manifest does not match its digest.
        assert response.status_code == 500, response.text
        assert error_codes(response) == ["UNKNOWN"]
        assert cache.registry.blobs.stat_global(Digest.parse(image.digest)) is None
    else:
        # The connection ends early, but what came matches the digest: that is the manifest.
        assert response.status_code == 200, response.text
        assert response.content == image.manifest


def test_a_blob_bigger_than_its_head_announced_is_never_stored_short(
    pax_registry_factory: RegistryFactory,
) -> None:
    remote = pax_registry_factory()
    image = remote.push_image(PROXY_REPOSITORY, "1.0", size=300_000)
    layer = image.layers[0]
    inner = remote.middleware.app

    def small_head(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        if environ["REQUEST_METHOD"] != "HEAD":
            return inner(environ, start_response)
        start_response("200 OK", [("Content-Length", "1000"), ("Docker-Content-Digest", layer)])
        return []

    remote.middleware.app = Answers(inner, "/blobs/", small_head)
    cache = pax_registry_factory(proxy=remote)
    try:
        response = requests.get(f"{cache.url}/v2/{PROXY_REPOSITORY}/blobs/{layer}", timeout=60)
        body = response.content
    except requests.exceptions.RequestException:
        body = None  # the connection was broken: the client knows it did not get the blob
    if body is not None:
        # As distribution, which copies the size its Stat gave (io.CopyN): the first bytes of the blob,
        # framed as announced; the client's digest check refuses them.
        assert response.status_code == 200
        assert len(body) == int(response.headers["Content-Length"]) == 1000
        assert f"sha256:{hashlib.sha256(body).hexdigest()}" != layer
    # Whatever the client got, the cache holds the blob whole or not at all, and still serves.
    stored = cache.registry.blobs.stat_global(Digest.parse(layer))
    assert stored is None or stored.size == 300_000
    assert requests.get(f"{cache.url}/v2/", timeout=30).status_code == 200


def test_manifests_pointing_at_one_zip_bomb_read_it_once(
    registry: RegistryServer, client: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hooks, "LIMITS", Limits(uncompressed=8 * 1024 * 1024))
    monkeypatch.setattr(hooks, "_checked", collections.OrderedDict())  # what other tests checked
    opened: list[str] = []
    blobs = registry.registry.blobs
    original = blobs.open

    def counting_open(name: str, digest: Digest, offset: int = 0) -> t.BinaryIO:
        opened.append(str(digest))
        return original(name, digest, offset)

    monkeypatch.setattr(blobs, "open", counting_open)
    data = bomb(16, 4 * 1024 * 1024)
    for tag in ("1.0.0", "1.0.1", "1.0.2"):
        response = push_archive(client, REPOSITORY, tag, data)
        assert problems_of(response) == {("archive", "uncompressed-size")}
    assert len(opened) == 1


def is_open(conn: socket.socket) -> bool:
    """Whether the peer has not closed ``conn``: what it sent is read and dropped, without waiting."""
    while True:
        try:
            if not conn.recv(65536, socket.MSG_DONTWAIT):
                return False
        except BlockingIOError:
            return True


class Trickle(Blackhole):
    """A listener that answers a byte at a time, 20 ms apart, forever: every read succeeds in time."""

    def answer(self, conn: socket.socket) -> None:
        threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while True:
                conn.sendall(b"X")
                time.sleep(0.02)


def test_a_trickling_http_check_fails_at_its_timeout(pax_registry_factory: RegistryFactory) -> None:
    # Go's http.Client timeout bounds the whole exchange, so distribution fails this check after
    # 200 ms; a timeout per read would wait forever, each byte coming within it.
    upstream = Trickle()
    try:
        check = {"uri": f"http://127.0.0.1:{upstream.port}/", "interval": "10ms", "timeout": "200ms"}
        registry = pax_registry_factory(
            {"http": {"debug": {"addr": "127.0.0.1:0"}}, "health": {"http": [check]}}
        )
        wait_for_status(registry.debug_url + "/debug/health", 503)
        assert len(upstream.accepted) == 1  # still one exchange in flight: the slow one is not repeated
    finally:
        upstream.close()


def test_a_tcp_check_to_a_blackhole_fails_at_its_timeout(pax_registry_factory: RegistryFactory) -> None:
    # A listener whose accept queue is full: Linux drops further SYNs, so a connect hangs, as to an
    # address that drops packets.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            queued.append(filler)
        addr = f"127.0.0.1:{port}"
        check = {"addr": addr, "interval": "10ms", "timeout": "100ms"}
        registry = pax_registry_factory(
            {"http": {"debug": {"addr": "127.0.0.1:0"}}, "health": {"tcp": [check]}}
        )
        response = wait_for_status(registry.debug_url + "/debug/health", 503)
        assert response.json() == {addr: f"connection to {addr} failed"}
    finally:
        for filler in queued:
            filler.close()
        listener.close()


@pytest.mark.parametrize("kind", [tarfile.REGTYPE, tarfile.XHDTYPE], ids=["a file", "a PAX header"])
def test_a_negative_member_size_is_damage(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path, kind: bytes
) -> None:
    # GNU's base-256 size field can say -1; tarfile took such a member and read on as if it were fine.
    block = bytearray(header(f"{TOP}/negative", 0, kind))
    block[124:136] = b"\xff" * 11 + b"\x00"
    _checksum(block)
    problems = refused(client, registry, with_tail(pack_dir(tmp_path), bytes(block)))
    assert problems == {(f"{TOP}/negative", "tar")}


def symlink(name: str, target: str) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info.tobuf(format=tarfile.GNU_FORMAT)


@pytest.mark.parametrize("reverse", [False, True], ids=["link first", "link last"])
def test_a_link_through_another_link_is_refused(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path, reverse: bool
) -> None:
    # "a -> sub/.." is the pack's own directory; "b -> a/.." reads as the same by its name, but once
    # "a" is a link it is the directory above the pack: a tar extracting both writes outside.
    links = [symlink(f"{TOP}/a", "sub/.."), symlink(f"{TOP}/b", "a/..")]
    tail = b"".join(reversed(links) if reverse else links)
    assert refused(client, registry, with_tail(pack_dir(tmp_path), tail)) == {("b", "link-outside")}


def test_links_that_stay_inside_are_fine(client: RegistryClient, tmp_path: Path) -> None:
    tail = symlink(f"{TOP}/README", "README.md") + symlink(f"{TOP}/here", "manifests/..")
    response = push_archive(client, REPOSITORY, "1.0.0", with_tail(pack_dir(tmp_path), tail))
    assert response.status_code == 201, response.text


def test_a_remote_that_never_answers_does_not_hold_up_the_start(
    pax_registry_factory: RegistryFactory,
) -> None:
    # The start-up ping only writes a log line: before, the start waited out its 30 s timeout (and for
    # ever for a remote sending a byte at a time).
    upstream = Blackhole()
    try:
        cache = pax_registry_factory({"proxy": {"remoteurl": f"http://127.0.0.1:{upstream.port}"}})
        assert requests.get(f"{cache.url}/v2/", timeout=30).status_code == 200
        assert upstream.first.wait(30)
        # The ping is still waiting for its answer: its connection is open (the old start gave up
        # after 30 s and closed it).
        assert is_open(upstream.accepted[0])
    finally:
        upstream.close()


def link_loop(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    body = b'{"name": "team/app", "tags": ["a"]}'
    link = f'<{environ["PATH_INFO"]}?n=1>; rel="next"'
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Link", link)]
    start_response("200 OK", headers)
    return [body]


def test_a_remote_whose_tag_pages_link_in_a_loop_is_read_once(pax_registry_factory: RegistryFactory) -> None:
    # Before: the cache followed the loop forever, keeping every page (23,899 requests in 5 s).
    _, cache, answers = proxied(pax_registry_factory, "/tags/list", link_loop)
    response = requests.get(f"{cache.url}/v2/{PROXY_REPOSITORY}/tags/list", timeout=60)
    assert response.status_code == 200
    assert response.json()["tags"] == ["a"]
    assert answers.calls <= 2


def test_made_up_methods_do_not_grow_the_metrics(pax_registry_factory: RegistryFactory) -> None:
    # Before: each distinct method became a label value with ~17 series (600 requests: ~1 MB of
    # /metrics), without a bound. client_golang since 1.15 counts methods it does not know as "unknown".
    registry = pax_registry_factory(
        {"http": {"debug": {"addr": "127.0.0.1:0", "prometheus": {"enabled": True}}}}
    )
    for n in range(50):
        requests.request(f"X{n}", f"{registry.url}/v2/", timeout=30)
    metrics = requests.get(f"{registry.debug_url}/metrics", timeout=30).text
    assert 'method="x1"' not in metrics
    assert 'method="unknown"' in metrics


@pytest.mark.parametrize("storage", ["inmemory", "filesystem"])
def test_a_stored_blob_pushed_again_with_a_cut_off_body_changes_nothing(
    pax_registry_factory: RegistryFactory, storage: str
) -> None:
    # A PUT of a blob storage already holds is verified without being written: a client that stops
    # half-way must neither link the blob nor disturb the stored copy, and the server keeps serving.
    registry = pax_registry_factory(storage=storage)
    content = bytes(range(256)) * 8192  # 2 MiB
    digest = Blob(content).digest
    client = RegistryClient(registry.url)
    try:
        assert client.push_blob("cut/first", Blob(content)).status_code == 201
        started = client.post("/v2/cut/second/blobs/uploads/")
        assert started.status_code == 202
        location = urllib.parse.urlsplit(started.headers["Location"])
        target = f"{location.path}?{location.query}&digest={digest}"
        head = (
            f"PUT {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(content)}\r\n\r\n"
        ).encode()
        with RawConnection(registry.port) as raw:
            raw.send(head + content[: len(content) // 2])
        # The server notices the cut when it reads on; the stored blob stays whole meanwhile and after.
        assert client.get(f"/v2/cut/second/blobs/{digest}").status_code == 404
        whole = client.get(f"/v2/cut/first/blobs/{digest}")
        assert whole.status_code == 200 and whole.content == content
        again = client.push_blob("cut/second", Blob(content))
        assert again.status_code == 201
    finally:
        client.close()
