"""Helpers for the tests that install the project as a user would: a clean copy of the source tree, a
wheelhouse of what building and the coexistence test need, fresh virtualenvs and the wheel.

Installs are offline (``--no-index``): the project's runtime dependencies come from this interpreter's
environment, appended to the new venv's path; only the wheelhouse is downloaded, once per session.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import typing as t
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
#: What a source distribution holds: building from a copy keeps the checkout's build/ (whose stale files
#: setuptools would put in the wheel) out, and lets parallel tests build at once.
SOURCE_ITEMS = ("pyproject.toml", "README.md", "LICENSE", "emulator", "fixtures", "conformance")
#: The build backend (pyproject's build-system) and testing-cabal's ``fixtures``, whose import name the
#: project's fixtures folder must not take.
WHEELHOUSE_REQUIREMENTS = ("setuptools>=68", "wheel", "fixtures")


def run(*args: str | Path, cwd: Path | None = None, env: t.Mapping[str, str] | None = None) -> str:
    """Run a command; its output, or an AssertionError that shows it."""
    result = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{' '.join(map(str, args))}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def copy_source(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in SOURCE_ITEMS:
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    return dest


def pip(*args: str | Path) -> str:
    return run(sys.executable, "-m", "pip", "--disable-pip-version-check", *args)


def download_wheelhouse(dest: Path) -> Path:
    pip("download", "--quiet", "--only-binary", ":all:", "--dest", dest, *WHEELHOUSE_REQUIREMENTS)
    return dest


def build_wheel(source: Path, wheelhouse: Path, dest: Path) -> Path:
    """The wheel of ``source``, built offline by ``pip wheel`` with the wheelhouse's setuptools."""
    pip(
        "wheel", "--quiet", "--no-deps", "--no-index", "--find-links", wheelhouse, "--wheel-dir", dest, source
    )
    [wheel] = dest.glob("pax_registry_harness-*.whl")
    return wheel


def dependency_paths() -> list[str]:
    """Where this interpreter finds the project's dependencies."""
    candidates = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return list(dict.fromkeys(path for path in candidates if os.path.isdir(path)))


def _dependencies_without(dest: Path, hidden: set[str]) -> Path:
    """A directory of links to this environment's packages, less the ``hidden`` ones (their modules and
    their metadata both: ``boto3`` hides ``boto3/`` and ``boto3-1.34.0.dist-info``)."""
    dest.mkdir()
    for directory in dependency_paths():
        for entry in Path(directory).iterdir():
            top = entry.name.split("-")[0].split(".")[0]
            if top not in hidden and not (dest / entry.name).exists():
                (dest / entry.name).symlink_to(entry)
    return dest


class Venv:
    """A virtualenv without pip (this interpreter's pip installs into it) that sees this environment's
    packages after its own, less the project itself and the ``hide`` ones.

    They come through a ``.pth`` file naming a directory of links, not ``--system-site-packages``: the
    project's editable install here would otherwise answer for our import names and offer its pytest
    entry point when the venv's copy is gone.
    """

    def __init__(self, path: Path, *, hide: t.Collection[str] = ()) -> None:
        """:param hide: distributions (by top-level name) the venv must not see, as if never installed."""
        self.path = path
        run(sys.executable, "-m", "venv", "--without-pip", path)
        self.python = path / "bin" / "python"
        purelib = run(self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
        visible = _dependencies_without(path / "deps", {"pax_registry_harness", *hide})
        Path(purelib, "_pax_dependencies.pth").write_text(f"{visible}\n")

    def pip(self, *args: str | Path) -> str:
        return pip("--python", self.python, *args)

    def install(self, *requirements: str | Path, find_links: Path | None = None) -> None:
        links = ["--find-links", str(find_links)] if find_links is not None else []
        self.pip("install", "--quiet", "--no-deps", "--no-index", *links, *requirements)

    def uninstall(self, name: str) -> None:
        self.pip("uninstall", "--yes", "--quiet", name)
