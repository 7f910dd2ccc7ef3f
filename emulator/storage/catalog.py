"""The catalog: every repository that holds manifests, in lexical order."""

from __future__ import annotations

from ..drivers.base import PathNotFound
from ..drivers.base import StorageDriver
from . import paths


def repositories(driver: StorageDriver) -> list[str]:
    """Names of repositories with a ``_manifests`` directory, as distribution counts them."""
    found: list[str] = []

    def visit(path: str, name: str) -> None:
        try:
            children = driver.list(path)
        except PathNotFound:
            return
        leaf_names = [c.rsplit("/", 1)[-1] for c in children]
        if paths.MANIFESTS in leaf_names:
            found.append(name)
        for child, leaf in zip(children, leaf_names, strict=True):
            # Files cannot hold repositories; list() on one raises PathNotFound and is skipped.
            if not leaf.startswith("_"):
                visit(child, f"{name}/{leaf}" if name else leaf)

    visit(paths.REPOSITORIES, "")
    return sorted(found)
