"""The configuration's typed form: frozen dataclasses, built once at start, and its one error."""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field
from typing import Any

MiB = 1024 * 1024
GiB = 1024 * MiB


class ConfigError(Exception):
    """A configuration mistake; ``str(error)`` is one line, ``'<source>: <key>: <problem>'``.

    :param source: the file (or environment variable) the mistake is in.
    :param key: the dotted key, such as ``log.level``.
    :param problem: what is wrong with it.
    """

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(source, key, problem)
        self.source = source
        self.key = key
        self.problem = problem

    def __str__(self) -> str:
        return " ".join(f"{self.source}: {self.key}: {self.problem}".splitlines())


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    formatter: str = "text"
    fields: dict[str, Any] = field(default_factory=dict)
    accesslog_disabled: bool = False


@dataclass(frozen=True)
class LetsEncryptConfig:
    #: A directory, despite the name.
    cachefile: str
    email: str = ""
    hosts: tuple[str, ...] = ()
    directoryurl: str = "https://acme-v02.api.letsencrypt.org/directory"
    #: Where HTTP-01 challenges are answered, ``HOST:PORT`` (an extension of ours: distribution answers
    #: TLS-ALPN-01 on its TLS port instead).
    http01addr: str = ":80"


@dataclass(frozen=True)
class TLSConfig:
    """Present only when TLS is on: a certificate or Let's Encrypt is configured."""

    certificate: str | None = None
    key: str | None = None
    clientcas: tuple[str, ...] = ()
    minimumtls: str = "tls1.2"
    ciphersuites: tuple[str, ...] = ()
    letsencrypt: LetsEncryptConfig | None = None


@dataclass(frozen=True)
class PrometheusConfig:
    enabled: bool = False
    path: str = "/metrics"


@dataclass(frozen=True)
class DebugConfig:
    """``http.debug``: the second, plain-HTTP server for health and metrics."""

    #: ``""`` means no debug server; ``"127.0.0.1:0"`` asks for a free port.
    addr: str = ""
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)


@dataclass(frozen=True)
class HTTPConfig:
    addr: str = ":5000"
    net: str = "tcp"
    prefix: str = "/"
    host: str | None = None
    relativeurls: bool = False
    secret: str = ""
    #: Seconds.
    draintimeout: float = 0.0
    #: Connections served at once (an extension of ours: distribution has no limit).
    maxconnections: int = 1000
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tls: TLSConfig | None = None
    http2_disabled: bool = False
    debug: DebugConfig = field(default_factory=DebugConfig)

    def listen_host(self) -> str:
        """The host part of a tcp :attr:`addr`; ``""`` means all interfaces."""
        return split_addr(self.addr)[0]

    def listen_port(self) -> int:
        """The port of a tcp :attr:`addr`; 0 asks the system for a free one."""
        return split_addr(self.addr)[1]


@dataclass(frozen=True)
class S3Config:
    region: str
    bucket: str
    rootdirectory: str = ""
    encrypt: bool = False
    secure: bool = True
    accesskey: str | None = None
    secretkey: str | None = None
    host: str | None = None
    port: int | None = None
    regionendpoint: str | None = None
    forcepathstyle: bool = False
    chunksize: int = 10 * MiB
    skipverify: bool = False
    storageclass: str = "STANDARD"
    v4auth: bool = True
    keyid: str | None = None
    objectacl: str = "private"
    multipartcopychunksize: int = 32 * MiB
    multipartcopythresholdsize: int = 32 * MiB
    multipartcopymaxconcurrency: int = 100
    useragent: str | None = None


@dataclass(frozen=True)
class UploadPurgingConfig:
    enabled: bool = True
    #: Seconds (168h).
    age: float = 168 * 3600.0
    #: Seconds (24h).
    interval: float = 24 * 3600.0
    dryrun: bool = False


@dataclass(frozen=True)
class StorageConfig:
    #: ``"inmemory"``, ``"filesystem"`` or ``"s3"``.
    driver: str
    #: Used by the filesystem driver only.
    rootdirectory: str = "/var/lib/registry"
    maxthreads: int = 100
    s3: S3Config | None = None
    #: ``"inmemory"``, ``"redis"`` or ``None`` (no cache).
    blobdescriptor: str | None = None
    blobdescriptorsize: int = 10000
    delete_enabled: bool = False
    redirect_disable: bool = False
    uploadpurging: UploadPurgingConfig = field(default_factory=UploadPurgingConfig)
    readonly: bool = False


@dataclass(frozen=True)
class HtpasswdConfig:
    realm: str
    path: str


@dataclass(frozen=True)
class AuthConfig:
    #: ``None`` means no access control.
    htpasswd: HtpasswdConfig | None = None


@dataclass(frozen=True)
class RedisPoolConfig:
    maxidle: int = 16
    maxactive: int = 64
    idletimeout: float = 300.0


