"""Reading a configuration document into :class:`~emulator.config.model.Config`, key by key, with
one-line errors that name the key."""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

import yaml

from . import env
from .model import AuthConfig
from .model import Config
from .model import ConfigError
from .model import GiB
from .model import HtpasswdConfig
from .model import HTTPConfig
from .model import LetsEncryptConfig
from .model import LogConfig
from .model import MiB
from .model import RedisConfig
from .model import RedisPoolConfig
from .model import S3Config
from .model import StorageConfig
from .model import TLSConfig
from .model import UploadPurgingConfig
from .model import split_addr
from .schema import NON_DRIVERS
from .schema import SCHEMA
from .schema import STORAGE_DRIVERS
from .schema import Node

_MISSING: Any = object()
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_document(document: Mapping[str, Any] | str, source: str) -> dict[str, Any]:
    if isinstance(document, str):
        try:
            parsed = env.load_yaml(document, _keep_header_text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<document>"
            problem = " ".join((exc.problem or exc.context or "syntax error").split())
            raise ConfigError(source, where, f"invalid YAML: {problem}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(source, "<document>", f"invalid YAML: {env.yaml_problem(exc)}") from None
    else:
        parsed = document
    if parsed is None:
        # An empty file reads as an empty mapping, so the error is the missing version, as in distribution.
        parsed = {}
    if not isinstance(parsed, Mapping):
        raise ConfigError(source, "<document>", f"the top level must be a mapping (got {_show(parsed)})")
    document = plain(parsed)
    assert isinstance(document, dict)
    return document


def _keep_header_text(document: yaml.Node) -> None:
    """Header values are sent as written: ``X-Custom: [yes]`` sends ``yes``, not ``True``."""
    for http in env.mapping_values(document, "http"):
        for headers in env.mapping_values(http, "headers"):
            if isinstance(headers, yaml.MappingNode):
                for _, value in headers.value:
                    env.keep_text(value)


def _show(value: Any) -> str:
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 80 else text[:76] + '..."'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return str(value)


def _parse_duration(text: str) -> float:
    """Seconds in a Go duration such as ``300ms``, ``1m30s`` or ``168h``."""
    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    body = body.lstrip("+-")
    if body == "0":
        return 0.0
    if not body or _DURATION_PART.sub("", body):
        raise ValueError(text)
    return sign * sum(float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(body))


class Reader:
    """Shared state while reading: where errors point, and the warnings so far."""

    def __init__(self, source: str, origins: Mapping[str, str], warnings: list[str]) -> None:
        self.source = source
        self.origins = origins
        self.warnings = warnings

    def origin(self, key: str) -> str | None:
        """The environment variable that set *key* or a section above it."""
        parts = key.split(".")
        for length in range(len(parts), 0, -1):
            variable = self.origins.get(".".join(parts[:length]))
            if variable is not None:
                return variable
        return None

    def error(self, key: str, problem: str, value: Any = _MISSING) -> ConfigError:
        variable = self.origin(key)
        if value is not _MISSING:
            problem += f" (got {_show(value)}" + (f" from {variable})" if variable else ")")
        elif variable:
            problem += f" (from {variable})"
        return ConfigError(self.source, key, problem)

    def warn(self, key: str, problem: str) -> None:
        variable = self.origin(key)
        self.warnings.append(f"{self.source}: {problem}" + (f" (from {variable})" if variable else ""))


class Section:
    """One mapping of the document, with typed getters that raise :class:`ConfigError` on bad values."""

    def __init__(self, reader: Reader, path: str, data: Mapping[str, Any]) -> None:
        self.reader = reader
        self.path = path
        self.data = data

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str) -> Any:
        return self.data.get(name)

    def has(self, name: str) -> bool:
        return self.data.get(name) not in (None, "", {})

    def fail(self, name: str, problem: str, value: Any = _MISSING) -> ConfigError:
        return self.reader.error(self.key(name), problem, value)

    def section(self, name: str) -> Section:
        value = self.get(name)
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise self.fail(name, "must be a mapping", value)
        return Section(self.reader, self.key(name), value)

    def string(self, name: str, default: str) -> str:
        value = self.get(name)
        if value is None:
            return default
        # yaml.v2 decodes a number into a string field as its text, so `secret: 123` is fine.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise self.fail(name, "must be a string", value)
        return value

    def optional(self, name: str) -> str | None:
        return self.string(name, "") or None

    def required(self, name: str) -> str:
        value = self.string(name, "")
        if not value:
            raise self.fail(name, "required")
        return value

    def choice(
        self, name: str, default: str, choices: tuple[str, ...], problem: str = "must be one of"
    ) -> str:
        value = self.string(name, default)
        if value not in choices:
            raise self.fail(name, f"{problem} {', '.join(choices)}", value)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        # distribution's s3 driver takes "true"/"false" strings too; accept them everywhere.
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise self.fail(name, "must be a boolean", value)

    def integer(self, name: str, default: int, low: int | None = None, high: int | None = None) -> int:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            number = int(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            raise self.fail(name, "must be an integer", value)
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            raise self.fail(name, f"must be {bounds}", value)
        return number

    def duration(self, name: str, default: float) -> float:
        value = self.get(name)
        if value is None:
            return default
        # A plain number is seconds. (distribution would read nanoseconds; nobody means that.)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return _parse_duration(value)
            except ValueError:
                pass
        raise self.fail(name, "must be a duration such as 300ms, 10s, 1m30s or 168h", value)

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.get(name)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and all(isinstance(item, (str, int, float)) for item in value):
            return tuple(str(item) for item in value)
        raise self.fail(name, "must be a list of strings", value)


def _unknown_keys(value: Any, node: Node, path: str) -> Iterator[str]:
    if node.kind == "map" and isinstance(value, Mapping):
        for key, item in value.items():
            dotted = f"{path}.{key}" if path else str(key)
            shape = node.fields.get(key) if isinstance(key, str) else None
            shape = shape or node.other
            if shape is None:
                yield dotted
            else:
                yield from _unknown_keys(item, shape, dotted)
    elif node.kind == "list" and node.item is not None and isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unknown_keys(item, node.item, f"{path}.{index}")


def read_config(reader: Reader, root: Section) -> Config:
    version = root.get("version")
    if version is None:
        raise reader.error("version", "missing (add version: 0.1)")
    # YAML reads `version: 0.1` as a float.
    if version not in ("0.1", 0.1):
        raise reader.error("version", f'unsupported version {json.dumps(str(version))}; must be "0.1"')
    for key in _unknown_keys(root.data, SCHEMA, ""):
        reader.warn(key, f"unknown key {key} (ignored)")
    redis = _read_redis(root.section("redis"))
    catalog = root.section("catalog").integer("maxentries", 0, low=0) or 1000
    tags = root.section("tags").integer("maxtags", 0, low=0) or 1000
    return Config(
        version="0.1",
        log=_read_log(root),
        storage=_read_storage(root, redis),
        http=_read_http(root.section("http")),
        auth=_read_auth(root),
        redis=redis,
        catalog_maxentries=catalog,
        tags_maxtags=tags,
        source=reader.source,
    )


def _read_log(root: Section) -> LogConfig:
    log = root.section("log")
    # The deprecated top-level `loglevel` still counts when log.level is absent.
    where, name = (
        (root, "loglevel")
        if log.get("level") is None and root.get("loglevel") is not None
        else (log, "level")
    )
    level = where.string(name, "info").lower()
    if level not in ("error", "warn", "info", "debug"):
        raise where.fail(name, "must be one of error, warn, info, debug", where.get(name))
    return LogConfig(
        level=level,
        formatter=log.choice("formatter", "text", ("text", "json", "logstash")),
        fields=copy.deepcopy(dict(log.section("fields").data)),
        accesslog_disabled=log.section("accesslog").boolean("disabled", False),
    )


def _read_storage(root: Section, redis: RedisConfig | None) -> StorageConfig:
    value = root.get("storage")
    if value is not None and not isinstance(value, Mapping):
        raise root.fail("storage", "must be a mapping or a driver name", value)
    storage = root.section("storage")
    drivers = [key for key in storage.data if key not in NON_DRIVERS]
    _refuse_unknown_storage_keys(storage, drivers)
    if not drivers:
        raise storage.reader.error(
            "storage", "no storage driver configured; set one of inmemory, filesystem, s3"
        )
    if len(drivers) > 1:
        reader = storage.reader
        names = ", ".join(str(name) for name in drivers[:-1]) + f" and {drivers[-1]}"
        via = [
            f"{name} from {variable}" for name in drivers if (variable := reader.origin(f"storage.{name}"))
        ]
        problem = f"exactly one storage driver allowed, found {names}" + (
            f" ({', '.join(via)})" if via else ""
        )
        raise ConfigError(reader.source, "storage", problem)
    name = str(drivers[0])
    if name not in ("inmemory", "filesystem", "s3", "s3aws"):
        raise storage.reader.error(
            "storage",
            f"storage driver {_show(name)} is not supported by this emulator"
            " (supported: inmemory, filesystem, s3)",
        )
    params = storage.section(name)
    rootdirectory = "/var/lib/registry"
    maxthreads = 100
    s3 = None
    if name == "filesystem":
        rootdirectory = params.string("rootdirectory", rootdirectory)
        maxthreads = params.integer("maxthreads", maxthreads)
        if maxthreads < 25:
            # distribution raises it to its minimum rather than failing.
            key = params.key("maxthreads")
            params.reader.warn(key, f"{key}: {maxthreads} is below the minimum of 25; using 25")
            maxthreads = 25
    elif name in ("s3", "s3aws"):
        s3 = _read_s3(params)

    cache = storage.section("cache")
    kind = cache.key("blobdescriptor")
    blobdescriptor = cache.string("blobdescriptor", "")
    if not blobdescriptor:
        kind = cache.key("layerinfo")
        blobdescriptor = cache.string("layerinfo", "")
    if blobdescriptor == "redis" and redis is None:
        raise cache.reader.error(kind, "the redis cache needs a top-level redis section with an addr")
    if blobdescriptor not in ("", "inmemory", "redis"):
        cache.reader.warn(kind, f"{kind}: unknown cache type {_show(blobdescriptor)}, caching disabled")
        blobdescriptor = ""

    maintenance = storage.section("maintenance")
    purging = maintenance.section("uploadpurging")
    defaults = UploadPurgingConfig()
    delete = storage.section("delete")
    if isinstance(delete.get("enabled"), str):
        # distribution enables deletes for the YAML boolean true only: a quoted "true" leaves them off.
        key = delete.key("enabled")
        delete.reader.warn(key, f"{key}: a string, not a boolean: deletes stay disabled, as in distribution")
        delete_enabled = False
    else:
        delete_enabled = delete.boolean("enabled", False)
    return StorageConfig(
        driver="s3" if name == "s3aws" else name,
        rootdirectory=rootdirectory,
        maxthreads=maxthreads,
        s3=s3,
        blobdescriptor=blobdescriptor or None,
        blobdescriptorsize=cache.integer("blobdescriptorsize", 10000, low=0),
        delete_enabled=delete_enabled,
        redirect_disable=storage.section("redirect").boolean("disable", False),
        uploadpurging=UploadPurgingConfig(
            enabled=purging.boolean("enabled", defaults.enabled),
            age=purging.duration("age", defaults.age),
            interval=purging.duration("interval", defaults.interval),
            dryrun=purging.boolean("dryrun", defaults.dryrun),
        ),
        readonly=maintenance.section("readonly").boolean("enabled", False),
    )


def _refuse_unknown_storage_keys(storage: Section, drivers: list[Any]) -> None:
    """A storage key that names no driver distribution knows is a typo (``delte``) or an environment
    variable that missed (``REGISTRY_STORAGE_DELTE_ENABLED``): name it, rather than report it as a
    second driver."""
    reader = storage.reader
    for name in drivers:
        if str(name) in STORAGE_DRIVERS:
            continue
        key = storage.key(str(name))
        problem = f"unknown key {key}"
        close = difflib.get_close_matches(str(name), [*NON_DRIVERS, *STORAGE_DRIVERS], n=1)
        if close:
            problem += f" (did you mean {storage.key(close[0])}?)"
        variable = reader.origin(key)
        raise ConfigError(reader.source, storage.path, problem + (f" (from {variable})" if variable else ""))


def _read_s3(s3: Section) -> S3Config:
    port = s3.integer("port", 0, low=1, high=65535) if s3.get("port") is not None else None
    return S3Config(
        region=s3.required("region"),
        bucket=s3.required("bucket"),
        rootdirectory=s3.string("rootdirectory", ""),
        encrypt=s3.boolean("encrypt", False),
        secure=s3.boolean("secure", True),
        accesskey=s3.optional("accesskey"),
        secretkey=s3.optional("secretkey"),
        host=s3.optional("host"),
        port=port,
        regionendpoint=s3.optional("regionendpoint"),
        forcepathstyle=s3.boolean("forcepathstyle", False),
        chunksize=s3.integer("chunksize", 10 * MiB, low=5 * MiB, high=5 * GiB),
        skipverify=s3.boolean("skipverify", False),
        storageclass=s3.string("storageclass", "STANDARD"),
        v4auth=s3.boolean("v4auth", True),
        keyid=s3.optional("keyid"),
        objectacl=s3.string("objectacl", "private"),
        multipartcopychunksize=s3.integer("multipartcopychunksize", 32 * MiB, low=5 * MiB, high=5 * GiB),
        multipartcopythresholdsize=s3.integer("multipartcopythresholdsize", 32 * MiB, low=0, high=5 * GiB),
        multipartcopymaxconcurrency=s3.integer("multipartcopymaxconcurrency", 100, low=1),
        useragent=s3.optional("useragent"),
    )


def _read_http(http: Section) -> HTTPConfig:
    net = http.choice("net", "tcp", ("tcp", "unix"))
    addr = http.string("addr", ":5000")
    if net == "tcp":
        try:
            split_addr(addr)
        except ValueError as exc:
            raise http.fail("addr", str(exc), addr) from None
    elif not addr:
        raise http.fail("addr", "required: the socket path when net is unix")
    prefix = http.string("prefix", "") or "/"
    if not (prefix.startswith("/") and prefix.endswith("/")):
        raise http.fail("prefix", "must start and end with /", prefix)
    host = http.optional("host")
    if host is not None and not re.match(r"https?://[^/]", host):
        raise http.fail("host", "must be an absolute URL such as https://registry.example.com", host)

    headers: dict[str, tuple[str, ...]] = {}
    value = http.get("headers")
    if value is not None and not isinstance(value, Mapping):
        raise http.fail("headers", "must be a mapping of header names to lists of strings", value)
    section = http.section("headers")
    for name in section.data:
        headers[str(name)] = section.strings(name)
    return HTTPConfig(
        addr=addr,
        net=net,
        prefix=prefix,
        host=host,
        relativeurls=http.boolean("relativeurls", False),
        secret=http.string("secret", ""),
        draintimeout=http.duration("draintimeout", 0.0),
        maxconnections=http.integer("maxconnections", 1000, low=1),
        headers=headers,
        tls=_read_tls(http.section("tls")),
        http2_disabled=http.section("http2").boolean("disabled", False),
    )


def _read_tls(tls: Section) -> TLSConfig | None:
    minimumtls = tls.choice(
        "minimumtls",
        "tls1.2",
        ("tls1.0", "tls1.1", "tls1.2", "tls1.3"),
        "unknown minimum TLS level; must be one of",
    )
    certificate = tls.optional("certificate")
    key = tls.optional("key")
    if certificate and not key:
        raise tls.fail("key", "required when http.tls.certificate is set")
    if key and not certificate:
        raise tls.fail("certificate", "required when http.tls.key is set")
    encrypt = tls.section("letsencrypt")
    letsencrypt = None
    if any(encrypt.has(name) for name in encrypt.data):
        letsencrypt = LetsEncryptConfig(
            cachefile=encrypt.required("cachefile"),
            email=encrypt.string("email", ""),
            hosts=encrypt.strings("hosts"),
            directoryurl=encrypt.string("directoryurl", "") or LetsEncryptConfig.directoryurl,
        )
    if certificate and letsencrypt:
        raise tls.reader.error(tls.path, "cannot specify both certificate and Let's Encrypt")
    config = TLSConfig(
        certificate=certificate,
        key=key,
        clientcas=tls.strings("clientcas"),
        minimumtls=minimumtls,
        ciphersuites=tls.strings("ciphersuites"),
        letsencrypt=letsencrypt,
    )
    # Without a certificate there is no TLS, whatever else the section says.
    return config if certificate or letsencrypt else None


def _read_auth(root: Section) -> AuthConfig:
    value = root.get("auth")
    if value is not None and not isinstance(value, Mapping):
        raise root.fail("auth", "must be a mapping or an auth type", value)
    auth = root.section("auth")
    kinds = [str(kind) for kind in auth.data]
    if not kinds or (len(kinds) == 1 and kinds[0].lower() == "none"):
        return AuthConfig()
    if len(kinds) > 1:
        names = ", ".join(kinds[:-1]) + f" and {kinds[-1]}"
        raise auth.reader.error("auth", f"exactly one auth type allowed, found {names}")
    if kinds[0] != "htpasswd":
        raise auth.reader.error(
            "auth", f"auth type {_show(kinds[0])} is not supported by this emulator (supported: htpasswd)"
        )
    htpasswd = auth.section("htpasswd")
    return AuthConfig(
        htpasswd=HtpasswdConfig(realm=htpasswd.required("realm"), path=htpasswd.required("path"))
    )


def _read_redis(redis: Section) -> RedisConfig | None:
    addr = redis.string("addr", "")
    pool = redis.section("pool")
    defaults = RedisPoolConfig()
    config = RedisConfig(
        addr=addr,
        password=redis.optional("password"),
        db=redis.integer("db", 0, low=0),
        dialtimeout=redis.duration("dialtimeout", 0.0),
        readtimeout=redis.duration("readtimeout", 0.0),
        writetimeout=redis.duration("writetimeout", 0.0),
        pool=RedisPoolConfig(
            maxidle=pool.integer("maxidle", defaults.maxidle, low=0),
            maxactive=pool.integer("maxactive", defaults.maxactive, low=0),
            idletimeout=pool.duration("idletimeout", defaults.idletimeout),
        ),
    )
    # As in distribution, redis is off unless it has an address.
    return config if addr else None


def plain(value: Any) -> Any:
    # Fresh dicts and lists all the way down, so callers can change them; safe_dump also refuses
    # tuples and Mapping subclasses.
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value
