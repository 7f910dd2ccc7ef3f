"""A small HTTP client for the registry under test that remembers every exchange.

:class:`RegistryClient` wraps one :class:`requests.Session`: the base URL, credentials (answering Basic and
Bearer challenges the way ``docker`` does), the CA bundle and an optional client certificate. Each request
and its response are recorded as an :class:`Exchange`, so that a failed check can show what was sent and
what came back. Secrets never reach the record: ``Authorization`` values and the ``_state`` upload token
are redacted.
"""

from __future__ import annotations

import enum
import re
import time
import typing as t
import urllib.parse
import weakref
from dataclasses import dataclass
from dataclasses import field

import requests

from conformance import render

if t.TYPE_CHECKING:
    from conformance.data import Blob
    from conformance.data import Manifest

__all__ = [
    "BrokenBody",
    "Exchange",
    "RegistryClient",
    "error_codes",
    "location",
    "path_of",
    "with_query",
]

#: How much of a body an exchange keeps.
BODY_HEAD = 512

_REDACTED = "<redacted>"
_SECRET_QUERY = re.compile(r"(?i)((?:_state|token|access_token|password)=)[^&#\s]*")
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')

Credentials = tuple[str, str]


class _Default(enum.Enum):
    CREDENTIALS = enum.auto()


#: Use the client's own credentials (the default for every request).
DEFAULT = _Default.CREDENTIALS


def redact(text: str) -> str:
    """Hide upload state tokens and other secrets that travel in URLs."""
    return _SECRET_QUERY.sub(rf"\1{_REDACTED}", text)


def _redact_headers(headers: t.Mapping[str, str | bytes]) -> dict[str, str]:
    redacted = {}
    for name, value in headers.items():
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        redacted[name] = _REDACTED if name.lower() in _SECRET_HEADERS else redact(text)
    return redacted


def _head(body: bytes | None, media_type: str | None) -> str:
    """A body as the report shows it: text when it is text, else its size, type and first bytes."""
    return redact(render.body(body, media_type, limit=BODY_HEAD))


