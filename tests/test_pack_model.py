"""The pack model on its own: reading packs (directories and archives, bad archives included),
pack.json's schema rule by rule, and the layout checks; no registry involved."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import typing as t
from pathlib import Path

import pytest

from emulator.packs import Limits
from emulator.packs import PackProblem
from emulator.packs import check
from emulator.packs import read_pack
from emulator.packs import schema
from pax_registry_fixtures.packs import logo_png
from pax_registry_fixtures.packs import pack_dir

Member = tuple[tarfile.TarInfo, bytes | None]


def rules(problems: t.Iterable[PackProblem]) -> set[tuple[str, str]]:
    return {(p.path, p.rule) for p in problems}


def archive_bytes(folder: Path, *, top: bool = True) -> bytes:
    """``tar -czf x.tar.gz <folder>`` (``top``), or ``tar -czf x.tar.gz -C <folder> .``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=folder.name if top else ".")
    return buffer.getvalue()


def tar_gz(members: t.Sequence[Member], *, base: Path | None = None) -> bytes:
    """A gzipped tar of ``members`` written as given (paths, links and types unchecked), after the
    files of a valid pack under ``base`` when one is given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        if base is not None:
            archive.add(base, arcname=base.name)
        for info, data in members:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = linkname
    return member


def check_bytes(data: bytes, limits: Limits | None = None) -> list[PackProblem]:
    return check(io.BytesIO(data), limits or Limits())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return pack_dir(tmp_path / "src")


# -- valid packs ------------------------------------------------------------------------------------


def test_a_valid_pack_directory_archive_and_stream_have_no_problem(folder: Path, tmp_path: Path) -> None:
    archive = tmp_path / "pack.tar.gz"
    archive.write_bytes(archive_bytes(folder))
    assert check(folder) == []
    assert check(archive) == []
    assert check(str(archive)) == []
    assert check_bytes(archive.read_bytes()) == []


def test_read_pack_gives_the_files_and_pack_json(folder: Path) -> None:
    pack = read_pack(io.BytesIO(archive_bytes(folder)))
    assert pack.problems == ()
    assert pack.pack_json is not None and pack.pack_json["name"] == "pax-demo"
    assert {"pack.json", "values.yaml", "logo.png", "README.md", "manifests/x.yaml"} <= pack.files


def test_an_archive_without_the_top_directory_is_read_too(folder: Path) -> None:
    assert check_bytes(archive_bytes(folder, top=False)) == []


def test_readme_is_optional_and_values_yaml_may_be_empty(folder: Path) -> None:
    (folder / "README.md").unlink()
    (folder / "values.yaml").write_text("")
    assert check(folder) == []


def test_a_helm_pack_names_its_charts_directories_and_tgz_files(folder: Path) -> None:
    (folder / "charts" / "nested").mkdir(parents=True)
    (folder / "charts" / "nested" / "Chart.yaml").write_text("name: nested\n")
    (folder / "charts" / "demo-1.0.0.tgz").write_bytes(gzip.compress(b"chart"))
    write_pack_json(folder, charts=["charts/demo-1.0.0.tgz", "charts/nested"], kubeManifests=None)
    assert check(folder) == []
    assert check_bytes(archive_bytes(folder)) == []


def test_links_that_stay_inside_the_pack_are_fine(folder: Path) -> None:
    os.symlink("x.yaml", folder / "manifests" / "y.yaml")
    hard = info(f"{folder.name}/hard.yaml", tarfile.LNKTYPE, f"{folder.name}/manifests/x.yaml")
    data = tar_gz([(hard, None)], base=folder)
    assert check(folder) == []
    assert check_bytes(archive_bytes(folder)) == []
    assert check_bytes(data) == []


def test_the_schema_ships_with_the_package() -> None:
    document = schema()
    assert document["required"] == ["name", "displayName", "version", "layer"]
    assert document["$defs"]["layer"]["enum"] == ["kernel", "os", "k8s", "cni", "csi", "addon"]


# -- pack.json, rule by rule ------------------------------------------------------------------------


def write_pack_json(folder: Path, **overrides: t.Any) -> None:
    path = folder / "pack.json"
    document = {**json.loads(path.read_text()), **overrides}
    path.write_text(json.dumps({k: v for k, v in document.items() if v is not None}))


SCHEMA_CASES: list[tuple[dict[str, t.Any], tuple[str, str]]] = [
    ({"name": None}, ("$.name", "required")),
    ({"displayName": None}, ("$.displayName", "required")),
    ({"version": None}, ("$.version", "required")),
    ({"layer": None}, ("$.layer", "required")),
    ({"name": ""}, ("$.name", "minLength")),
    ({"displayName": ""}, ("$.displayName", "minLength")),
    ({"version": ""}, ("$.version", "minLength")),
    ({"name": 7}, ("$.name", "type")),
    ({"layer": "database"}, ("$.layer", "enum")),
    ({"group": 1}, ("$.group", "type")),
    ({"addonType": ["logging"]}, ("$.addonType", "type")),
    ({"addonSubType": 2}, ("$.addonSubType", "type")),
    ({"cloudTypes": "aws"}, ("$.cloudTypes", "type")),
    ({"cloudTypes": ["aws", "mars"]}, ("$.cloudTypes[1]", "enum")),
    ({"cloudType": "mars"}, ("$.cloudType", "enum")),
    ({"eol": 20300101}, ("$.eol", "type")),
    ({"annotations": ["a"]}, ("$.annotations", "type")),
    ({"annotations": {"imageId": 5}}, ("$.annotations.imageId", "type")),
    ({"charts": "charts/x.tgz"}, ("$.charts", "type")),
    ({"charts": ["/etc/x.tgz"]}, ("$.charts[0]", "pattern")),
    ({"kubeManifests": ["../x.yaml"]}, ("$.kubeManifests[0]", "pattern")),
    ({"kubeManifests": ["manifests/../../x.yaml"]}, ("$.kubeManifests[0]", "pattern")),
    ({"kubeManifests": [""]}, ("$.kubeManifests[0]", "minLength")),
    ({"kubeManifests": ["manifests/missing.yaml"]}, ("$.kubeManifests[0]", "exists")),
    ({"charts": ["charts/missing-1.0.0.tgz"]}, ("$.charts[0]", "exists")),
    ({"ansibleRoles": [1]}, ("$.ansibleRoles[0]", "type")),
    ({"constraints": []}, ("$.constraints", "type")),
    ({"constraints": {"dependencies": {}}}, ("$.constraints.dependencies", "type")),
    ({"constraints": {"dependencies": [{}]}}, ("$.constraints.dependencies[0].packName", "required")),
    (
        {"constraints": {"dependencies": [{"packName": "csi", "type": "maybe"}]}},
        ("$.constraints.dependencies[0].type", "enum"),
    ),
    (
        {"constraints": {"dependencies": [{"packName": "csi", "layer": "db"}]}},
        ("$.constraints.dependencies[0].layer", "enum"),
    ),
    (
        {"constraints": {"dependencies": [{"packName": "csi", "minVersion": 1}]}},
        ("$.constraints.dependencies[0].minVersion", "type"),
    ),
    ({"constraints": {"resources": [{"type": "gpu"}]}}, ("$.constraints.resources[0].type", "enum")),
    ({"constraints": {"resources": [{"minLimit": "2"}]}}, ("$.constraints.resources[0].minLimit", "type")),
    (
        {"constraints": {"resources": [{"components": [{"scheduleType": 1}]}]}},
        ("$.constraints.resources[0].components[0].scheduleType", "type"),
    ),
]


@pytest.mark.parametrize(("overrides", "expected"), SCHEMA_CASES, ids=[str(c[1]) for c in SCHEMA_CASES])
def test_each_schema_rule(folder: Path, overrides: dict[str, t.Any], expected: tuple[str, str]) -> None:
    write_pack_json(folder, **overrides)
    problems = check(folder)
    assert rules(problems) == {expected}
    assert all(p.message for p in problems)


def test_the_documented_optional_fields_are_accepted(folder: Path) -> None:
    write_pack_json(
        folder,
        group="lts",
        addonType="load balancer",
        addonSubType="l4",
        cloudTypes=["all", "edge-native", "tencent", "custom"],
        cloudType="aws",
        eol="2030-01-01",
        annotations={"imageId": "ami-1", "skipK8sInstall": "true"},
        ansibleRoles=["roles/x"],
        constraints={
            "dependencies": [
                {
                    "packName": "csi-aws",
                    "layer": "csi",
                    "minVersion": "1.0.0",
                    "maxVersion": "2.0.0",
                    "type": "required",
                }
            ],
            "resources": [
                {
                    "type": "cpu",
                    "minLimit": 2,
                    "components": [
                        {"scheduleType": "all", "resourceRequestParamRef": "a", "replicaCountParamRef": "b"}
                    ],
                }
            ],
        },
        somethingUndocumented={"kept": True},
    )
    assert check(folder) == []


def test_every_problem_is_reported_at_once(folder: Path) -> None:
    write_pack_json(folder, name="", layer="db", cloudTypes=["mars"], displayName=None)
    (folder / "logo.png").unlink()
    problems = check(folder)
    assert rules(problems) == {
        ("$.name", "minLength"),
        ("$.layer", "enum"),
        ("$.cloudTypes[0]", "enum"),
        ("$.displayName", "required"),
        ("logo.png", "missing-file"),
    }
    assert str(problems[0]).endswith("]")


def test_pack_json_that_is_not_json_or_not_an_object(folder: Path) -> None:
    (folder / "pack.json").write_text("{name: nope")
    assert rules(check(folder)) == {("pack.json", "json")}
    (folder / "pack.json").write_text("[1, 2]")
    assert rules(check(folder)) == {("$", "type")}


def test_deeply_nested_files_are_problems_not_crashes(folder: Path) -> None:
    # Deeper than Python's recursion limit (values.yaml goes through the pure-Python loader).
    (folder / "pack.json").write_text("[" * 1100 + "]" * 1100)
    (folder / "values.yaml").write_text("[" * 1100 + "]" * 1100)
    assert rules(check(folder)) == {("pack.json", "json"), ("values.yaml", "yaml")}


# -- the layout -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pack.json", "values.yaml", "logo.png"])
def test_each_mandatory_file(folder: Path, name: str) -> None:
    (folder / name).unlink()
    assert rules(check(folder)) == {(name, "missing-file")}
    assert rules(check_bytes(archive_bytes(folder))) == {(name, "missing-file")}


@pytest.mark.parametrize("content", ["pack: [unclosed\n", "- a list\n- not a mapping\n"])
def test_values_yaml_is_yaml_and_a_mapping(folder: Path, content: str) -> None:
    (folder / "values.yaml").write_text(content)
    assert rules(check(folder)) == {("values.yaml", "yaml")}


def test_logo_png_is_a_png(folder: Path) -> None:
    (folder / "logo.png").write_bytes(b"GIF89a" + logo_png()[6:])
    assert rules(check(folder)) == {("logo.png", "png")}


def test_a_pack_json_above_the_small_file_limit(folder: Path) -> None:
    write_pack_json(folder, annotations={"padding": "x" * 2048})
    assert rules(check(folder, Limits(small_file=1024))) == {("pack.json", "size")}


def test_a_directory_link_leaving_the_pack(folder: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s")
    os.symlink(tmp_path / "secret", folder / "manifests" / "leak.yaml")
    assert rules(check(folder)) == {("manifests/leak.yaml", "link-outside")}


def test_a_fifo_in_a_pack_directory(folder: Path) -> None:
    os.mkfifo(folder / "pipe")
    assert rules(check(folder)) == {("pipe", "special-file")}


# -- bad archives -----------------------------------------------------------------------------------


def test_not_gzip(folder: Path) -> None:
    assert rules(check_bytes(b"PK\x03\x04 this is a zip, not a gzip" * 10)) == {("archive", "gzip")}


def test_gzip_but_not_tar() -> None:
    assert rules(check_bytes(gzip.compress(b"just some text, no tar header" * 100))) == {("archive", "tar")}


def test_a_cut_short_archive(folder: Path) -> None:
    data = archive_bytes(folder)
    assert rules(check_bytes(data[: len(data) // 2])) == {("archive", "gzip")}


def test_an_empty_file() -> None:
    assert [p.path for p in check_bytes(b"")] == ["archive"]


def test_an_absolute_member_path_is_reported_and_nothing_is_written(folder: Path, tmp_path: Path) -> None:
    escaped = tmp_path / "escaped.txt"
    data = tar_gz([(info(str(escaped)), b"owned")], base=folder)
    assert rules(check_bytes(data)) == {(str(escaped), "absolute-path")}
    assert not escaped.exists()


def test_a_parent_member_path(folder: Path) -> None:
    name = f"{folder.name}/../../escaped.txt"
    assert rules(check_bytes(tar_gz([(info(name), b"owned")], base=folder))) == {(name, "parent-path")}


@pytest.mark.parametrize("target", ["/etc/passwd", "../../etc/passwd", "../other-pack/pack.json"])
def test_a_symlink_out_of_the_pack(folder: Path, target: str) -> None:
    data = tar_gz([(info(f"{folder.name}/leak", tarfile.SYMTYPE, target), None)], base=folder)
    assert rules(check_bytes(data)) == {("leak", "link-outside")}


def test_a_hard_link_out_of_the_pack(folder: Path) -> None:
    data = tar_gz([(info(f"{folder.name}/leak", tarfile.LNKTYPE, "etc/passwd"), None)], base=folder)
    assert rules(check_bytes(data)) == {("leak", "link-outside")}


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_device_files(folder: Path, kind: bytes) -> None:
    data = tar_gz([(info(f"{folder.name}/dev", kind), None)], base=folder)
    assert rules(check_bytes(data)) == {("dev", "special-file")}


def test_files_outside_the_top_directory(folder: Path) -> None:
    data = tar_gz([(info("stray.txt"), b"x")], base=folder)
    assert rules(check_bytes(data)) == {("stray.txt", "top-directory")}


def test_a_damaged_member_header_after_the_first(folder: Path) -> None:
    # tarfile stops at such a header as at the end of the archive: the damage must still be seen.
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        archive.add(folder, arcname=folder.name)
        archive.addfile(info(f"{folder.name}/extra.txt"), io.BytesIO(b""))
        last = archive.getmembers()[-1]
    data = bytearray(tar.getvalue())
    data[last.offset + 148 : last.offset + 156] = b"9999999\0"  # the header checksum
    assert rules(check_bytes(gzip.compress(bytes(data)))) == {("archive", "tar")}


def test_a_gzip_crc_mismatch(folder: Path) -> None:
    data = bytearray(archive_bytes(folder))
    data[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    assert rules(check_bytes(bytes(data))) == {("archive", "gzip")}


def test_over_the_compressed_size_cap(folder: Path) -> None:
    (folder / "blob.bin").write_bytes(os.urandom(64 * 1024))
    assert rules(check_bytes(archive_bytes(folder), Limits(compressed=16 * 1024))) == {("archive", "size")}


def test_over_the_member_count_cap(folder: Path) -> None:
    assert rules(check_bytes(archive_bytes(folder), Limits(members=3))) == {("archive", "members")}


def test_a_member_declaring_more_than_the_uncompressed_cap(folder: Path) -> None:
    huge = info(f"{folder.name}/huge.bin")
    huge.size = 1 << 40  # a header only: the data is never there
    data = tar_gz([(huge, None)], base=folder)
    assert rules(check_bytes(data, Limits(uncompressed=1 << 30))) == {("huge.bin", "uncompressed-size")}


class CountingReader(io.RawIOBase):
    """Serves ``data`` and counts what was read of it."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: t.Any) -> int:
        chunk = self.data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        self.read_bytes += len(chunk)
        return len(chunk)


