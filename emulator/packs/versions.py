"""Pack versions as tags: ``[group__]MAJOR.MINOR.PATCH[-PRERELEASE]``, their order, and parent tags.

The pack CLI's documentation gives the tag form (``lts__14.4.3``: group ``lts``, label ``14.4.3``) and
the parent tags (``14.x`` and ``14.4.x``, auto-generated). The rest is inference, marked here:

- a label is a semantic version of three numbers and an optional pre-release (``+build`` cannot be
  in a tag at all); leading zeros are read as numbers, so ``22.04.1`` has the parents ``22.4.x`` and
  ``22.x``, which is how the docs' ``LTS__22.4.x`` reads;
- a group prefix carries over to the parents (``lts__14.4.x``), and only versions of the same group
  count for them;
- pre-releases get no parent and are never chosen for one (the issue's acceptance).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION = re.compile(
    r"(?:(?P<group>[A-Za-z0-9_][A-Za-z0-9_.-]*?)__)?"
    r"(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
_PARENT = re.compile(r"(?:(?P<group>[A-Za-z0-9_][A-Za-z0-9_.-]*?)__)?\d+(?:\.\d+)?\.x")
#: Separates a group from the version label in a tag.
GROUP_SEPARATOR = "__"


@dataclass(frozen=True)
class TagVersion:
    """A version tag, parsed."""

    tag: str
    group: str | None
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The tag without its group: what pack.json's ``version`` says."""
        return self.tag[len(self.group) + len(GROUP_SEPARATOR) :] if self.group is not None else self.tag

    @property
    def is_release(self) -> bool:
        return not self.prerelease

    def sort_key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        """Semantic version precedence: a release after its pre-releases; pre-release identifiers
        compared one by one, numbers below words, numbers numerically."""
        identifiers = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, identifiers)

    def parents(self) -> tuple[str, ...]:
        """The parent tags this version counts for (minor first); none for a pre-release."""
        if self.prerelease:
            return ()
        prefix = f"{self.group}{GROUP_SEPARATOR}" if self.group is not None else ""
        return (f"{prefix}{self.major}.{self.minor}.x", f"{prefix}{self.major}.x")


def parse_tag(tag: str) -> TagVersion | None:
    """The version ``tag`` names, or ``None`` when it names none (``latest``, ``1.28.x``)."""
    match = _VERSION.fullmatch(tag)
    if match is None:
        return None
    pre = match["pre"]
    return TagVersion(
        tag,
        match["group"],
        int(match["major"]),
        int(match["minor"]),
        int(match["patch"]),
        tuple(pre.split(".")) if pre else (),
    )


def parent_tags(tag: str) -> tuple[str, ...]:
    """``lts__14.4.3`` -> ``("lts__14.4.x", "lts__14.x")``; ``()`` for pre-releases and non-versions."""
    version = parse_tag(tag)
    return version.parents() if version is not None else ()


def is_parent_tag(tag: str) -> bool:
    """Whether ``tag`` has the form of a parent tag (``14.x``, ``14.4.x``, ``lts__14.x``)."""
    return _PARENT.fullmatch(tag) is not None
