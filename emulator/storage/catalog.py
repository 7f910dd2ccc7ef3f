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

    def visit(path: str) -> None:
        try:
            children = driver.list(path)
        except PathNotFound:
            return
        if any(paths.is_layers(child) for child in children):
            found.append(paths.repository_name_of(path))
        for child in children:
            # Files cannot hold repositories; list() on one raises PathNotFound and is skipped.
            if not paths.is_repository_own(child):
                visit(child)

    visit(paths.REPOSITORIES)
    return sorted(found)
