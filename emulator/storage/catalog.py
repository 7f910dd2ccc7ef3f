"""The catalog: every repository that holds blobs, in lexical order."""

from __future__ import annotations

from ..drivers.base import PathNotFound
from ..drivers.base import StorageDriver
from . import paths


def repositories(driver: StorageDriver) -> list[str]:
    """Names of repositories with a ``_layers`` directory, as distribution counts them.

    A blob pushed or mounted (no manifest yet) lists a repository; an open upload does not. On a
    filesystem the directory outlives the blobs deleted from it, so the repository stays listed.
    """
    found: list[str] = []

    def visit(path: str, name: str) -> None:
        try:
            children = driver.list(path)
        except PathNotFound:
            return
        leaf_names = [c.rsplit("/", 1)[-1] for c in children]
        if paths.LAYERS in leaf_names:
            found.append(name)
        for child, leaf in zip(children, leaf_names, strict=True):
            # Files cannot hold repositories; list() on one raises PathNotFound and is skipped.
            if not leaf.startswith("_"):
                visit(child, f"{name}/{leaf}" if name else leaf)

    visit(paths.REPOSITORIES, "")
    return sorted(found)
