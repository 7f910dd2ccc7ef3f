"""The wheel as users get it: its import names, its files, and that it installs beside testing-cabal's
``fixtures`` package in either order, each surviving the other's removal."""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.installs import PROJECT
from tests.installs import Venv
from tests.installs import build_wheel
from tests.installs import copy_source
from tests.installs import download_wheelhouse
from tests.installs import run

#: The import name the ``fixtures/`` folder installs as.
FIXTURES_PACKAGE = "pax_registry_fixtures"
FOLDERS = {"emulator": "emulator", "conformance": "conformance", "fixtures": FIXTURES_PACKAGE}


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return download_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    source = copy_source(tmp_path_factory.mktemp("build") / "src")
    return build_wheel(source, wheelhouse, tmp_path_factory.mktemp("dist"))


def _wheel_files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        [record] = [name for name in archive.namelist() if name.endswith(".dist-info/RECORD")]
        return [line.split(",")[0] for line in archive.read(record).decode().splitlines() if line]


def _wheel_metadata(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        [member] = [entry for entry in archive.namelist() if entry.endswith(f".dist-info/{name}")]
        return archive.read(member).decode()


def _readme_import_names() -> set[str]:
    readme = (PROJECT / "README.md").read_text()
    sentence = re.search(r"The wheel installs \w+ top-level import packages: ([^(]*)\(", readme)
    assert sentence is not None, "the README no longer lists the wheel's top-level import names"
    return set(re.findall(r"`([\w.]+)`", sentence.group(1)))


def test_the_wheels_top_level_import_names_are_the_readmes(wheel: Path) -> None:
    files = _wheel_files(wheel)
    from_record = {path.split("/")[0] for path in files if not path.split("/")[0].endswith(".dist-info")}
    from_top_level = set(_wheel_metadata(wheel, "top_level.txt").split())

    assert from_record == from_top_level == {"emulator", "conformance", FIXTURES_PACKAGE}
    assert _readme_import_names() == from_record


def test_every_file_of_the_packages_is_in_the_wheel_with_the_license(wheel: Path) -> None:
    files = set(_wheel_files(wheel))
    expected = {
        "/".join((FOLDERS[path.parts[0]], *path.parts[1:]))
        for folder in FOLDERS
        for path in (p.relative_to(PROJECT) for p in (PROJECT / folder).rglob("*") if p.is_file())
        if "__pycache__" not in path.parts
    }

    assert expected - files == set()
    [license_file] = [name for name in files if name.endswith("/LICENSE")]
    assert license_file.split("/")[0].endswith(".dist-info")


def test_the_pytest_plugin_entry_point_names_the_installed_package(wheel: Path) -> None:
    entry_points = _wheel_metadata(wheel, "entry_points.txt")

    assert f"pax_registry = {FIXTURES_PACKAGE}.plugin" in entry_points
    assert "pax_conformance = conformance.plugin" in entry_points


#: Run by the venv's pytest: our plugin's fixture serves a registry, and testing-cabal's package works in
#: the same process.
COEXISTENCE_TESTS = f"""
import importlib
import os

import requests


def test_ours(pax_registry):
    import {FIXTURES_PACKAGE}

    assert {FIXTURES_PACKAGE}.RegistryServer is type(pax_registry)
    assert requests.get(pax_registry.url_for("/v2/")).status_code == 200


def test_theirs():
    # By string: the project's own imports of its fixtures package are renamed mechanically.
    theirs = importlib.import_module("fixtures")

    with theirs.TempDir() as temporary:
        assert os.path.isdir(temporary.path)
    assert not os.path.exists(temporary.path)
"""


def _check(venv: Venv, workdir: Path, *, ours: bool, theirs: bool) -> None:
    """Each installed package works, and a removed one left nothing importable behind."""
    found = run(
        venv.python,
        "-c",
        f"import importlib.util as u; print(*(getattr(u.find_spec(n), 'origin', None) "
        f"for n in ('{FIXTURES_PACKAGE}', 'fixtures')))",
        cwd=workdir,
    )
    for origin, present in zip(found.split(), (ours, theirs), strict=True):
        assert origin.startswith(str(venv.path)) if present else origin == "None", found
    tests = [name for name, present in (("test_ours", ours), ("test_theirs", theirs)) if present]
    # pytest loads our plugin from the installed package's entry point: no conftest, no -p.
    ids = [f"test_both.py::{name}" for name in tests]
    output = run(venv.python, "-m", "pytest", "-p", "no:cacheprovider", "-q", *ids, cwd=workdir)
    assert f"{len(tests)} passed" in output, output


@pytest.mark.parametrize("first", ["ours", "theirs"])
def test_installs_beside_testing_cabals_fixtures_in_either_order(
    tmp_path: Path, wheel: Path, wheelhouse: Path, first: str
) -> None:
    venv = Venv(tmp_path / "venv")
    [theirs] = wheelhouse.glob("fixtures-*.whl")
    packages = {"ours": wheel, "theirs": theirs}
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "test_both.py").write_text(COEXISTENCE_TESTS)

    for name in sorted(packages, key=lambda name: name != first):
        venv.install(packages[name])
    _check(venv, workdir, ours=True, theirs=True)

    venv.uninstall("fixtures")
    _check(venv, workdir, ours=True, theirs=False)

    venv.install(theirs)
    _check(venv, workdir, ours=True, theirs=True)
    venv.uninstall("pax-registry-harness")
    _check(venv, workdir, ours=False, theirs=True)


