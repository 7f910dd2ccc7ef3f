"""The remote registry of a pull-through cache, over the project's registry client
(:mod:`emulator.ociclient`): pull-only, streaming, the remote's Basic or Bearer-token challenge answered
from ``proxy.username``/``proxy.password``, and every failure one :class:`RemoteError` the cache maps
to distribution's answers.

Auth follows distribution: an unauthenticated ``GET /v2/`` records the remote's challenge; a Bearer
challenge is answered with a token from its realm for ``repository:<name>:pull`` (Basic auth and
``account=`` when credentials are set), a Basic challenge with the credentials (distribution 3.x does;
2.8 cannot). Differences from 2.8: the remote is pinged when the cache starts, and a request refused
with 401 reads the challenge it carries (2.8 pings before every operation of an upstream without auth);
tokens are reused until they expire.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import typing as t

from ..ociclient import Challenge
from ..ociclient import Client
from ..ociclient import RegistryError
from ..ociclient import Response
from ..ociclient import parse_challenges
from ..ociclient import tags_path
from ..reference import Digest
from ..reference import InvalidDigest

__all__ = ["Challenge", "Remote", "RemoteError", "RemoteManifest", "RemoteNotFound", "parse_challenges"]

#: Seconds to wait for the remote to connect or to send the next bytes.
TIMEOUT = 30.0


class RemoteError(RegistryError):
    """The remote registry could not answer: unreachable, or an unexpected status."""


class RemoteNotFound(RemoteError):
    """The remote registry answered 404."""


@dataclasses.dataclass(frozen=True)
class RemoteManifest:
    digest: Digest
    content: bytes
    media_type: str


@contextlib.contextmanager
def _failures() -> t.Iterator[None]:
    """Whatever goes wrong talking to the remote, as the :class:`RemoteError` the cache handles."""
    try:
        yield
    except RegistryError as e:
        raise (RemoteNotFound if e.status == 404 else RemoteError)(str(e), e.status, e.codes) from None
    except (OSError, http.client.HTTPException) as e:
        raise RemoteError(f"the remote failed: {e}") from None


def _pull(name: str) -> str:
    return f"repository:{name}:pull"


class Remote:
    """The remote registry at ``url``."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.client = Client(
            self.url, timeout=TIMEOUT, username=username, password=password, user_agent="pax-registry-proxy"
        )

    def ping(self) -> None:
        """``GET /v2/`` without credentials, recording the challenge; :class:`RemoteError` when the
        remote cannot be reached or answers neither 2xx nor a challenge."""
        with _failures():
            status = self.client.ping()
        if status >= 300 and status != 401:
            raise RemoteError(f"GET {self.url}/v2/ answered {status}", status)

    def manifest_digest(self, name: str, reference: str) -> Digest:
        """What ``reference`` names upstream: a HEAD, or a GET when the HEAD has no digest."""
        with _failures():
            header = self.client.manifest_digest(name, reference, scope=_pull(name))
        try:
            return Digest.parse(header or "")
        except InvalidDigest:
            return self.manifest(name, reference).digest

    def manifest(self, name: str, reference: str) -> RemoteManifest:
        """The manifest; a digest ``reference`` is checked against the content."""
        with _failures():
            content, media_type, _ = self.client.get_manifest(name, reference, scope=_pull(name))
        try:
            digest = Digest.parse(reference)
        except InvalidDigest:
            return RemoteManifest(Digest.of(content), content, media_type)
        actual = Digest.of(content, digest.algorithm)
        if actual != digest:
            raise RemoteError(f"the remote served {actual} for the manifest {name}@{digest}")
        return RemoteManifest(digest, content, media_type)

    def blob_size(self, name: str, digest: Digest) -> int:
        with _failures():
            return self.client.blob_size(name, str(digest), scope=_pull(name))

    def open_blob(self, name: str, digest: Digest, offset: int = 0) -> Response:
        """The remote's response to ``GET`` of the blob, body unread: the caller reads and closes it."""
        with _failures():
            return self.client.open_blob(name, str(digest), offset, scope=_pull(name))

    def tags(self, name: str) -> list[str]:
        """Every tag of ``name`` upstream, following ``Link`` pages."""
        with _failures():
            pages = list(self.client.pages(tags_path(name), "tags", scope=_pull(name)))
        return sorted({tag for page in pages for tag in page if isinstance(tag, str)})
