"""A small client for the remote registry of a pull-through cache: pull-only, streaming, with the
remote's Basic or Bearer-token challenge answered from ``proxy.username``/``proxy.password``.

It is built on :mod:`urllib.request` because the emulator has no HTTP client dependency and needs only
a handful of GET and HEAD requests; bodies are handed back unread, so a blob streams.

Auth follows distribution: an unauthenticated ``GET /v2/`` records the remote's challenges; a Bearer
challenge is answered with a token from its realm for ``repository:<name>:pull`` (Basic auth and
``account=`` when credentials are set), a Basic challenge with the credentials (distribution 3.x does;
2.8 cannot). Differences from 2.8: the remote is pinged again only while no ping has succeeded, or when a
request is refused with 401 (2.8 pings before every operation of an upstream without auth), and tokens
are reused until they expire.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import re
import threading
import time
import typing as t
import urllib.error
import urllib.parse
import urllib.request

from ..reference import Digest
from ..reference import InvalidDigest
from ..storage.manifests import MANIFEST_TYPES

#: Seconds to wait for the remote to connect or to send the next bytes.
TIMEOUT = 30.0
#: What a token response without ``expires_in`` is worth, as in distribution (seconds).
DEFAULT_TOKEN_LIFETIME = 60.0
#: Asked on every manifest request: the remote then serves manifests as stored, never converted.
MANIFEST_ACCEPT = ", ".join(MANIFEST_TYPES)
#: The largest manifest or token response read (distribution's manifest limit).
MAX_DOCUMENT = 4 * 1024 * 1024

_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
#: One challenge: its scheme, then its parameters up to the next scheme.
_CHALLENGE = re.compile(r"(?:^|,)\s*(Bearer|Basic)\b((?:[^,]|,(?!\s*(?:Bearer|Basic)\b))*)", re.I)
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class RemoteError(Exception):
    """The remote registry could not answer: unreachable, or an unexpected status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RemoteNotFound(RemoteError):
    """The remote registry answered 404."""


@dataclasses.dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer" or "basic"
    params: dict[str, str]


