"""Reading a configuration document into :class:`~emulator.config.model.Config`, key by key, with
one-line errors that name the key.

A :class:`Section`'s getters take each key's type, default, bounds and choices from its declaration in
:mod:`.schema`, and refuse a key that is not declared; this module assembles the dataclasses and holds the
rules that span keys (one storage driver, a certificate with its key, the redis cache needing redis...).
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import re
import typing as t
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

import yaml

from . import env
from .model import AuthConfig
from .model import Config
from .model import ConfigError
from .model import DebugConfig
from .model import EndpointConfig
from .model import FileCheck
from .model import HealthConfig
from .model import HtpasswdConfig
from .model import HTTPCheck
from .model import HTTPConfig
from .model import LetsEncryptConfig
from .model import LogConfig
from .model import NotificationsConfig
from .model import PackValidationConfig
from .model import PrometheusConfig
from .model import ProxyConfig
from .model import RedisConfig
from .model import RedisPoolConfig
from .model import S3Config
from .model import StorageConfig
from .model import StorageDriverCheck
from .model import TCPCheck
from .model import TLSConfig
from .model import UploadPurgingConfig
from .model import ValidationConfig
from .model import split_addr
from .schema import NON_DRIVERS
from .schema import REFUSED
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
    sections = env.mapping_values(document, "http")
    for notifications in env.mapping_values(document, "notifications"):
        for endpoints in env.mapping_values(notifications, "endpoints"):
            sections.extend(_items(endpoints))
    for health in env.mapping_values(document, "health"):
        for checks in env.mapping_values(health, "http"):
            sections.extend(_items(checks))
    for section in sections:
        for headers in env.mapping_values(section, "headers"):
            if isinstance(headers, yaml.MappingNode):
                for _, value in headers.value:
                    env.keep_text(value)


def _items(node: yaml.Node) -> list[yaml.Node]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


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
    """Shared state while reading: where errors point, the warnings so far, and which declared keys
    the reader asked for (:attr:`read`, by declaration path: a list's items are ``*``)."""

    def __init__(self, source: str, origins: Mapping[str, str], warnings: list[str]) -> None:
        self.source = source
        self.origins = origins
        self.warnings = warnings
        self.read: set[str] = set()

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


class UndeclaredKey(LookupError):
    """The reader asked for a key :data:`~.schema.SCHEMA` does not declare: a bug, not a user's mistake."""


class Section:
    """One mapping of the document and its declaration. The typed getters take each key's type, default,
    bounds and choices from the declaration, and raise :class:`ConfigError` on bad values."""

    def __init__(
        self, reader: Reader, path: str, data: Mapping[str, Any], node: Node = SCHEMA, pattern: str = ""
    ) -> None:
        self.reader = reader
        self.path = path
        self.data = data
        self.node = node
        #: The declaration path: :attr:`path` with ``*`` for each list index.
        self.pattern = pattern

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def declared(self, name: str) -> Node:
        """The declaration of key *name*; asking for it counts as reading it."""
        node = self.node.fields.get(name)
        if node is None:
            raise UndeclaredKey(self.key(name))
        self.reader.read.add(f"{self.pattern}.{name}" if self.pattern else name)
        return node

    def get(self, name: str) -> Any:
        self.declared(name)
        return self.data.get(name)

    def has(self, name: str) -> bool:
        return self.get(name) not in (None, "", {})

    def fail(self, name: str, problem: str, value: Any = _MISSING) -> ConfigError:
        return self.reader.error(self.key(name), problem, value)

    def section(self, name: str) -> Section:
        node = self.declared(name)
        value = self.data.get(name)
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise self.fail(name, "must be a mapping", value)
        pattern = f"{self.pattern}.{name}" if self.pattern else name
        return Section(self.reader, self.key(name), value, node, pattern)

    def sections(self, name: str) -> list[Section]:
        """The items of a list of mappings; ``key.<index>`` names each."""
        node = self.declared(name)
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(name, "must be a list", value)
        assert node.item is not None, name
        result = []
        pattern = f"{self.pattern}.{name}.*" if self.pattern else f"{name}.*"
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise self.fail(f"{name}.{index}", "must be a mapping", item)
            result.append(Section(self.reader, self.key(f"{name}.{index}"), item, node.item, pattern))
        return result

    def _leaf(self, name: str, kind: str) -> tuple[Node, Any]:
        node = self.declared(name)
        if node.kind != kind:
            raise UndeclaredKey(f"{self.key(name)} is declared {node.kind}, read as {kind}")
        return node, self.data.get(name)

    def string(self, name: str) -> str:
        """A string; absent (or, for some keys, empty), it is the declared default or ``""``."""
        node, value = self._leaf(name, "str")
        default = node.default or ""
        if value is None or (value == "" and node.zero_means_default):
            return str(default)
        # yaml.v2 decodes a number into a string field as its text, so `secret: 123` is fine.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise self.fail(name, "must be a string", value)
        if node.casefold:
            value = value.lower()
        if node.choices and value not in node.choices:
            raise self.fail(name, f"{node.choices_problem} {', '.join(node.choices)}", self.data.get(name))
        return value

    def optional(self, name: str) -> str | None:
        return self.string(name) or None

    def required(self, name: str) -> str:
        value = self.string(name)
        if not value:
            raise self.fail(name, "required")
        return value

    def url(self, name: str) -> str:
        """An absolute http(s) URL, or ``""`` when absent."""
        value = self.string(name)
        if value and not re.match(r"https?://[^/]", value):
            raise self.fail(name, "must be an absolute http or https URL", value)
        return value

    def boolean(self, name: str) -> bool:
        node, value = self._leaf(name, "bool")
        if value is None:
            return bool(node.default)
        if isinstance(value, bool):
            return value
        # distribution's s3 driver takes "true"/"false" strings too; accept them everywhere.
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise self.fail(name, "must be a boolean", value)

    def integer(self, name: str) -> int:
        number = self.maybe_integer(name)
        if number is None:
            raise UndeclaredKey(f"{self.key(name)} has no default; read it with maybe_integer")
        return number

    def maybe_integer(self, name: str) -> int | None:
        """An integer, or ``None`` when absent and the declaration has no default."""
        node, value = self._leaf(name, "int")
        if value is None:
            return t.cast("int | None", node.default)
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            number = int(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            raise self.fail(name, "must be an integer", value)
        self._check_bounds(name, node, number, value)
        return t.cast(int, node.default) if number <= 0 and node.zero_means_default else number

    def duration(self, name: str) -> float:
        """Seconds."""
        node, value = self._leaf(name, "duration")
        if value is None:
            return float(node.default)
        # A plain number is seconds. (distribution would read nanoseconds; nobody means that.)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            try:
                seconds = _parse_duration(value) if isinstance(value, str) else math.nan
            except ValueError:
                seconds = math.nan
            if math.isnan(seconds):
                raise self.fail(name, "must be a duration such as 300ms, 10s, 1m30s or 168h", value)
        self._check_bounds(name, node, seconds, value)
        return float(node.default) if seconds <= 0 and node.zero_means_default else seconds

    def _check_bounds(self, name: str, node: Node, number: float, value: Any) -> None:
        low, high = node.low, node.high
        if (low is not None and number < low) or (high is not None and number > high):
            if high is None:
                bounds = "not be negative" if low == 0 and node.kind == "duration" else f"be at least {low}"
            else:
                bounds = f"be between {low} and {high}"
            raise self.fail(name, f"must {bounds}", value)

    def strings(self, name: str) -> tuple[str, ...]:
        """A list of strings; a single string is a list of one."""
        node = self.declared(name)
        if node.kind not in ("list", "strlist"):
            raise UndeclaredKey(f"{self.key(name)} is declared {node.kind}, read as a list of strings")
        return self._strings(name, node, self.data.get(name))

    def _strings(self, name: str, node: Node, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not (isinstance(value, list) and all(isinstance(item, (str, int, float)) for item in value)):
            raise self.fail(name, "must be a list of strings", value)
        result = tuple(str(item) for item in value)
        for index, item in enumerate(result):
            if node.choices and item not in node.choices:
                raise self.fail(f"{name}.{index}", f"{node.choices_problem} {', '.join(node.choices)}", item)
        return result

    def headers(self, name: str) -> dict[str, tuple[str, ...]]:
        """Header names to their values."""
        node = self.declared(name)
        if node.kind != "map" or node.other is None or node.other.kind != "strlist":
            raise UndeclaredKey(f"{self.key(name)} is not declared as headers")
        value = self.data.get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(name, "must be a mapping of header names to lists of strings", value)
        section = Section(self.reader, self.key(name), value, node)
        return {
            str(header): section._strings(str(header), node.other, item) for header, item in value.items()
        }


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


def _refusals(value: Any, node: Node, path: str) -> Iterator[tuple[str, Node, Any]]:
    """The keys set in *value* that are declared refused: a section that is empty or null, a false
    boolean, and a value the emulator implements anyway are accepted."""
    if node.status == REFUSED:
        if _is_set(value) and value not in node.accepted:
            yield path, node, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            child = node.fields.get(key) if isinstance(key, str) else None
            if child is not None:
                yield from _refusals(item, child, f"{path}.{key}" if path else str(key))
    elif node.kind == "list" and node.item is not None and isinstance(value, list):
        for index, item in enumerate(value):
            yield from _refusals(item, node.item, f"{path}.{index}")


def _is_set(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(map(_is_set, value.values()))
    if isinstance(value, list):
        return any(map(_is_set, value))
    return not (value is None or value is False or value == "")


def refusal(reader: Reader, key: str, node: Node, value: Any) -> ConfigError:
    """The error for a key the emulator refuses: ``<key>: is set but <why> (remove ...)``."""
    what = "the section" if isinstance(value, (Mapping, list)) else "the key"
    return reader.error(key, f"is set but {node.reason} (remove {what})")


def read_config(reader: Reader, root: Section) -> Config:
    version = root.get("version")
    if version is None:
        raise reader.error("version", "missing (add version: 0.1)")
    # YAML reads `version: 0.1` as a float.
    if version not in ("0.1", 0.1):
        raise reader.error("version", f'unsupported version {json.dumps(str(version))}; must be "0.1"')
    for key, node, value in _refusals(root.data, SCHEMA, ""):
        raise refusal(reader, key, node, value)
    for key in _unknown_keys(root.data, SCHEMA, ""):
        reader.warn(key, f"unknown key {key} (ignored)")
    redis = _read_redis(root.section("redis"))
    storage = _read_storage(root, redis)
    return Config(
        version="0.1",
        log=_read_log(root),
        storage=storage,
        http=_read_http(root.section("http")),
        auth=_read_auth(root),
        redis=redis,
        catalog_maxentries=root.section("catalog").integer("maxentries"),
        tags_maxtags=root.section("tags").integer("maxtags"),
        source=reader.source,
        notifications=_read_notifications(root.section("notifications")),
        health=_read_health(root.section("health")),
        proxy=_read_proxy(root.section("proxy"), storage),
        validation=_read_validation(root.section("validation")),
    )


def _read_log(root: Section) -> LogConfig:
    log = root.section("log")
    # The deprecated top-level `loglevel` still counts when log.level is absent.
    level = log.string("level")
    if log.get("level") is None and root.get("loglevel") is not None:
        level = root.string("loglevel")
    return LogConfig(
        level=level,
        formatter=log.string("formatter"),
        fields=copy.deepcopy(dict(log.section("fields").data)),
        accesslog_disabled=log.section("accesslog").boolean("disabled"),
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
    driver = storage.node.fields[name]
    if driver.status == REFUSED:
        # Naming a driver selects it, even with no parameters.
        raise refusal(storage.reader, storage.key(name), driver, storage.data[name])
    params = storage.section(name)
    defaults = StorageConfig(driver=name)
    rootdirectory, maxthreads, s3 = defaults.rootdirectory, defaults.maxthreads, None
    if name == "filesystem":
        rootdirectory = params.string("rootdirectory")
        maxthreads = params.integer("maxthreads")
        if maxthreads < 25:
            # distribution raises it to its minimum rather than failing.
            key = params.key("maxthreads")
            params.reader.warn(key, f"{key}: {maxthreads} is below the minimum of 25; using 25")
            maxthreads = 25
    elif name in ("s3", "s3aws"):
        s3 = _read_s3(params)

    cache = storage.section("cache")
    kind = cache.key("blobdescriptor")
    blobdescriptor = cache.string("blobdescriptor")
    if not blobdescriptor:
        kind = cache.key("layerinfo")
        blobdescriptor = cache.string("layerinfo")
    if blobdescriptor == "redis" and redis is None:
        raise cache.reader.error(kind, "the redis cache needs a top-level redis section with an addr")
    if blobdescriptor not in ("", "inmemory", "redis"):
        cache.reader.warn(kind, f"{kind}: unknown cache type {_show(blobdescriptor)}, caching disabled")
        blobdescriptor = ""

    maintenance = storage.section("maintenance")
    purging = maintenance.section("uploadpurging")
    delete = storage.section("delete")
    if isinstance(delete.get("enabled"), str):
        # distribution enables deletes for the YAML boolean true only: a quoted "true" leaves them off.
        key = delete.key("enabled")
        delete.reader.warn(key, f"{key}: a string, not a boolean: deletes stay disabled, as in distribution")
        delete_enabled = False
    else:
        delete_enabled = delete.boolean("enabled")
    return StorageConfig(
        driver="s3" if name == "s3aws" else name,
        rootdirectory=rootdirectory,
        maxthreads=maxthreads,
        s3=s3,
        blobdescriptor=blobdescriptor or None,
        blobdescriptorsize=cache.integer("blobdescriptorsize"),
        delete_enabled=delete_enabled,
        redirect_disable=storage.section("redirect").boolean("disable"),
        uploadpurging=UploadPurgingConfig(
            enabled=purging.boolean("enabled"),
            age=purging.duration("age"),
            interval=purging.duration("interval"),
            dryrun=purging.boolean("dryrun"),
        ),
        readonly=maintenance.section("readonly").boolean("enabled"),
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
    return S3Config(
        region=s3.required("region"),
        bucket=s3.required("bucket"),
        rootdirectory=s3.string("rootdirectory"),
        encrypt=s3.boolean("encrypt"),
        secure=s3.boolean("secure"),
        accesskey=s3.optional("accesskey"),
        secretkey=s3.optional("secretkey"),
        host=s3.optional("host"),
        port=s3.maybe_integer("port"),
        regionendpoint=s3.optional("regionendpoint"),
        forcepathstyle=s3.boolean("forcepathstyle"),
        chunksize=s3.integer("chunksize"),
        skipverify=s3.boolean("skipverify"),
        storageclass=s3.string("storageclass"),
        v4auth=s3.boolean("v4auth"),
        keyid=s3.optional("keyid"),
        objectacl=s3.string("objectacl"),
        multipartcopychunksize=s3.integer("multipartcopychunksize"),
        multipartcopythresholdsize=s3.integer("multipartcopythresholdsize"),
        multipartcopymaxconcurrency=s3.integer("multipartcopymaxconcurrency"),
        useragent=s3.optional("useragent"),
    )


def _read_http(http: Section) -> HTTPConfig:
    net = http.string("net")
    addr = http.string("addr")
    if net == "tcp":
        _check_addr(http, "addr", addr)
    elif not addr:
        raise http.fail("addr", "required: the socket path when net is unix")
    prefix = http.string("prefix")
    if not (prefix.startswith("/") and prefix.endswith("/")):
        raise http.fail("prefix", "must start and end with /", prefix)
    host = http.optional("host")
    if host is not None and not re.match(r"https?://[^/]", host):
        raise http.fail("host", "must be an absolute URL such as https://registry.example.com", host)
    return HTTPConfig(
        addr=addr,
        net=net,
        prefix=prefix,
        host=host,
        relativeurls=http.boolean("relativeurls"),
        secret=http.string("secret"),
        draintimeout=http.duration("draintimeout"),
        maxconnections=http.integer("maxconnections"),
        headers=http.headers("headers"),
        tls=_read_tls(http.section("tls")),
        http2_disabled=http.section("http2").boolean("disabled"),
        debug=_read_debug(http.section("debug")),
    )


def _check_addr(section: Section, name: str, addr: str) -> None:
    try:
        split_addr(addr)
    except ValueError as exc:
        raise section.fail(name, str(exc), addr) from None


def _read_debug(debug: Section) -> DebugConfig:
    addr = debug.string("addr")
    if addr:
        _check_addr(debug, "addr", addr)
    prometheus = debug.section("prometheus")
    path = prometheus.string("path")
    if not path.startswith("/"):
        raise prometheus.fail("path", "must start with /", path)
    return DebugConfig(
        addr=addr, prometheus=PrometheusConfig(enabled=prometheus.boolean("enabled"), path=path)
    )


def _read_tls(tls: Section) -> TLSConfig | None:
    minimumtls = tls.string("minimumtls")
    certificate = tls.optional("certificate")
    key = tls.optional("key")
    if certificate and not key:
        raise tls.fail("key", "required when http.tls.certificate is set")
    if key and not certificate:
        raise tls.fail("certificate", "required when http.tls.key is set")
    encrypt = tls.section("letsencrypt")
    letsencrypt = None
    # Any key set, even an unknown one, means Let's Encrypt was meant: then cachefile is required.
    if any(value not in (None, "", {}) for value in encrypt.data.values()):
        letsencrypt = LetsEncryptConfig(
            cachefile=encrypt.required("cachefile"),
            email=encrypt.string("email"),
            hosts=encrypt.strings("hosts"),
            directoryurl=encrypt.string("directoryurl"),
            http01addr=encrypt.string("http01addr"),
        )
        _check_addr(encrypt, "http01addr", letsencrypt.http01addr)
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
    declared = auth.node.fields.get(kinds[0])
    if declared is not None and declared.status == REFUSED:
        # Naming an auth type selects it, even with no parameters.
        raise refusal(auth.reader, auth.key(kinds[0]), declared, auth.data[kinds[0]])
    if kinds[0] != "htpasswd":
        raise auth.reader.error(
            "auth", f"auth type {_show(kinds[0])} is not supported by this emulator (supported: htpasswd)"
        )
    htpasswd = auth.section("htpasswd")
    return AuthConfig(
        htpasswd=HtpasswdConfig(realm=htpasswd.required("realm"), path=htpasswd.required("path"))
    )


def _read_redis(redis: Section) -> RedisConfig | None:
    addr = redis.string("addr")
    pool = redis.section("pool")
    config = RedisConfig(
        addr=addr,
        password=redis.optional("password"),
        db=redis.integer("db"),
        dialtimeout=redis.duration("dialtimeout"),
        readtimeout=redis.duration("readtimeout"),
        writetimeout=redis.duration("writetimeout"),
        pool=RedisPoolConfig(
            maxidle=pool.integer("maxidle"),
            maxactive=pool.integer("maxactive"),
            idletimeout=pool.duration("idletimeout"),
        ),
    )
    # As in distribution, redis is off unless it has an address.
    return config if addr else None


def _read_notifications(notifications: Section) -> NotificationsConfig:
    return NotificationsConfig(
        endpoints=tuple(_read_endpoint(item) for item in notifications.sections("endpoints")),
        includereferences=notifications.section("events").boolean("includereferences"),
    )


def _read_endpoint(endpoint: Section) -> EndpointConfig:
    disabled = endpoint.boolean("disabled")
    name = endpoint.string("name")
    url = endpoint.url("url")
    if not disabled:
        # distribution checks neither; an enabled endpoint without them could never deliver.
        name, url = endpoint.required("name"), url or endpoint.required("url")
    ignore = endpoint.section("ignore")
    # The two lists are one set, as in distribution.
    mediatypes = endpoint.strings("ignoredmediatypes") + ignore.strings("mediatypes")
    return EndpointConfig(
        name=name,
        url=url,
        headers=endpoint.headers("headers"),
        timeout=endpoint.duration("timeout"),
        threshold=endpoint.integer("threshold"),
        backoff=endpoint.duration("backoff"),
        ignoredmediatypes=tuple(dict.fromkeys(mediatypes)),
        ignoredactions=tuple(dict.fromkeys(ignore.strings("actions"))),
        disabled=disabled,
        queuesize=endpoint.integer("queuesize"),
    )


def _read_health(health: Section) -> HealthConfig:
    driver = health.section("storagedriver")
    files = [_read_file_check(check) for check in health.sections("file")]
    https = [_read_http_check(check) for check in health.sections("http")]
    tcps = [_read_tcp_check(check) for check in health.sections("tcp")]
    # distribution names a check by its file, URI or address, and panics on a second one of a name.
    first: dict[str, str] = {}
    for kind, name in (("file", "file"), ("http", "uri"), ("tcp", "addr")):
        for check in health.sections(kind):
            value = str(check.get(name))
            if value in first:
                problem = f"a second health check named {_show(value)} (the first is {first[value]})"
                raise check.fail(name, problem)
            first[value] = check.key(name)
    return HealthConfig(
        storagedriver=StorageDriverCheck(
            enabled=driver.boolean("enabled"),
            interval=driver.duration("interval"),
            threshold=driver.integer("threshold"),
        ),
        file=tuple(files),
        http=tuple(https),
        tcp=tuple(tcps),
    )


def _read_file_check(check: Section) -> FileCheck:
    if check.data.get("threshold") is not None:
        key = check.key("threshold")
        check.reader.warn(key, f"{key}: ignored, as in distribution: a file check fails at once")
    return FileCheck(file=check.required("file"), interval=check.duration("interval"))


def _read_http_check(check: Section) -> HTTPCheck:
    return HTTPCheck(
        uri=check.url("uri") or check.required("uri"),
        headers=check.headers("headers"),
        statuscode=check.integer("statuscode"),
        timeout=check.duration("timeout"),
        interval=check.duration("interval"),
        threshold=check.integer("threshold"),
    )


def _read_tcp_check(check: Section) -> TCPCheck:
    addr = check.required("addr")
    _check_addr(check, "addr", addr)
    return TCPCheck(
        addr=addr,
        timeout=check.duration("timeout"),
        interval=check.duration("interval"),
        threshold=check.integer("threshold"),
    )


def _read_proxy(proxy: Section, storage: StorageConfig) -> ProxyConfig | None:
    remoteurl = proxy.url("remoteurl")
    if not remoteurl:
        # As in distribution, an empty remoteurl means the registry is no proxy.
        return None
    ttl = proxy.duration("ttl")
    if ttl and not storage.delete_enabled:
        key = proxy.key("ttl")
        proxy.reader.warn(
            key,
            f"{key}: cached content does not expire while storage.delete.enabled is false,"
            " as in distribution",
        )
    return ProxyConfig(
        remoteurl=remoteurl,
        username=proxy.optional("username"),
        password=proxy.optional("password"),
        ttl=ttl or None,
    )


def _read_validation(validation: Section) -> ValidationConfig:
    # distribution reads `enabled: false` as unset and then takes !disabled, so only `disabled: true`
    # turns validation off.
    written = validation.boolean("enabled")
    enabled = written or not validation.boolean("disabled")
    if validation.get("enabled") is not None and enabled and not written:
        key = validation.key("enabled")
        validation.reader.warn(
            key, f"{key}: false leaves validation on, as in distribution; set validation.disabled: true"
        )
    urls = validation.section("manifests").section("urls")
    packs = validation.section("packs")
    return ValidationConfig(
        enabled=enabled,
        allow=_patterns(urls, "allow"),
        deny=_patterns(urls, "deny"),
        packs=PackValidationConfig(
            enabled=packs.boolean("enabled"), floatingtags=packs.boolean("floatingtags")
        ),
    )


def _patterns(urls: Section, name: str) -> tuple[str, ...]:
    patterns = urls.strings(name)
    for index, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise urls.fail(f"{name}.{index}", f"not a regular expression: {exc}", pattern) from None
    return patterns


def plain(value: Any) -> Any:
    # Fresh dicts and lists all the way down, so callers can change them; safe_dump also refuses
    # tuples and Mapping subclasses.
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value
