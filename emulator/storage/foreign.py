"""Foreign layers: which references of an image manifest must be in the repository, and which URLs a
reference may name instead of being there (``validation.manifests.urls``).

The rules are distribution 2.8's, checked at manifest PUT:

- In a Docker schema 2 manifest, a foreign layer
  (``application/vnd.docker.image.rootfs.foreign.diff.tar.gzip``) must name URLs and every URL must pass;
  its blob is never required.
- In an OCI manifest, a layer of the four ``…layer.v1.tar`` / ``…nondistributable.v1.tar`` (``+gzip``)
  types has its URLs checked; with valid URLs its blob is not required.
- Any other reference (the config included) that names URLs is not checked at all; one without URLs
  must be in the repository.

A URL passes when it parses, uses http or https, has no fragment, matches ``allow`` (when there is an
allow filter) and does not match ``deny`` (when there is a deny filter). With validation on and both
lists empty nothing is allowed; with only ``deny``, there is no allow filter; with validation off there
is neither filter, but the other rules still hold.
"""

from __future__ import annotations

import re
import typing as t
import urllib.parse
from dataclasses import dataclass

from ..reference import Digest

if t.TYPE_CHECKING:
    from ..config import ValidationConfig

DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
#: OCI layer types whose URLs distribution 2.8 checks (``+zstd`` and others are not checked).
OCI_URL_CHECKED_LAYERS = frozenset(
    {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    }
)

ALLOW_KEY = "validation.manifests.urls.allow"
DENY_KEY = "validation.manifests.urls.deny"


@dataclass(frozen=True)
class URLReference:
    """A reference whose URLs are checked instead of its presence in the repository."""

    digest: Digest
    media_type: str
    urls: tuple[str, ...]


@dataclass(frozen=True)
class Refusal:
    """Why a reference's URL (``None``: its missing URLs) is not accepted."""

    digest: Digest
    url: str | None
    reason: str

    def detail(self) -> dict[str, str]:
        detail = {"digest": str(self.digest), "reason": self.reason}
        if self.url is not None:
            detail["url"] = self.url
        return detail


def checks_urls(media_type: str, *, schema2: bool) -> bool:
    """Whether a reference of ``media_type`` has its URLs checked (``schema2``: in a Docker manifest,
    else in an OCI one)."""
    return media_type == DOCKER_FOREIGN_LAYER if schema2 else media_type in OCI_URL_CHECKED_LAYERS


def needs_blob(media_type: str, urls: tuple[str, ...], *, schema2: bool) -> bool:
    """Whether a reference must be in the repository for its manifest to be accepted."""
    if schema2 and media_type == DOCKER_FOREIGN_LAYER:
        return False
    return not urls


def compile_patterns(patterns: t.Sequence[str]) -> re.Pattern[str] | None:
    """One pattern matching anywhere when any of ``patterns`` does, joined as distribution joins them;
    ``None`` for none. A bad pattern raises :class:`re.error`."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns))


class URLRules:
    """The allow and deny filters in effect; ``None`` is no filter, ``()`` an allow filter that
    accepts nothing."""

    def __init__(self, allow: t.Sequence[str] | None, deny: t.Sequence[str] | None) -> None:
        self.allow = None if allow is None else tuple(allow)
        self.deny = None if deny is None else tuple(deny)
        # Compiled once; the pattern lists are kept to name the one a URL matched.
        self._allow = compile_patterns(self.allow or ())
        self._deny = compile_patterns(self.deny or ())

    @classmethod
    def default(cls) -> URLRules:
        """distribution's rules when nothing is configured: validation on, and no URL accepted."""
        return cls((), None)

    @classmethod
    def from_config(cls, validation: ValidationConfig) -> URLRules:
        if not validation.enabled:
            return cls(None, None)
        if not validation.allow and not validation.deny:
            return cls.default()
        return cls(validation.allow or None, validation.deny or None)

    def refusals(self, references: t.Iterable[URLReference], *, schema2: bool) -> list[Refusal]:
        """Every problem with the URLs of ``references``, in manifest order."""
        found = []
        for reference in references:
            if schema2 and not reference.urls:
                found.append(Refusal(reference.digest, None, "a foreign layer must name its URLs"))
            for url in reference.urls:
                reason = self.refusal(url)
                if reason is not None:
                    found.append(Refusal(reference.digest, url, reason))
        return found

    def refusal(self, url: str) -> str | None:
        """Why a layer may not name ``url``; ``None`` when it may."""
        if not _parses(url):
            return "not a valid URL"
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return "the scheme must be http or https"
        if parts.fragment:
            return "a URL with a fragment is not accepted"
        if self.allow is not None and (self._allow is None or self._allow.search(url) is None):
            if not self.allow:
                return f"no URL is accepted: {ALLOW_KEY} and {DENY_KEY} are both empty"
            return f"matches no pattern of {ALLOW_KEY}"
        if self._deny is not None and self._deny.search(url) is not None:
            matched = next(p for p in self.deny or () if re.search(p, url) is not None)
            return f"matches {DENY_KEY} pattern {matched!r}"
        return None


def _parses(url: str) -> bool:
    """Whether Go's ``url.Parse`` would take ``url``: Python's parser is more lenient, so the cases Go
    refuses (control characters, bad percent escapes, a port that is not digits, a space in the
    authority, a leading space, which Python strips before it looks for the scheme) are refused here
    too. Go checks only that a port is digits, not its range, so ``:99999`` passes as it does there."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url) or url.startswith(" "):
        return False
    if re.search(r"%(?![0-9A-Fa-f]{2})", url):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    host_and_port = parts.netloc.rpartition("@")[2]
    port = host_and_port.rpartition("]")[2].partition(":")[2]
    return " " not in parts.netloc and _PORT.fullmatch(port) is not None


_PORT = re.compile(r"[0-9]*")