#: A section of each configuration that needs an extra, the key the error names, and the message.
NEEDS_AN_EXTRA: dict[str, tuple[dict[str, object], str]] = {
    "s3": (
        {"storage": {"s3": {"region": "us-east-1", "bucket": "registry"}}},
        "storage.s3: needs the boto3 package: pip install 'pax-registry-harness[s3]'",
    ),
    "redis": (
        {
            "storage": {"inmemory": {}, "cache": {"blobdescriptor": "redis"}},
            "redis": {"addr": "127.0.0.1:6379"},
        },
        "storage.cache.blobdescriptor: needs the redis package: pip install 'pax-registry-harness[redis]'",
    ),
    "acme": (
        {
            "http": {
                "addr": "127.0.0.1:0",
                "tls": {"letsencrypt": {"cachefile": "le.cache", "hosts": ["a.test"]}},
            }
        },
        "http.tls.letsencrypt: needs the acme and josepy packages: pip install 'pax-registry-harness[acme]'",
    ),
}


@pytest.fixture(scope="module")
def plain_install(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Venv:
    """The wheel without extras: boto3, redis, acme and josepy are not there."""
    venv = Venv(tmp_path_factory.mktemp("plain") / "venv", hide={"boto3", "redis", "acme", "josepy"})
    venv.install(wheel)
    return venv


@pytest.mark.parametrize("command", ["check-config", "serve"])
@pytest.mark.parametrize("extra", sorted(NEEDS_AN_EXTRA))
def test_a_missing_extra_stops_the_cli_with_one_line_naming_it(
    plain_install: Venv, tmp_path: Path, command: str, extra: str
) -> None:
    section, problem = NEEDS_AN_EXTRA[extra]
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"version": "0.1", "storage": {"inmemory": {}}, **section}))
    registry = plain_install.path / "bin" / "registry"

    result = subprocess.run(
        [str(registry), command, str(config)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    assert (result.returncode, result.stderr) == (1, f"configuration error: {config}: {problem}\n")


def test_code_that_builds_the_app_itself_is_told_the_extra_too(plain_install: Venv, tmp_path: Path) -> None:
    section, problem = NEEDS_AN_EXTRA["s3"]
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"version": "0.1", **section}))
    script = f"""
from emulator.app import make_app
from emulator.config import load
from emulator.extras import MissingExtraError
try:
    make_app(load({str(config)!r}).config)
except MissingExtraError as e:
    print(e)
try:
    import emulator.drivers.s3
except ModuleNotFoundError as e:
    print(e.name, e)
"""

    output = run(plain_install.python, "-c", script, cwd=tmp_path)

    assert output.splitlines() == [
        f"{config}: {problem}",
        "boto3 the s3 storage driver needs the boto3 package: pip install 'pax-registry-harness[s3]'",
    ]