@dataclasses.dataclass(frozen=True)
class RemoteManifest:
    digest: Digest
    content: bytes
    media_type: str


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a ``WWW-Authenticate`` header (one per scheme)."""
    challenges: list[Challenge] = []
    for match in _CHALLENGE.finditer(header):
        params = {
            key.lower(): (quoted.replace('\\"', '"') if quoted else bare)
            for key, quoted, bare in _CHALLENGE_PARAM.findall(match.group(2))
        }
        challenges.append(Challenge(match.group(1).lower(), params))
    return challenges


class _NoAuthOnOtherHosts(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but send credentials only to the host that asked for them: blobs are often
    redirected to object storage, which refuses a presigned URL that also carries an Authorization."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: t.IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        moved = urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc
        if new is not None and moved:
            new.remove_header("Authorization")
        return new


class Remote:
    """The remote registry at ``url``."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self._opener = urllib.request.build_opener(_NoAuthOnOtherHosts())
        self._lock = threading.Lock()
        self._challenges: list[Challenge] | None = None  # None: no ping has succeeded yet
        self._tokens: dict[str, tuple[str, float]] = {}

    # -- the registry API ------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/`` without credentials, recording the challenges; :class:`RemoteError` when the
        remote cannot be reached."""
        try:
            response = self._open(urllib.request.Request(f"{self.url}/v2/"))
        except urllib.error.HTTPError as e:
            with e:
                header = e.headers.get("WWW-Authenticate", "")
                if e.code != 401 and not header:
                    raise RemoteError(f"GET {self.url}/v2/ answered {e.code}", e.code) from None
                challenges = parse_challenges(header)
        else:
            response.close()
            challenges = []
        with self._lock:
            self._challenges = challenges

    def manifest_digest(self, name: str, reference: str) -> Digest:
        """What ``reference`` names upstream: a HEAD, or a GET when the HEAD has no digest."""
        with self.request("HEAD", name, "manifests", reference, {"Accept": MANIFEST_ACCEPT}) as response:
            header = response.headers.get("Docker-Content-Digest")
        try:
            return Digest.parse(header or "")
        except InvalidDigest:
            return self.manifest(name, reference).digest

    def manifest(self, name: str, reference: str) -> RemoteManifest:
        """The manifest; a digest ``reference`` is checked against the content."""
        with self.request("GET", name, "manifests", reference, {"Accept": MANIFEST_ACCEPT}) as response:
            content = response.read(MAX_DOCUMENT + 1)
            media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if len(content) > MAX_DOCUMENT:
            raise RemoteError(f"the manifest {name}:{reference} is larger than {MAX_DOCUMENT} bytes")
        if _is_digest(reference):
            digest = Digest.parse(reference)
            actual = Digest.of(content, digest.algorithm)
            if actual != digest:
                raise RemoteError(f"the remote served {actual} for the manifest {name}@{digest}")
        else:
            digest = Digest.of(content)
        return RemoteManifest(digest, content, media_type)

    def blob_size(self, name: str, digest: Digest) -> int:
        with self.request("HEAD", name, "blobs", str(digest)) as response:
            length = response.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise RemoteError(f"HEAD of the blob {name}@{digest} gave no Content-Length")
        return int(length)

    def open_blob(self, name: str, digest: Digest, offset: int = 0) -> http.client.HTTPResponse:
        """The remote's response to ``GET`` of the blob, body unread: the caller reads and closes it."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        return self.request("GET", name, "blobs", str(digest), headers)

    def tags(self, name: str) -> list[str]:
        """Every tag of ``name`` upstream, following ``Link`` pages."""
        found: list[str] = []
        page: str | None = "list"
        while page is not None:
            with self.request("GET", name, "tags", page) as response:
                document = json.loads(response.read(MAX_DOCUMENT))
                link = response.headers.get("Link", "")
            found += [tag for tag in document.get("tags") or () if isinstance(tag, str)]
            match = _NEXT_LINK.search(link)
            page = None
            if match is not None:
                query = urllib.parse.urlsplit(match.group(1)).query
                page = f"list?{query}" if query else None
        return sorted(set(found))

    # -- requests ------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        name: str,
        endpoint: str,
        reference: str,
        headers: t.Mapping[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        """``method`` on ``/v2/<name>/<endpoint>/<reference>`` (``manifests``, ``blobs`` or ``tags``; the
        reference may carry a query) with the credentials the remote asks for; a 401 is answered once
        more after a new ping. :class:`RemoteNotFound` for 404, :class:`RemoteError` otherwise."""
        url = f"{self.url}/v2/{name}/{endpoint}/{reference}"
        for attempt in range(2):
            with self._lock:
                pinged = self._challenges is not None
            if not pinged or attempt:
                self.ping()
            request = urllib.request.Request(url, method=method, headers=dict(headers or {}))
            authorization = self._authorization(name)
            if authorization is not None:
                request.add_header("Authorization", authorization)
            try:
                return self._open(request)
            except urllib.error.HTTPError as e:
                with e:
                    if e.code == 401 and not attempt:
                        with self._lock:
                            self._tokens.pop(name, None)
                        continue
                    error = RemoteNotFound if e.code == 404 else RemoteError
                    raise error(f"{method} {url} answered {e.code}", e.code) from None
        raise RemoteError(f"{method} {url}: the remote refused the credentials", 401)

    def _open(self, request: urllib.request.Request) -> http.client.HTTPResponse:
        try:
            return t.cast(http.client.HTTPResponse, self._opener.open(request, timeout=TIMEOUT))
        except urllib.error.HTTPError:
            raise
        except (OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", e)
            raise RemoteError(f"{request.get_method()} {request.full_url}: {reason}") from None

    def _authorization(self, name: str) -> str | None:
        with self._lock:
            challenges = list(self._challenges or ())
        for challenge in challenges:
            if challenge.scheme == "bearer" and "realm" in challenge.params:
                return f"Bearer {self._token(name, challenge)}"
        if any(c.scheme == "basic" for c in challenges) and self.username is not None:
            return self._basic()
        return None

    def _basic(self) -> str:
        pair = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def _token(self, name: str, challenge: Challenge) -> str:
        with self._lock:
            cached = self._tokens.get(name)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        query = {"scope": f"repository:{name}:pull"}
        if "service" in challenge.params:
            query["service"] = challenge.params["service"]
        realm = challenge.params["realm"]
        request = urllib.request.Request(realm)
        if self.username is not None and self.password is not None:
            query["account"] = self.username
            request.add_header("Authorization", self._basic())
        separator = "&" if "?" in request.full_url else "?"
        request.full_url = f"{request.full_url}{separator}{urllib.parse.urlencode(query)}"
        try:
            with self._open(request) as response:
                document = json.loads(response.read(MAX_DOCUMENT))
        except urllib.error.HTTPError as e:
            e.close()
            raise RemoteError(f"the token realm {realm} answered {e.code}", e.code) from None
        except ValueError:
            raise RemoteError(f"the token realm {realm} sent no JSON") from None
        token = document.get("token") or document.get("access_token")
        if not isinstance(token, str) or not token:
            raise RemoteError(f"the token realm {realm} sent no token")
        lifetime = document.get("expires_in")
        seconds = DEFAULT_TOKEN_LIFETIME
        if isinstance(lifetime, int | float) and lifetime > 0:
            seconds = float(lifetime)
        with self._lock:
            # Renewed a little early, so that a token does not expire between here and the remote.
            self._tokens[name] = (token, time.monotonic() + seconds * 0.9)
        return token


def _is_digest(reference: str) -> bool:
    try:
        Digest.parse(reference)
    except InvalidDigest:
        return False
    return True
