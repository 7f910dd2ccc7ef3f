"""A small client for the OCI distribution API, for the emulator's own commands (``registry pack ...``).

It talks to any registry: Basic auth, or Bearer tokens from the realm a challenge names (as ``docker``
and ``oras`` get them); TLS with a private CA, a client certificate, or no verification; blobs streamed
in both directions, never held in memory.

Written on :mod:`urllib.request` rather than ``requests``: the emulator package has no HTTP client
dependency (the pull-through cache's client, :mod:`emulator.proxy.remote`, is built the same way), and
the fixtures and the conformance suite, which do use ``requests``, are other packages. That client only
pulls, for the cache; this one pushes too, and serves one short command, so a token is fetched once per
scope and never refreshed.
"""

from __future__ import annotations

import base64
import hashlib
import http
import http.client
import json
import os
import re
import shutil
import ssl
import typing as t
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message

__all__ = ["Client", "RegistryError", "Response", "file_digest"]

#: The challenge parameters of ``WWW-Authenticate: Bearer realm="...",service="...",scope="..."``.
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
_CHUNK = 1 << 16


class RegistryError(Exception):
    """A request failed: the message is one line (status, the registry's error codes and messages).

    :param status: the response's status, ``None`` when there was no response.
    :param codes: the ``code`` of each error in the response's OCI error body.
    """

    def __init__(self, message: str, status: int | None = None, codes: t.Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.codes = tuple(codes)


class _Body(t.Protocol):
    """A response body: what urllib returns, or the :class:`urllib.error.HTTPError` it raises."""

    def read(self, amt: int, /) -> bytes: ...

    def close(self) -> None: ...


class Response:
    """A response whose body is read on demand: :meth:`read` for small documents, :meth:`save` for blobs."""

    def __init__(self, method: str, url: str, status: int, headers: Message, body: _Body) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.headers = headers
        self._body = body

    def read(self, limit: int = 4 << 20) -> bytes:
        """The whole body, refused past ``limit`` bytes (manifests and error bodies are small)."""
        try:
            data = self._body.read(limit + 1)
        finally:
            self._body.close()
        if len(data) > limit:
            raise RegistryError(f"{self.method} {self.url}: the response is larger than {limit} bytes")
        return data

    def json(self) -> t.Any:
        try:
            return json.loads(self.read())
        except ValueError as e:
            raise RegistryError(f"{self.method} {self.url}: the response is not JSON: {e}") from None

    def save(self, target: t.BinaryIO) -> str:
        """Stream the body into ``target``; returns the sha256 digest of what was written."""
        hasher = hashlib.sha256()
        try:
            while chunk := self._body.read(_CHUNK):
                hasher.update(chunk)
                target.write(chunk)
        finally:
            self._body.close()
        return f"sha256:{hasher.hexdigest()}"

    def close(self) -> None:
        self._body.close()

    def errors(self) -> list[dict[str, t.Any]]:
        """The entries of an OCI error body (``{"errors": [...]}``); none when the body is not one."""
        try:
            document = json.loads(self.read(64 << 10)) if self.method != "HEAD" else None
        except (ValueError, RegistryError):
            document = None
        errors = document.get("errors") if isinstance(document, dict) else None
        return [error for error in errors if isinstance(error, dict)] if isinstance(errors, list) else []

    def failure(self) -> RegistryError:
        """What went wrong, in one line: ``GET /v2/x/manifests/1: 404 MANIFEST_UNKNOWN: manifest unknown``."""
        errors = self.errors()
        parts = []
        for error in errors:
            message = str(error.get("message", ""))
            text = f"{error.get('code', '')}: {message}".strip(": ")
            detail = error.get("detail")
            # A detail that only repeats the message (a list of problems, say) would double the line.
            if detail and not all(leaf in message for leaf in _leaves(detail)):
                text += f" ({detail if isinstance(detail, str) else json.dumps(detail)})"
            parts.append(text)
        shown = "; ".join(parts) or _phrase(self.status)
        line = " ".join(f"{self.method} {_shown(self.url)}: {self.status} {shown}".split())
        return RegistryError(line, self.status, [str(error.get("code", "")) for error in errors])


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "no error body"


def _leaves(value: t.Any) -> t.Iterator[str]:
    """The strings inside a JSON value."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif value is not None:
        yield str(value)


def file_digest(path: str | os.PathLike[str]) -> tuple[str, int]:
    """The sha256 digest and size of a file, read in chunks."""
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as source:
        while chunk := source.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return f"sha256:{hasher.hexdigest()}", size


class _KeepMethod(urllib.request.HTTPRedirectHandler):
    """Follows redirects of GET and HEAD only (blob downloads sent to storage); anything else is answered
    as is, so that a refused upload shows the registry's own response."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: t.IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if req.get_method() not in ("GET", "HEAD"):
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Client:
    """One registry: its base URL, credentials and TLS settings.

    :param url: ``https://host:port`` or ``http://host:port``; a bare ``host:port`` means HTTPS.
    :param insecure: no certificate verification, and for a bare ``host:port`` plain HTTP when the
        registry does not speak TLS (what ``spectro registry login --insecure`` means: HTTP, or
        self-signed TLS).
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        cacert: str | os.PathLike[str] | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        insecure: bool = False,
        timeout: float = 60.0,
    ) -> None:
        # A bare HOST:PORT with --insecure: HTTPS without verification, else plain HTTP if the registry
        # does not speak TLS (as docker treats an insecure registry).
        self._plain_fallback = "://" not in url and insecure
        if "://" not in url:
            url = f"https://{url}"
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise RegistryError(f"{url}: not a registry URL (http://HOST:PORT or https://HOST:PORT)")
        self.base_url = f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"
        self.credentials = (username, password or "") if username else None
        self.timeout = timeout
        try:
            context = ssl.create_default_context(cafile=os.fspath(cacert) if cacert else None)
        except (OSError, ValueError) as e:
            raise RegistryError(
                f"{cacert}: not a usable CA bundle: {getattr(e, 'strerror', None) or e}"
            ) from None
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if client_cert:
            try:
                context.load_cert_chain(os.fspath(client_cert), os.fspath(client_key) if client_key else None)
            except (OSError, ValueError) as e:
                problem = getattr(e, "strerror", None) or e
                raise RegistryError(f"{client_cert}: not a usable client certificate: {problem}") from None
        # No ProxyHandler: proxies from the environment are for other tools, the registry is explicit.
        self._opener = urllib.request.OpenerDirector()
        for handler in (
            urllib.request.UnknownHandler(),
            urllib.request.HTTPHandler(),
            urllib.request.HTTPSHandler(context=context),
            urllib.request.HTTPDefaultErrorHandler(),
            urllib.request.HTTPErrorProcessor(),
            _KeepMethod(),
        ):
            self._opener.add_handler(handler)
        # The last Authorization that worked, sent with every request until a challenge asks for another.
        self._authorization: str | None = None
        self._tokens: dict[str, str] = {}

    def url(self, target: str) -> str:
        if target.startswith(("http://", "https://")):
            return target
        return self.base_url + target

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: t.Mapping[str, str] | None = None,
        body: bytes | t.BinaryIO | None = None,
        expect: t.Collection[int] = (200,),
    ) -> Response:
        """Send a request, answering one auth challenge; a status outside ``expect`` raises
        :class:`RegistryError`. A file ``body`` must be seekable (it is sent again after a challenge)."""
        url = self.url(target)
        response = self._send(method, url, headers, body)
        url = response.url  # plain HTTP, if an insecure registry turned out not to speak TLS
        if response.status == 401:
            authorization = self._answer(response)
            if authorization is not None:
                response.close()
                self._authorization = authorization
                if body is not None and not isinstance(body, bytes):
                    body.seek(0)
                response = self._send(method, url, headers, body)
        if response.status not in expect:
            raise response.failure()
        return response

    def _send(
        self,
        method: str,
        url: str,
        headers: t.Mapping[str, str] | None,
        body: bytes | t.BinaryIO | None,
    ) -> Response:
        request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
        request.add_header("User-Agent", "pax-registry-pack")
        if body is not None and not isinstance(body, bytes) and not request.has_header("Content-length"):
            request.add_header("Content-Length", str(os.fstat(body.fileno()).st_size - body.tell()))
        if body is None and method in ("PUT", "POST", "PATCH"):
            request.add_header("Content-Length", "0")
        if self._authorization is not None:
            # Unredirected: a blob download sent to storage must not carry the registry's credentials.
            request.add_unredirected_header("Authorization", self._authorization)
        try:
            answer = self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            return Response(method, url, error.code, error.headers, error)
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            if self._plain_fallback and isinstance(reason, ssl.SSLError) and url.startswith(self.base_url):
                self._plain_fallback = False
                plain = "http://" + self.base_url.removeprefix("https://")
                url, self.base_url = plain + url[len(self.base_url) :], plain
                if body is not None and not isinstance(body, bytes):
                    body.seek(0)
                return self._send(method, url, headers, body)
            raise RegistryError(f"cannot reach {self.base_url}: {reason}") from None
        return Response(method, url, answer.status, answer.headers, answer)

    def _answer(self, response: Response) -> str | None:
        """The Authorization that answers a 401's challenge, or ``None`` when the client has none."""
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic" and self.credentials is not None:
            return _basic(*self.credentials)
        if scheme != "bearer":
            return None
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.pop("realm", "")
        if not realm:
            return None
        key = json.dumps([realm, sorted(params.items())])
        if key not in self._tokens:
            query = urllib.parse.urlencode(params)
            request = urllib.request.Request(f"{realm}?{query}" if query else realm)
            if self.credentials is not None:
                request.add_header("Authorization", _basic(*self.credentials))
            try:
                with self._opener.open(request, timeout=self.timeout) as answer:
                    document = json.loads(answer.read(1 << 20))
            except urllib.error.HTTPError as error:
                wanted = params.get("scope") or params.get("service") or "this registry"
                message = f"GET {_shown(realm)}: {error.code} {_phrase(error.code)}: no token for {wanted}"
                raise RegistryError(message, error.code) from None
            except (urllib.error.URLError, OSError, ValueError) as error:
                raise RegistryError(f"GET {_shown(realm)}: no token: {error}") from None
            self._tokens[key] = str(document.get("token") or document.get("access_token") or "")
        token = self._tokens[key]
        return f"Bearer {token}" if token else None

    # -- the distribution API --------------------------------------------------------------------------

    def has_manifest(self, repository: str, reference: str) -> bool:
        response = self.request(
            "HEAD", f"/v2/{repository}/manifests/{reference}", headers=_ACCEPT, expect=(200, 404)
        )
        response.close()
        return response.status == 200

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """The manifest's bytes, media type and digest (as the registry states it, else computed)."""
        response = self.request("GET", f"/v2/{repository}/manifests/{reference}", headers=_ACCEPT)
        content = response.read()
        digest = response.headers.get("Docker-Content-Digest") or _digest(content)
        media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
        return content, media_type, digest

    def put_manifest(self, repository: str, reference: str, content: bytes, media_type: str) -> str:
        response = self.request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            headers={"Content-Type": media_type},
            body=content,
            expect=(201,),
        )
        response.close()
        return response.headers.get("Docker-Content-Digest") or _digest(content)

    def delete_manifest(self, repository: str, reference: str) -> None:
        self.request("DELETE", f"/v2/{repository}/manifests/{reference}", expect=(202, 200)).close()

    def has_blob(self, repository: str, digest: str) -> bool:
        response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", expect=(200, 404))
        response.close()
        return response.status == 200

    def push_blob(self, repository: str, digest: str, content: bytes | t.BinaryIO) -> None:
        """Upload a blob the registry does not have yet: a session, then one PUT of the whole blob (the
        way every registry accepts)."""
        if self.has_blob(repository, digest):
            return
        started = self.request("POST", f"/v2/{repository}/blobs/uploads/", expect=(202,))
        started.close()
        location = started.headers.get("Location")
        if not location:
            raise RegistryError(f"POST /v2/{repository}/blobs/uploads/: 202 without a Location")
        location = urllib.parse.urljoin(started.url, location)
        separator = "&" if urllib.parse.urlsplit(location).query else "?"
        target = f"{location}{separator}digest={urllib.parse.quote(digest)}"
        self.request(
            "PUT",
            target,
            headers={"Content-Type": "application/octet-stream"},
            body=content,
            expect=(201,),
        ).close()

    def pull_blob(self, repository: str, digest: str, target: str | os.PathLike[str]) -> None:
        """Stream a blob into the file ``target``, checking its digest; nothing is left on a mismatch."""
        response = self.request("GET", f"/v2/{repository}/blobs/{digest}")
        partial = f"{os.fspath(target)}.partial"
        try:
            with open(partial, "wb") as output:
                received = response.save(output)
            if received != digest:
                raise RegistryError(
                    f"GET /v2/{repository}/blobs/{digest}: the content's digest is {received}"
                )
            shutil.move(partial, target)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)

    def tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``, following ``Link`` pages; none when the repository is unknown."""
        found: list[str] = []
        target: str | None = f"/v2/{repository}/tags/list"
        while target:
            response = self.request("GET", target, expect=(200, 404))
            if response.status == 404:
                response.close()
                return found
            found.extend(response.json().get("tags") or [])
            target = _next_page(response)
        return found

    def catalog(self) -> list[str]:
        """Every repository the registry lists in ``/v2/_catalog``, following ``Link`` pages."""
        found: list[str] = []
        target: str | None = "/v2/_catalog?n=1000"
        while target:
            response = self.request("GET", target)
            found.extend(response.json().get("repositories") or [])
            target = _next_page(response)
        return found


#: Every manifest type a pack or an image may be stored as.
_ACCEPT = {
    "Accept": ", ".join(
        (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        )
    )
}


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _digest(content: bytes) -> str:
    return f"sha256:{hashlib.sha256(content).hexdigest()}"


def _next_page(response: Response) -> str | None:
    """The target of ``Link: <...>; rel="next"``, resolved against the request's URL."""
    link = response.headers.get("Link", "")
    match = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', link)
    return urllib.parse.urljoin(response.url, match.group(1)) if match else None


def _shown(url: str) -> str:
    """A URL as errors show it: the path and query, without upload state tokens."""
    parts = urllib.parse.urlsplit(url)
    query = re.sub(r"(_state=)[^&]*", r"\1<redacted>", parts.query)
    return parts.path + (f"?{query}" if query else "")
