"""One look at the registry before any check: can the suite reach it, speak its scheme, trust it, log in?

A wrong URL, scheme, CA or password otherwise fails every check of the run, each with its own traceback.
:func:`problem` sends ``GET /v2/`` (and, when the registry challenges, the same request with the
credentials) and names what is wrong and the option that fixes it, or returns ``None``. A failed request
is explained with at most one more small probe of the same port: does it speak TLS, or plain HTTP?
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import typing as t
import urllib.parse

import requests

from conformance.client import RegistryClient

if t.TYPE_CHECKING:
    from conformance.settings import Settings

__all__ = ["TIMEOUT", "config_problem", "problem"]

#: Seconds for each connect and each read of the preflight; a registry that is up answers ``/v2/`` at once.
TIMEOUT = 3.0

_URL = "--pax-registry-url"
_CACERT = "--pax-registry-cacert"
_CREDENTIALS = "--pax-registry-username and --pax-registry-password"
_CLIENT_CERT = "--pax-registry-client-cert (and --pax-registry-client-key)"

# OpenSSL's verification results that another CA cannot fix.
_HOSTNAME_MISMATCH = 62
_EXPIRED = 10
_NOT_YET_VALID = 9


class _Target(t.NamedTuple):
    url: str
    scheme: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def problem(settings: Settings, url: str | None = None) -> str | None:
    """What stops the suite from testing the registry, as one message; ``None`` when nothing does.

    :param url: the registry to look at, when it is not ``settings.url`` (an emulator started here).
    """
    found = _files(settings)
    if found:
        return found
    target = _target(url or settings.url or "")
    if isinstance(target, str):
        return target
    if settings.password and not settings.username:
        return f"a password is given but no user: pass {_CREDENTIALS} together"
    client = RegistryClient(
        target.url,
        username=settings.username,
        password=settings.password,
        cacert=settings.cacert,
        client_cert=settings.client_cert,
        client_key=settings.client_key,
        timeout=TIMEOUT,
    )
    try:
        return _look(client, target, settings)
    finally:
        client.close()


def _files(settings: Settings) -> str | None:
    options = {
        _CACERT: settings.cacert,
        "--pax-registry-client-cert": settings.client_cert,
        "--pax-registry-client-key": settings.client_key,
        "--pax-registry-config": settings.config_path,
    }
    for option, path in options.items():
        if path and not os.path.isfile(path):
            return f"{option}={path}: no such file"
    if settings.client_key and not settings.client_cert:
        return "--pax-registry-client-key is given without --pax-registry-client-cert"
    return None


def _display(url: str) -> str:
    """The URL without any user information, which may hold a password."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _target(url: str) -> _Target | str:
    parts = urllib.parse.urlsplit(url)
    shown = _display(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{_URL}={shown} is not an http:// or https:// URL with a host"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return f"{_URL}={shown} has an invalid port"
    return _Target(url.rstrip("/"), parts.scheme, parts.hostname, port)


def _look(client: RegistryClient, target: _Target, settings: Settings) -> str | None:
    try:
        response = client.request("GET", "/v2/", credentials=None)
    except requests.RequestException as error:
        return _failed(error, target, settings)
    status = response.status_code
    if status == 200:
        return None
    if status == 401:
        return _log_in(client, response, target, settings)
    if status == 400 and target.scheme == "http" and _speaks_tls(target):
        return _use_https(target)
    return _not_a_registry(response, target, settings)


def _challenge(response: requests.Response) -> str:
    return response.headers.get("WWW-Authenticate", "").split(" ", 1)[0]


def _log_in(
    client: RegistryClient, challenged: requests.Response, target: _Target, settings: Settings
) -> str | None:
    scheme = _challenge(challenged)
    if not settings.username:
        kind = f" ({scheme})" if scheme else ""
        return f"the registry at {_display(target.url)} requires credentials{kind}: pass {_CREDENTIALS}"
    # A challenge the client cannot answer is the checks' business (a 401 must carry WWW-Authenticate);
    # whether the credentials are right is the preflight's, so they go as Basic regardless.
    bearer = scheme.lower() == "bearer"
    basic = (settings.username, settings.password or "")
    try:
        response = (
            client.request("GET", "/v2/") if bearer else client.request("GET", "/v2/", credentials=basic)
        )
    except requests.RequestException as error:
        # With Bearer, the token service is another server, which can fail in its own ways.
        return _failed(error, target, settings)
    if response.status_code == 200:
        return None
    if response.status_code == 401:
        via = " (the token service refused them)" if bearer else ""
        return (
            f"the registry at {_display(target.url)} refused the credentials of user "
            f"'{settings.username}'{via}: check {_CREDENTIALS}"
        )
    if response.status_code == 403:
        return (
            f"the registry at {_display(target.url)} accepted user '{settings.username}' but forbids it "
            f"GET /v2/ (403): give the suite a user with pull and push rights ({_CREDENTIALS})"
        )
    return _not_a_registry(response, target, settings)


def _not_a_registry(response: requests.Response, target: _Target, settings: Settings) -> str:
    answer = f"{response.status_code} {response.reason or ''}".strip()
    where = f"{_display(target.url)}/v2/"
    if response.status_code >= 500:
        return f"{where} answered {answer}: the registry is not ready or is broken; check its logs"
    if response.status_code == 403 and not settings.username:
        return f"{where} answered {answer} to a client without credentials: pass {_CREDENTIALS}"
    return (
        f"{where} answered {answer}, and a registry answers 200 or 401: this is not the base URL of a "
        f"registry; check the host, port and path of {_URL}"
    )


def _use_https(target: _Target) -> str:
    return f"{target.address} speaks TLS, not plain HTTP: use https://{target.address} in {_URL}"


def _causes(error: BaseException) -> t.Iterator[BaseException]:
    """The error and everything behind it, including what urllib3 keeps in ``reason``."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        pending += [reason if isinstance(reason, BaseException) else None]
        pending += [current.__cause__, current.__context__]
        pending += [arg for arg in current.args if isinstance(arg, BaseException)]


def _first(error: BaseException, kind: type[BaseException]) -> t.Any:
    return next((cause for cause in _causes(error) if isinstance(cause, kind)), None)


def _elsewhere(url: str, target: _Target) -> bool:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return (parts.hostname, port) != (target.host, target.port)


def _failed(error: requests.RequestException, target: _Target, settings: Settings) -> str:
    """Why the request got no HTTP answer."""
    failed_url = _display(error.request.url) if error.request is not None and error.request.url else ""
    if failed_url and _elsewhere(failed_url, target):
        # Only the token service of a Bearer challenge lives elsewhere.
        return f"the token service at {failed_url.split('?', 1)[0]} could not be reached: {_brief(error)}"
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return (
            f"{target.address} did not accept a connection within {TIMEOUT:g} s: check the host and port "
            f"of {_URL} and any firewall between"
        )
    if _first(error, ConnectionRefusedError) is not None:
        return f"nothing listens on {target.address} (connection refused): check the host and port of {_URL}"
    if _first(error, socket.gaierror) is not None:
        return f"the host name {target.host} does not resolve: check {_URL}"
    verification = _first(error, ssl.SSLCertVerificationError)
    if verification is not None:
        return _untrusted(verification, target, settings)
    if target.scheme == "https" and _first(error, ssl.SSLError) is not None:
        return _handshake(_first(error, ssl.SSLError), target, settings)
    if target.scheme == "http" and _speaks_tls(target):
        return _use_https(target)
    if isinstance(error, requests.exceptions.ReadTimeout):
        return (
            f"{target.address} accepted the connection but did not answer GET /v2/ within {TIMEOUT:g} s: "
            f"check that {_URL} names the registry"
        )
    if target.scheme == "https" and not _speaks_tls(target) and _speaks_plain_http(target):
        return _use_http(target)
    return f"GET {_display(target.url)}/v2/ got no HTTP answer ({_brief(error)}): check {_URL}"


def _brief(error: BaseException) -> str:
    """The innermost reason, without the layers requests and urllib3 wrap it in."""
    causes = list(_causes(error))
    deepest = causes[-1]
    return f"{type(deepest).__name__}: {deepest}" if str(deepest) else type(deepest).__name__


def _untrusted(error: ssl.SSLCertVerificationError, target: _Target, settings: Settings) -> str:
    reason = error.verify_message or str(error)
    if error.verify_code == _HOSTNAME_MISMATCH:
        return (
            f"the certificate of {target.address} is not valid for the name {target.host} ({reason}): "
            f"use a name the certificate holds in {_URL}"
        )
    if error.verify_code in (_EXPIRED, _NOT_YET_VALID):
        return f"the certificate of {target.address} is out of its validity period ({reason}): renew it"
    if settings.cacert:
        return (
            f"the certificate of {target.address} is not signed by a CA in {_CACERT}={settings.cacert} "
            f"({reason}): pass the CA that signed the registry's certificate"
        )
    return (
        f"the certificate of {target.address} is not trusted ({reason}): pass the CA that signed it "
        f"with {_CACERT}"
    )


def _handshake(error: ssl.SSLError, target: _Target, settings: Settings) -> str:
    reason = str(getattr(error, "reason", None) or error)
    # TLS servers answer plain HTTP too (400, "a plain HTTP request to a TLS port"), so ask about TLS first.
    if not _speaks_tls(target) and _speaks_plain_http(target):
        return _use_http(target)
    upper = reason.upper()
    # Servers refuse a missing client certificate with one of these alerts, depending on the TLS version
    # and the implementation (Go's: bad certificate; OpenSSL's: certificate required).
    refusals = ("CERTIFICATE_REQUIRED", "HANDSHAKE_FAILURE", "BAD_CERTIFICATE")
    if not settings.client_cert and any(alert in upper for alert in refusals):
        return f"{target.address} requires a client certificate ({reason}): pass {_CLIENT_CERT}"
    if settings.client_cert and any(alert in upper for alert in ("UNKNOWN_CA", *refusals)):
        return (
            f"{target.address} refused the client certificate in --pax-registry-client-cert ({reason}): "
            f"pass one signed by a CA the registry trusts"
        )
    return f"the TLS handshake with {target.address} failed ({reason}): check the registry's TLS settings"


def _use_http(target: _Target) -> str:
    return f"{target.address} speaks plain HTTP, not TLS: use http://{target.address} in {_URL}"


def _speaks_tls(target: _Target) -> bool:
    """Whether the port completes a TLS handshake (any certificate will do: this is about the scheme)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((target.host, target.port), timeout=TIMEOUT) as sock,
            context.wrap_socket(sock, server_hostname=target.host),
        ):
            return True
    except ssl.SSLError as error:
        # A server that wants a client certificate refuses the handshake, in TLS.
        return "ALERT" in str(error.reason or "").upper()
    except OSError:
        return False


def _speaks_plain_http(target: _Target) -> bool:
    """Whether the port answers a plain HTTP request with an HTTP status line."""
    connection = http.client.HTTPConnection(target.host, target.port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/v2/")
        connection.getresponse().close()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True


def config_problem(settings: Settings) -> str | None:
    """Why ``--pax-registry-config`` cannot be read, or ``None`` (also when none is given)."""
    if not settings.config_path:
        return None
    from conformance.configreader import ConfigReadError
    from conformance.configreader import load_raw

    environ = os.environ if settings.url else {}
    try:
        document = load_raw(settings.config_path, environ)
    except ConfigReadError as error:
        return f"--pax-registry-config: {error}"
    auth = document.get("auth")
    if not settings.url and not settings.username and isinstance(auth, dict) and auth:
        # Known before the emulator starts here, and said before pytest-xdist starts one per worker.
        return (
            f"the emulator started here requires credentials (auth: {', '.join(map(str, auth))} in "
            f"{settings.config_path}): pass {_CREDENTIALS}"
        )
    return None
