"""``http.tls.letsencrypt``: a certificate from an ACME server (Let's Encrypt, or pebble in tests).

distribution uses Go's ``autocert``, which orders a certificate on the first handshake for a name and
answers TLS-ALPN-01 challenges on the TLS port. The emulator instead orders one certificate for all
``hosts`` *before* it serves, with the ``acme`` library, and answers **HTTP-01** challenges:

- Challenges are served by a small plain-HTTP listener that runs only while an order is validated
  (at start, and during a renewal). HTTP-01 validation always arrives as plain HTTP on port 80 (an ACME
  test server such as pebble uses its ``httpPort`` setting), so the registry's own TLS listener, which is
  not even open yet at start, could not answer it. The address is ``http.tls.letsencrypt.http01addr``
  (an extension of ours; ``HOST:PORT``, default ``:80``; ``REGISTRY_HTTP_TLS_LETSENCRYPT_HTTP01ADDR`` in
  the environment). If it cannot be bound, a warning is logged and the order goes on:
  a server that validates some other way (pebble with ``PEBBLE_VA_ALWAYS_VALID=1``) still issues.
- ``cachefile`` is a directory (as distribution 3's docs say), created with mode 0700. Each ACME
  directory URL gets its own subdirectory holding ``account.key`` (the account's EC key),
  ``account.json`` (its URL) and ``certificate.pem`` (the certificate's key followed by the full chain,
  in one file so that a crash cannot pair a new key with an old certificate), all mode 0600. A restart
  whose cached certificate still covers ``hosts`` and has not expired serves it without contacting the
  ACME server.
- A background thread renews the certificate when less than 30 days remain (retrying hourly on
  failure). New handshakes pick the new certificate up at once: the SNI callback hands each connection
  the current certificate's context, so nothing that serves a handshake is ever modified in place.
- Only the listed hosts are served: a handshake for another name, or without SNI (a client connecting
  by IP address), is refused, as autocert's host whitelist does.
- The ACME server's certificate is verified as ``requests`` does; ``REQUESTS_CA_BUNDLE`` names a
  private CA (pebble's).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import ssl
import tempfile
import threading
import typing as t

from .logs import log
from .tls import TLSConfigError
from .tls import protocol_context
from .tls import require_client_certificates
from .tls import server_context

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIEnvironment

    from .config import Config
    from .config import LetsEncryptConfig
    from .config import TLSConfig
    from .serving import BackgroundServer

#: Renew when less than this remains, as autocert does by default.
RENEW_BEFORE = datetime.timedelta(days=30)
#: How long to wait before trying again after a failed renewal.
RETRY_INTERVAL = datetime.timedelta(hours=1)
#: The renewal thread wakes at least this often, so that a suspended machine or a clock change
#: cannot make it sleep past the renewal time.
MAX_SLEEP = datetime.timedelta(hours=12)
#: How long an order may take to be validated and issued.
ORDER_TIMEOUT = datetime.timedelta(minutes=3)
CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
USER_AGENT = "pax-registry-emulator"


class LetsEncryptError(TLSConfigError):
    """No certificate could be obtained; reported like a configuration error, which stops the start."""

    def __init__(self, problem: str, key: str = "http.tls.letsencrypt") -> None:
        super().__init__(key, problem)


def obtain_context(config: Config) -> ssl.SSLContext:
    """The server's SSL context, with a certificate obtained (or taken from the cache) before this
    returns, and renewed in the background from then on."""
    tls = config.http.tls
    if tls is None or tls.letsencrypt is None:
        raise LetsEncryptError("not configured")
    manager = CertificateManager(tls, tls.letsencrypt)
    manager.start()
    return manager.context


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_private(path: str, data: bytes) -> None:
    """Write ``data`` with mode 0600, atomically: readers see the old file or the new one."""
    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def directory_folder(url: str) -> str:
    """A readable folder name for an ACME directory URL, e.g. ``acme-v02.api.letsencrypt.org_directory``."""
    name = re.sub(r"^[a-z]+://", "", url.strip())
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_") or "acme"


class Certificate:
    """A certificate chain and its key, as cached in one PEM file."""

    def __init__(self, pem: bytes) -> None:
        from cryptography import x509

        self.pem = pem
        chain = x509.load_pem_x509_certificates(pem)
        self.leaf = chain[0]
        self.not_after = self.leaf.not_valid_after_utc
        try:
            san = self.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            self.names = frozenset(n.lower() for n in san.value.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            self.names = frozenset()

    def covers(self, hosts: t.Iterable[str]) -> bool:
        return all(h.lower() in self.names for h in hosts)


class ChallengeResponder:
    """A plain-HTTP listener answering ``/.well-known/acme-challenge/<token>`` while an order runs."""

    def __init__(self, addr: str) -> None:
        from .config import split_addr

        self.addr = addr
        self.host, self.port = split_addr(addr)
        self.answers: dict[str, str] = {}
        self._server: BackgroundServer | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        answer = (
            self.answers.get(path[len(CHALLENGE_PREFIX) :]) if path.startswith(CHALLENGE_PREFIX) else None
        )
        if answer is None or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "0")])
            return [b""]
        log.debug("answering ACME HTTP-01 challenge %s", path)
        body = answer.encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    def __enter__(self) -> ChallengeResponder:
        from .serving import BackgroundServer

        try:
            self._server = BackgroundServer(self, host=self.host or "0.0.0.0", port=self.port)
        except OSError as e:
            log.warning(
                "cannot listen for ACME HTTP-01 challenges on %s (%s); validation will fail unless "
                "the ACME server validates some other way",
                self.addr,
                e.strerror or e,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


class CertificateManager:
    """Obtains, caches, serves and renews the certificate for ``letsencrypt.hosts``."""

    def __init__(
        self,
        tls: TLSConfig,
        letsencrypt: LetsEncryptConfig,
        *,
        challenge_addr: str | None = None,
        renew_before: datetime.timedelta = RENEW_BEFORE,
        retry_interval: datetime.timedelta = RETRY_INTERVAL,
    ) -> None:
        if not letsencrypt.hosts:
            raise LetsEncryptError(
                "at least one host is required: the certificate is obtained before serving",
                key="http.tls.letsencrypt.hosts",
            )
        self.tls = tls
        self.letsencrypt = letsencrypt
        self.hosts = tuple(h.lower().rstrip(".") for h in letsencrypt.hosts)
        self.challenge_addr = challenge_addr or letsencrypt.http01addr
        self.renew_before = renew_before
        self.retry_interval = retry_interval
        self.folder = os.path.join(letsencrypt.cachefile, directory_folder(letsencrypt.directoryurl))
        self.certificate_path = os.path.join(self.folder, "certificate.pem")
        self.account_key_path = os.path.join(self.folder, "account.key")
        self.account_path = os.path.join(self.folder, "account.json")
        #: How many certificates were obtained from the ACME server by this manager.
        self.orders = 0
        self.certificate: Certificate | None = None
        self._current: ssl.SSLContext | None = None
        self.context: ssl.SSLContext
        self._stop = threading.Event()
        self._swapped = threading.Condition()
        self._thread: threading.Thread | None = None

    # -- start and renewal ----------------------------------------------------------------------------

    def start(self) -> None:
        """Load or obtain the certificate, build :attr:`context`, and start the renewal thread."""
        _require_acme()
        # Every other TLS setting is checked before the ACME server is asked for anything.
        require_client_certificates(protocol_context(self.tls), self.tls)
        try:
            # One call each: makedirs applies the mode only to the last component it creates.
            os.makedirs(self.letsencrypt.cachefile, mode=0o700, exist_ok=True)
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
        except OSError as e:
            raise LetsEncryptError(
                f"cannot create cache directory {self.folder}: {e.strerror or e}",
                key="http.tls.letsencrypt.cachefile",
            ) from None
        context = None
        cached = self._cached()
        if cached is not None:
            try:
                context = self._install(cached)
            except LetsEncryptError as e:
                log.warning("%s; ordering a new one", e.problem)
        self.context = context or self._install(self.obtain())
        self.context.sni_callback = self._select
        self._thread = threading.Thread(target=self._renew_loop, name="acme-renewal", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _cached(self) -> Certificate | None:
        try:
            with open(self.certificate_path, "rb") as f:
                certificate = Certificate(f.read())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable cached certificate %s: %s", self.certificate_path, e)
            return None
        if not certificate.covers(self.hosts):
            log.info("cached certificate does not cover %s; ordering a new one", ", ".join(self.hosts))
            return None
        if certificate.not_after <= _now():
            log.info("cached certificate expired on %s; ordering a new one", certificate.not_after)
            return None
        log.info(
            "using cached certificate for %s, valid until %s",
            ", ".join(sorted(certificate.names)),
            certificate.not_after.isoformat(),
        )
        return certificate

    def _install(self, certificate: Certificate) -> ssl.SSLContext:
        """Make ``certificate`` the one new handshakes get; returns its context."""
        try:
            context = server_context(self.tls, certificate=self.certificate_path, key=self.certificate_path)
        except TLSConfigError as e:
            if e.key in ("http.tls.minimumtls", "http.tls.ciphersuites", "http.tls.clientcas"):
                raise
            raise LetsEncryptError(f"certificate {self.certificate_path} is unusable: {e.problem}") from None
        with self._swapped:
            self.certificate = certificate
            self._current = context
            self._swapped.notify_all()
        return context

    def _renew_loop(self) -> None:
        while not self._stop.is_set():
            assert self.certificate is not None
            due = self.certificate.not_after - self.renew_before
            remaining = due - _now()
            if remaining > datetime.timedelta(0):
                self._stop.wait(min(remaining, MAX_SLEEP).total_seconds())
                continue
            log.info(
                "renewing the certificate for %s (expires %s)",
                ", ".join(self.hosts),
                self.certificate.not_after,
            )
            try:
                self._install(self.obtain())
            except Exception as e:
                log.error("certificate renewal failed, retrying in %s: %s", self.retry_interval, e)
                self._stop.wait(self.retry_interval.total_seconds())

    def wait_for_certificate(self, previous: Certificate | None, timeout: float) -> bool:
        """Wait until the served certificate is no longer ``previous`` (for tests and tools)."""
        with self._swapped:
            return self._swapped.wait_for(lambda: self.certificate is not previous, timeout)

    # -- serving -------------------------------------------------------------------------------------

    def _select(self, connection: t.Any, server_name: str | None, context: ssl.SSLContext) -> int | None:
        """SNI callback: refuse names outside ``hosts``; give the others the current certificate."""
        if server_name is None or server_name.lower().rstrip(".") not in self.hosts:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        current = self._current
        if current is not None and current is not context:
            connection.context = current
        return None

    # -- ACME ----------------------------------------------------------------------------------------

    def obtain(self) -> Certificate:
        """Order a certificate for :attr:`hosts`, store it in the cache and return it."""
        try:
            pem = self._order()
        except LetsEncryptError:
            raise
        except Exception as e:
            raise LetsEncryptError(
                f"cannot obtain a certificate for {', '.join(self.hosts)} from "
                f"{self.letsencrypt.directoryurl}: {_describe(e)}"
            ) from None
        _write_private(self.certificate_path, pem)
        self.orders += 1
        certificate = Certificate(pem)
        log.info(
            "obtained a certificate for %s, valid until %s",
            ", ".join(self.hosts),
            certificate.not_after.isoformat(),
        )
        return certificate

    def _order(self) -> bytes:
        from acme import challenges
        from acme import crypto_util
        from acme import messages
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        csr = crypto_util.make_csr(key_pem, list(self.hosts))
        acme = self._client()
        log.info(
            "ordering a certificate for %s from %s", ", ".join(self.hosts), self.letsencrypt.directoryurl
        )
        try:
            order = acme.new_order(csr)
        except messages.Error as e:
            if e.code != "accountDoesNotExist":
                raise
            # The ACME server forgot the cached account (a restarted pebble does): register again.
            os.unlink(self.account_path)
            acme = self._client()
            order = acme.new_order(csr)
        with ChallengeResponder(self.challenge_addr) as responder:
            for authorization in order.authorizations:
                if authorization.body.status == messages.STATUS_VALID:
                    continue  # validated recently: the server reuses it
                challenge = next(
                    (c for c in authorization.body.challenges if isinstance(c.chall, challenges.HTTP01)), None
                )
                if challenge is None:
                    name = authorization.body.identifier.value
                    raise LetsEncryptError(f"the ACME server offers no http-01 challenge for {name}")
                response, validation = challenge.response_and_validation(acme.net.key)
                responder.answers[challenge.chall.encode("token")] = validation
                acme.answer_challenge(challenge, response)
            # The acme library compares deadlines with naive local time.
            order = acme.poll_and_finalize(order, datetime.datetime.now() + ORDER_TIMEOUT)
        chain: str = order.fullchain_pem
        return key_pem + chain.encode()

    def _client(self) -> t.Any:
        """An ACME client with the cached account, registering one first if there is none."""
        from acme import client
        from acme import errors
        from acme import messages
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from josepy.jwa import ES256
        from josepy.jwk import JWKEC

        try:
            with open(self.account_key_path, "rb") as f:
                private = serialization.load_pem_private_key(f.read(), password=None)
        except FileNotFoundError:
            private = ec.generate_private_key(ec.SECP256R1())
            pem = private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            _write_private(self.account_key_path, pem)
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise LetsEncryptError(f"account key {self.account_key_path} is not an EC key")
        jwk = JWKEC(key=private)
        network = client.ClientNetwork(jwk, alg=ES256, user_agent=USER_AGENT)
        directory = client.ClientV2.get_directory(self.letsencrypt.directoryurl, network)
        acme = client.ClientV2(directory, network)
        try:
            with open(self.account_path) as f:
                uri = json.load(f)["uri"]
            network.account = messages.RegistrationResource(uri=uri, body=messages.Registration())
            return acme
        except (FileNotFoundError, ValueError, KeyError):
            pass
        email = self.letsencrypt.email
        registration = (
            messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True)
            if email
            else messages.NewRegistration(terms_of_service_agreed=True)
        )
        try:
            account = acme.new_account(registration)
        except errors.ConflictError as e:
            # The key is registered already (the account file was lost): use that account.
            account = messages.RegistrationResource(uri=e.location, body=messages.Registration())
            network.account = account
        log.info("registered ACME account %s", account.uri)
        _write_private(
            self.account_path,
            json.dumps({"uri": account.uri, "directory": self.letsencrypt.directoryurl}).encode(),
        )
        return acme


def _require_acme() -> None:
    try:
        import acme.client  # noqa: F401
        import josepy  # noqa: F401
    except ImportError:
        raise LetsEncryptError(
            "needs the acme and josepy packages: pip install 'pax-registry-harness[acme]'"
        ) from None


def _describe(error: Exception) -> str:
    """One line for an ACME, network or validation failure."""
    text = str(error) or type(error).__name__
    return " ".join(text.split())
