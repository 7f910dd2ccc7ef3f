"""``http.tls``: an SSL context from certificates, client CAs, a minimum version and cipher suites.

Names, defaults and checks follow distribution's ``registry/registry.go``; the cipher suites it
accepts by their Go names are mapped to OpenSSL's names here.
"""

from __future__ import annotations

import ssl
import typing as t
import warnings

from .logs import log

if t.TYPE_CHECKING:
    from .config import TLSConfig

#: Every suite distribution accepts for TLS 1.0-1.2, by Go name, with OpenSSL's name for it.
GO_TO_OPENSSL: dict[str, str] = {
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
#: TLS 1.3 suites are accepted by name but, as in Go, not configurable: all of them stay on.
TLS13_SUITES = frozenset({"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"})
#: distribution's default: the ECDHE AEAD suites (plus the TLS 1.3 ones, always on).
DEFAULT_SUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
)
VERSIONS = {
    "tls1.0": ssl.TLSVersion.TLSv1,
    "tls1.1": ssl.TLSVersion.TLSv1_1,
    "tls1.2": ssl.TLSVersion.TLSv1_2,
    "tls1.3": ssl.TLSVersion.TLSv1_3,
}


class TLSConfigError(ValueError):
    """A TLS setting that cannot be used; ``key`` names the configuration key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def openssl_ciphers(names: t.Sequence[str]) -> str:
    """OpenSSL's cipher list for Go suite names; TLS 1.3 names are accepted and left out."""
    for name in names:
        if name not in GO_TO_OPENSSL and name not in TLS13_SUITES:
            raise TLSConfigError(
                "http.tls.ciphersuites",
                f"unknown TLS cipher suite '{name}' specified for http.tls.cipherSuites",
            )
    return ":".join(GO_TO_OPENSSL[n] for n in names if n in GO_TO_OPENSSL)


def configured_context(tls: TLSConfig | None) -> ssl.SSLContext | None:
    """The context ``http.tls`` asks for, from its certificate files; ``None`` without TLS, and with Let's
    Encrypt, whose certificate only the ACME exchange at ``serve`` yields.

    :raises TLSConfigError: a setting or a file cannot be used.
    """
    if tls is None or tls.letsencrypt is not None:
        return None
    return server_context(tls)


def server_context(tls: TLSConfig, certificate: str | None = None, key: str | None = None) -> ssl.SSLContext:
    """The server's SSL context; ``certificate``/``key`` override the configured files (ACME).

    Settings are checked in distribution's order: version, cipher suites, key pair, client CAs.
    """
    context = protocol_context(tls)
    cert_file = certificate or tls.certificate
    key_file = key or tls.key
    if not cert_file or not key_file:
        raise TLSConfigError("http.tls.certificate", "a certificate and a key are required")
    load_pair(context, cert_file, key_file)
    require_client_certificates(context, tls)
    return context


def protocol_context(tls: TLSConfig) -> ssl.SSLContext:
    """A server context with the minimum version, the cipher suites and ALPN, but no certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    minimum = VERSIONS.get(tls.minimumtls)
    if minimum is None:
        raise TLSConfigError(
            "http.tls.minimumtls",
            f"unknown minimum TLS level '{tls.minimumtls}' specified for http.tls.minimumtls",
        )
    with warnings.catch_warnings():
        # Python deprecates TLS 1.0 and 1.1; here the operator asked for them by name.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = minimum
    _set_ciphers(context, tls, minimum)
    # The server (emulator.serving, on h11) speaks HTTP/1.1 only; distribution would also offer h2.
    context.set_alpn_protocols(["http/1.1"])
    return context


def require_client_certificates(context: ssl.SSLContext, tls: TLSConfig) -> None:
    """With ``clientcas``, require a client certificate issued by one of them."""
    if not tls.clientcas:
        return
    for path in tls.clientcas:
        _read("http.tls.clientcas", path)
        try:
            context.load_verify_locations(cafile=path)
        except ssl.SSLError as e:
            raise TLSConfigError(
                "http.tls.clientcas", f"could not add CA {path} to pool: {e.reason or e}"
            ) from None
    context.verify_mode = ssl.CERT_REQUIRED  # Go's RequireAndVerifyClientCert


def _set_ciphers(context: ssl.SSLContext, tls: TLSConfig, minimum: ssl.TLSVersion) -> None:
    names = tls.ciphersuites or DEFAULT_SUITES
    ciphers = openssl_ciphers(names)  # unknown names are an error even where they would be ignored
    if minimum >= ssl.TLSVersion.TLSv1_3:
        if tls.ciphersuites:
            log.warning(
                "restricting TLS cipher suites to empty. Because configuring cipher suites is no longer "
                "supported in %s",
                tls.minimumtls,
            )
        return
    # OpenSSL's default security level refuses TLS 1.0/1.1 (and some legacy suites) even when they
    # are allowed; level 0 honours the operator's explicit choice, as Go does.
    seclevel = ":@SECLEVEL=0" if minimum < ssl.TLSVersion.TLSv1_2 else ""
    if not ciphers:
        # Only TLS 1.3 names: Go then offers no TLS 1.0-1.2 suite, so no such handshake succeeds.
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        return
    try:
        context.set_ciphers(ciphers + seclevel)
    except ssl.SSLError:
        raise TLSConfigError(
            "http.tls.ciphersuites", f"none of the cipher suites {', '.join(names)} is available in OpenSSL"
        ) from None


def _read(key: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSConfigError(key, f"cannot read {path}: {e.strerror or e}") from None


def _refuse_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal and hang the start; Go refuses
    # encrypted keys too.
    raise TLSConfigError("http.tls.key", "the private key is encrypted, which is not supported")


def load_pair(context: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    """Load a PEM certificate (chain allowed) and its key, naming the faulty file on error."""
    if b"-----BEGIN CERTIFICATE-----" not in _read("http.tls.certificate", cert_file):
        raise TLSConfigError("http.tls.certificate", f"{cert_file} holds no PEM certificate")
    if b"PRIVATE KEY-----" not in _read("http.tls.key", key_file):
        raise TLSConfigError("http.tls.key", f"{key_file} holds no PEM private key")
    try:
        context.load_cert_chain(cert_file, key_file, password=_refuse_password)
    except ssl.SSLError as e:
        if e.reason == "KEY_VALUES_MISMATCH":
            problem = f"private key {key_file} does not match certificate {cert_file}"
        else:
            problem = f"cannot use certificate {cert_file} with key {key_file}: {e.reason or e}"
        raise TLSConfigError("http.tls.key", problem) from None