def zip_bomb(folder: Path, members: int, member_size: int) -> bytes:
    """A valid pack plus ``members`` files of ``member_size`` zero bytes, compressed about a
    thousandfold; no member declares more than ``member_size``."""
    buffer = io.BytesIO()
    zeros = bytes(member_size)
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=9) as archive:
        archive.add(folder, arcname=folder.name)
        for number in range(members):
            member = info(f"{folder.name}/zeros{number}.bin")
            member.size = member_size
            archive.addfile(member, io.BytesIO(zeros))
    return buffer.getvalue()


def test_a_zip_bomb_is_stopped_at_the_uncompressed_cap(folder: Path) -> None:
    data = zip_bomb(folder, 32, 2 * 1024 * 1024)  # 64 MiB unpacked
    assert len(data) < 1024 * 1024
    source = CountingReader(data)
    problems = check(t.cast(t.IO[bytes], source), Limits(uncompressed=2 * 1024 * 1024))
    assert rules(problems) == {("archive", "uncompressed-size")}
    # Reading stopped near the cap: far from all of the (already small) compressed stream.
    assert source.read_bytes < len(data) // 2


def test_a_storage_error_while_reading_is_not_a_pack_problem(folder: Path) -> None:
    class Failing(CountingReader):
        def readinto(self, buffer: t.Any) -> int:
            if self.read_bytes:
                raise OSError("disk gone")
            return super().readinto(buffer)

    with pytest.raises(OSError, match="disk gone"):
        check(t.cast(t.IO[bytes], Failing(archive_bytes(folder))))