@dataclass(eq=False)
class Exchange:
    """One request and the response that answered it (after redirects)."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str
    status: int
    reason: str
    response_headers: dict[str, str]
    response_body: str
    started_ns: int
    redirects: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"> {self.method} {self.url}"]
        lines += [f"> {name}: {value}" for name, value in self.request_headers.items()]
        if self.request_body:
            lines.append(f"> [body] {self.request_body}")
        lines += [f"  (redirected from {url})" for url in self.redirects]
        lines.append(f"< {self.status} {self.reason}")
        lines += [f"< {name}: {value}" for name, value in self.response_headers.items()]
        if self.response_body:
            lines.append(f"< [body] {self.response_body}")
        return "\n".join(lines)


# Headers that requests adds on its own and that never explain a failure.
_NOISE = frozenset({"user-agent", "accept-encoding", "connection"})


class BrokenBody(requests.exceptions.ChunkedEncodingError):
    """The response ended before its body did (shorter than its ``Content-Length``, or a broken chunk).

    Every check that receives one fails: no verdict can rest on half a response. A subclass of
    :class:`requests.RequestException`, so cleanup, which ignores transport errors, ignores it too.
    """


def _read_body(response: requests.Response) -> str:
    """Read the whole body now; return why it could not be read, or ``""``.

    The part that did arrive stays out of the record: the exchange shows the status and headers, and
    the failure says what went wrong with the body.
    """
    try:
        response.content  # noqa: B018 - reading the property loads the body
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as error:
        response._content = b""
        response._content_consumed = True  # type: ignore[attr-defined,unused-ignore]
        response.close()
        return str(error)
    return ""


def _record(response: requests.Response, started_ns: int) -> Exchange:
    sent = response.request
    body = sent.body.encode() if isinstance(sent.body, str) else sent.body
    content = b"" if sent.method == "HEAD" else response.content
    return Exchange(
        method=sent.method or "",
        url=redact(sent.url or ""),
        request_headers={k: v for k, v in _redact_headers(sent.headers).items() if k.lower() not in _NOISE},
        request_body=_head(body if isinstance(body, bytes) else None, sent.headers.get("Content-Type")),
        status=response.status_code,
        reason=response.reason or "",
        response_headers=_redact_headers(response.headers),
        response_body=_head(content, response.headers.get("Content-Type")),
        started_ns=started_ns,
        redirects=[redact(r.url) for r in response.history],
    )


class RegistryClient:
    """The registry under test, as seen over HTTP.

    :param url: base URL such as ``https://registry.example:5000``; a path prefix is kept.
    :param username: user for Basic auth or for the Bearer token realm.
    :param password: its password.
    :param cacert: PEM bundle to verify the server with; ``None`` uses the system store.
    :param client_cert: a client certificate (PEM, optionally with the key) for mutual TLS.
    :param client_key: the client key when it is not inside ``client_cert``.
    :param timeout: seconds for each request.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        cacert: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = url.rstrip("/")
        self.credentials: Credentials | None = (username, password or "") if username else None
        self.timeout = timeout
        self.exchanges: list[Exchange] = []
        self._by_response: weakref.WeakKeyDictionary[requests.Response, Exchange] = (
            weakref.WeakKeyDictionary()
        )
        self._basic = False
        self._tokens: dict[str, str] = {}
        self.session = requests.Session()
        # Proxies and CA bundles from the environment are for other tools; the target is explicit.
        self.session.trust_env = False
        self.session.verify = cacert if cacert else True
        if client_cert:
            self.session.cert = (client_cert, client_key) if client_key else client_cert
        self.session.headers["User-Agent"] = "pax-conformance"

    def close(self) -> None:
        self.session.close()

    # -- URLs ------------------------------------------------------------------------------------------

    def url(self, target: str) -> str:
        """An absolute URL: ``target`` is a path below the base URL or already absolute."""
        if target.startswith(("http://", "https://")):
            return target
        return self.base_url + target

    # -- requests --------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: t.Mapping[str, str] | None = None,
        data: bytes | None = None,
        params: t.Mapping[str, str] | None = None,
        credentials: Credentials | _Default | None = DEFAULT,
        allow_redirects: bool = True,
    ) -> requests.Response:
        """Send one request, answer an auth challenge if the client has credentials, record it.

        :param credentials: ``None`` sends no credentials at all, a ``(user, password)`` pair sends exactly
            those (Basic, without waiting for a challenge); the default uses the client's own.
        """
        url = self.url(target)
        if params:
            url = with_query(url, **params)
        sent_headers = dict(headers or {})
        if credentials is DEFAULT:
            response = self._send(method, url, sent_headers, data, allow_redirects, self._preemptive())
            if response.status_code == 401:
                auth = self._answer_challenge(response)
                if auth is not None:
                    response = self._send(method, url, sent_headers, data, allow_redirects, auth)
        else:
            response = self._send(method, url, sent_headers, data, allow_redirects, credentials)
        return response

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        data: bytes | None,
        allow_redirects: bool,
        auth: Credentials | str | None,
    ) -> requests.Response:
        request_headers = dict(headers)
        basic: Credentials | None = None
        if isinstance(auth, str):
            request_headers["Authorization"] = auth
        else:
            basic = auth
        started = time.monotonic_ns()
        response = self.session.request(
            method,
            url,
            headers=request_headers,
            data=data,
            auth=basic,
            allow_redirects=allow_redirects,
            timeout=self.timeout,
            stream=True,
        )
        broken = _read_body(response)
        exchange = _record(response, started)
        if broken:
            exchange.response_body += f" [the body could not be read: {broken}]"
        self.exchanges.append(exchange)
        self._by_response[response] = exchange
        if broken:
            declared = response.headers.get("Content-Length")
            promise = f" (Content-Length: {declared})" if declared else ""
            raise BrokenBody(
                f"{method} {redact(url)}: {response.status_code} with a body cut short{promise}: {broken}",
                response=response,
            )
        return response

    def _preemptive(self) -> Credentials | None:
        return self.credentials if self._basic else None

    def _answer_challenge(self, response: requests.Response) -> Credentials | str | None:
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic" and self.credentials is not None:
            self._basic = True
            return self.credentials
        if scheme == "bearer":
            token = self._token(dict(_CHALLENGE.findall(challenge)))
            return f"Bearer {token}" if token else None
        return None

    def _token(self, params: dict[str, str]) -> str | None:
        realm = params.pop("realm", "")
        if not realm:
            return None
        key = repr(sorted(params.items()))
        if key not in self._tokens:
            response = self._send("GET", with_query(realm, **params), {}, None, True, self.credentials)
            if response.status_code != 200:
                return None
            body = response.json()
            self._tokens[key] = str(body.get("token") or body.get("access_token") or "")
        return self._tokens[key] or None

    def get(self, target: str, **kwargs: t.Any) -> requests.Response:
        return self.request("GET", target, **kwargs)

    def head(self, target: str, **kwargs: t.Any) -> requests.Response:
        return self.request("HEAD", target, **kwargs)

    def post(self, target: str, **kwargs: t.Any) -> requests.Response:
        return self.request("POST", target, **kwargs)

    def put(self, target: str, **kwargs: t.Any) -> requests.Response:
        return self.request("PUT", target, **kwargs)

    def patch(self, target: str, **kwargs: t.Any) -> requests.Response:
        return self.request("PATCH", target, **kwargs)

    def delete(self, target: str, **kwargs: t.Any) -> requests.Response:
        return self.request("DELETE", target, **kwargs)

    # -- the common two-step operations ----------------------------------------------------------------

    def start_upload(self, repo: str) -> requests.Response:
        return self.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})

    def push_blob(self, repo: str, blob: Blob) -> requests.Response:
        """POST an upload session, then PUT the whole blob: the one way every registry accepts."""
        started = self.start_upload(repo)
        if started.status_code != 202 or not started.headers.get("Location"):
            return started
        return self.put(
            with_query(location(started), digest=blob.digest),
            headers={"Content-Type": "application/octet-stream"},
            data=blob.content,
        )

    def push_manifest(self, repo: str, reference: str, manifest: Manifest) -> requests.Response:
        return self.put(
            f"/v2/{repo}/manifests/{reference}",
            headers={"Content-Type": manifest.media_type},
            data=manifest.content,
        )

    def delete_manifest(self, repo: str, reference: str) -> requests.Response:
        return self.delete(f"/v2/{repo}/manifests/{reference}")

    def delete_blob(self, repo: str, digest: str) -> requests.Response:
        return self.delete(f"/v2/{repo}/blobs/{digest}")

    # -- the failure report ----------------------------------------------------------------------------

    def exchange_of(self, response: requests.Response) -> Exchange | None:
        return self._by_response.get(response)

    def explain(self, candidates: t.Iterable[object], since_ns: int, limit: int = 3) -> str:
        """Render the exchanges behind a failed check.

        The responses a test held (``candidates``, e.g. its local variables) are the best evidence; when it
        held none, the last exchanges recorded since the test started are shown instead.
        """
        chosen: list[Exchange] = []
        for candidate in candidates:
            exchange = self._by_response.get(candidate) if isinstance(candidate, requests.Response) else None
            if exchange is not None and exchange not in chosen:
                chosen.append(exchange)
        if not chosen:
            chosen = [e for e in self.exchanges if e.started_ns >= since_ns]
        chosen = sorted(chosen, key=lambda e: e.started_ns)[-limit:]
        return "\n\n".join(exchange.render() for exchange in chosen)


# -- small helpers on responses and URLs -------------------------------------------------------------


def location(response: requests.Response) -> str:
    """The absolute URL of ``Location`` (resolved against the request URL), or ``""`` when absent."""
    value = response.headers.get("Location", "")
    return urllib.parse.urljoin(response.url, value) if value else ""


def path_of(url: str) -> str:
    """The path of a URL, without scheme, host and query."""
    return urllib.parse.urlsplit(url).path


def with_query(url: str, **params: str) -> str:
    """Append query parameters, keeping the ones already there (upload URLs carry state in them)."""
    if not params:
        return url
    separator = "&" if urllib.parse.urlsplit(url).query else "?"
    return url + separator + urllib.parse.urlencode(params)


def error_codes(response: requests.Response) -> list[str]:
    """The ``code`` of every entry in an OCI error body; empty when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [str(error.get("code")) for error in errors if isinstance(error, dict)]