@dataclass(frozen=True)
class RedisConfig:
    addr: str
    password: str | None = None
    db: int = 0
    dialtimeout: float = 0
    readtimeout: float = 0
    writetimeout: float = 0
    pool: RedisPoolConfig = field(default_factory=RedisPoolConfig)


@dataclass(frozen=True)
class EndpointConfig:
    """One of ``notifications.endpoints``."""

    name: str
    url: str
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Seconds; ``<=0`` in the file means 1s, distribution's default.
    timeout: float = 1.0
    #: ``<=0`` in the file means 10.
    threshold: int = 10
    #: Seconds; ``<=0`` in the file means 1s.
    backoff: float = 1.0
    #: ``ignoredmediatypes`` and ``ignore.mediatypes``, merged.
    ignoredmediatypes: tuple[str, ...] = ()
    #: ``ignore.actions``.
    ignoredactions: tuple[str, ...] = ()
    disabled: bool = False
    #: The bound of the endpoint's queue (an extension of ours); when full, the oldest event is dropped.
    queuesize: int = 10_000


@dataclass(frozen=True)
class NotificationsConfig:
    #: Disabled endpoints are included; the notifier skips them.
    endpoints: tuple[EndpointConfig, ...] = ()
    #: ``notifications.events.includereferences``.
    includereferences: bool = False


@dataclass(frozen=True)
class StorageDriverCheck:
    enabled: bool = False
    #: Seconds; 0 in the file means 10s.
    interval: float = 10.0
    threshold: int = 0


@dataclass(frozen=True)
class FileCheck:
    file: str
    interval: float = 10.0


@dataclass(frozen=True)
class HTTPCheck:
    uri: str
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    statuscode: int = 200
    #: Seconds; 0 means no timeout.
    timeout: float = 0.0
    interval: float = 10.0
    threshold: int = 0


@dataclass(frozen=True)
class TCPCheck:
    addr: str
    #: Seconds; 0 means no timeout.
    timeout: float = 0.0
    interval: float = 10.0
    threshold: int = 0


@dataclass(frozen=True)
class HealthConfig:
    storagedriver: StorageDriverCheck = field(default_factory=StorageDriverCheck)
    file: tuple[FileCheck, ...] = ()
    http: tuple[HTTPCheck, ...] = ()
    tcp: tuple[TCPCheck, ...] = ()


@dataclass(frozen=True)
class ProxyConfig:
    """Present only when ``proxy.remoteurl`` is set: the registry is a pull-through cache."""

    remoteurl: str
    username: str | None = None
    password: str | None = None
    #: Seconds; ``None`` (``ttl: 0`` in the file) means cached content never expires.
    ttl: float | None = 168 * 3600.0


@dataclass(frozen=True)
class PackValidationConfig:
    """``validation.packs``, an extension of ours."""

    #: Check pack archives pushed under ``.../spectro-packs/archive/<name>:<version>``.
    enabled: bool = False
    #: Maintain parent tags such as ``1.28.x`` and ``1.x``.
    floatingtags: bool = False


@dataclass(frozen=True)
class ValidationConfig:
    #: ``validation.enabled``, else ``not validation.disabled``.
    enabled: bool = True
    #: ``validation.manifests.urls.allow``: regular expressions.
    allow: tuple[str, ...] = ()
    #: ``validation.manifests.urls.deny``: regular expressions.
    deny: tuple[str, ...] = ()
    packs: PackValidationConfig = field(default_factory=PackValidationConfig)


@dataclass(frozen=True)
class Config:
    version: str
    log: LogConfig
    storage: StorageConfig
    http: HTTPConfig
    auth: AuthConfig
    redis: RedisConfig | None = None
    catalog_maxentries: int = 1000
    tags_maxtags: int = 1000
    source: str = ""
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    proxy: ProxyConfig | None = None
    validation: ValidationConfig = field(default_factory=ValidationConfig)


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    #: The effective document after environment overrides.
    raw: dict[str, Any]
    warnings: tuple[str, ...]


def split_addr(addr: str) -> tuple[str, int]:
    """Split a tcp listen address (``:5000``, ``127.0.0.1:5000``, ``[::1]:5000``) into host and port.

    :raises ValueError: the address is malformed; the message says why.
    """
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise ValueError("unbalanced brackets")
        host, rest = addr[1:end], addr[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError("missing port; expected [HOST]:PORT")
        port = rest[1:]
    else:
        if "]" in addr:
            raise ValueError("unbalanced brackets")
        host, colon, port = addr.rpartition(":")
        if not colon:
            raise ValueError("missing port; expected HOST:PORT such as :5000")
        if ":" in host:
            raise ValueError("an IPv6 host must be in brackets, like [::1]:5000")
    if not (port.isascii() and port.isdigit()):
        raise ValueError(f"port {json.dumps(port)} is not a number")
    # Port 0 is allowed: as in Go, it asks the system for a free port.
    if int(port) > 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    return host, int(port)
