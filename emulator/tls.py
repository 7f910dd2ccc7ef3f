"""``http.tls``: an SSL context from certificates, client CAs, a minimum version and cipher suites."""

from __future__ import annotations

import ssl
import typing as t

if t.TYPE_CHECKING:
    from .config import TLSConfig

#: distribution names cipher suites as Go does; OpenSSL names them differently.
GO_TO_OPENSSL: dict[str, str] = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
}
#: TLS 1.3 suites are not configurable in Go or in Python's ssl; the names are accepted and kept.
TLS13_SUITES = frozenset({"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"})
#: distribution's default: the AEAD suites with forward secrecy.
DEFAULT_SUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
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
        super().__init__(problem)
        self.key = key
        self.problem = problem


def openssl_ciphers(names: t.Sequence[str]) -> str:
    unknown = [n for n in names if n not in GO_TO_OPENSSL and n not in TLS13_SUITES]
    if unknown:
        raise TLSConfigError("http.tls.ciphersuites", f"unknown TLS cipher suite {unknown[0]!r}")
    return ":".join(GO_TO_OPENSSL[n] for n in names if n in GO_TO_OPENSSL)


def server_context(tls: TLSConfig, certificate: str | None = None, key: str | None = None) -> ssl.SSLContext:
    """The server's SSL context; ``certificate``/``key`` override the configured files (ACME)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    minimum = VERSIONS.get(tls.minimumtls)
    if minimum is None:
        raise TLSConfigError("http.tls.minimumtls", f"unknown minimum TLS level {tls.minimumtls!r}")
    if minimum < ssl.TLSVersion.TLSv1_2:
        # OpenSSL's default security level refuses TLS 1.0/1.1 even when allowed; level 0 honours
        # the operator's explicit choice, as Go does.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = minimum
    ciphers = openssl_ciphers(tls.ciphersuites or DEFAULT_SUITES)
    if ciphers:
        suffix = ":@SECLEVEL=0" if minimum < ssl.TLSVersion.TLSv1_2 else ""
        try:
            context.set_ciphers(ciphers + suffix)
        except ssl.SSLError:
            raise TLSConfigError("http.tls.ciphersuites", "no usable cipher suite in the list") from None
    cert_file = certificate or tls.certificate
    key_file = key or tls.key
    try:
        context.load_cert_chain(t.cast(str, cert_file), key_file)
    except FileNotFoundError as e:
        raise TLSConfigError("http.tls.certificate", f"cannot read {e.filename}") from None
    except ssl.SSLError as e:
        raise TLSConfigError(
            "http.tls.key",
            f"certificate {cert_file} and key {key_file} do not form a usable pair ({e.reason})",
        ) from None
    except OSError as e:
        raise TLSConfigError("http.tls.certificate", f"cannot read {cert_file}: {e.strerror}") from None
    if tls.clientcas:
        for path in tls.clientcas:
            try:
                context.load_verify_locations(cafile=path)
            except (OSError, ssl.SSLError) as e:
                raise TLSConfigError("http.tls.clientcas", f"cannot load client CA {path}: {e}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["http/1.1"])
    return context
