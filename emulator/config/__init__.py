"""The registry's configuration: distribution's YAML format plus ``REGISTRY_*`` environment overrides.

:func:`load` reads it once, at start, into frozen dataclasses; a mistake is a :class:`ConfigError` whose
text is one line naming the file and the dotted key. Nothing here knows about HTTP.

The concept is split by job: :mod:`.model` (the dataclasses), :mod:`.schema` (every key's declaration:
shape, type, default, bounds, and whether it is read, ignored or refused), :mod:`.env` (``REGISTRY_*``
overrides), :mod:`.reader` (typed reading, cross-key rules and their errors), :mod:`.effective` (the
settings in effect, as ``check-config`` prints them) and :mod:`.coverage` (the README's coverage table);
this module holds the entry points.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any
from typing import TypeAlias

import yaml

from . import env
from .effective import effective as effective
from .model import AuthConfig as AuthConfig
from .model import Config as Config
from .model import ConfigError as ConfigError
from .model import DebugConfig as DebugConfig
from .model import EndpointConfig as EndpointConfig
from .model import FileCheck as FileCheck
from .model import GiB as GiB
from .model import HealthConfig as HealthConfig
from .model import HtpasswdConfig as HtpasswdConfig
from .model import HTTPCheck as HTTPCheck
from .model import HTTPConfig as HTTPConfig
from .model import LetsEncryptConfig as LetsEncryptConfig
from .model import LoadedConfig as LoadedConfig
from .model import LogConfig as LogConfig
from .model import MiB as MiB
from .model import NotificationsConfig as NotificationsConfig
from .model import PackValidationConfig as PackValidationConfig
from .model import PrometheusConfig as PrometheusConfig
from .model import ProxyConfig as ProxyConfig
from .model import RedisConfig as RedisConfig
from .model import RedisPoolConfig as RedisPoolConfig
from .model import S3Config as S3Config
from .model import StorageConfig as StorageConfig
from .model import StorageDriverCheck as StorageDriverCheck
from .model import TCPCheck as TCPCheck
from .model import TLSConfig as TLSConfig
from .model import UploadPurgingConfig as UploadPurgingConfig
from .model import ValidationConfig as ValidationConfig
from .model import split_addr as split_addr
from .reader import Reader
from .reader import Section
from .reader import parse_document
from .reader import plain
from .reader import read_config
from .schema import NON_DRIVERS
from .schema import SCHEMA

DEV_DEFAULT_SOURCE = "<built-in default>"
#: Names a document given as a mapping or YAML text (not a file) in errors.
IN_PROCESS_SOURCE = "<in-process>"
_DEFAULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "defaults")


def load(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Read the configuration file and apply the environment's ``REGISTRY_*`` overrides.

    :param path: the file; ``None`` means ``$REGISTRY_CONFIGURATION_PATH``, else the built-in development
        default.
    :param environ: the environment; ``None`` means :data:`os.environ`.
    :raises ConfigError: the file is unreadable or the configuration is wrong.
    """
    if environ is None:
        environ = os.environ
    if path is None:
        path = environ.get(env.PATH_VARIABLE) or None
    if path is None:
        return parse(development_default(), source=DEV_DEFAULT_SOURCE, environ=environ)
    source = os.fspath(path)
    return parse(_read_file(source), source=source, environ=environ)


def _read_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise ConfigError(path, "<document>", f"cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, "<document>", f"not UTF-8 text: {exc.reason}") from None


#: A configuration given in-process: a mapping, YAML text, or the path of a YAML file.
Source: TypeAlias = Mapping[str, Any] | str | os.PathLike[str] | None


def source_name(source: Source, name: str = IN_PROCESS_SOURCE) -> str:
    """What errors call *source*: the file's path when it names a file, else *name*."""
    path = _file_path(source)
    return name if path is None else path


def _file_path(source: Source) -> str | None:
    if isinstance(source, os.PathLike):
        return os.fspath(source)
    # A one-line string that names something on disk is a path; anything else is YAML text. A
    # directory counts as a path, so that its error says it cannot be read rather than that it is no mapping.
    if isinstance(source, str) and "\n" not in source and os.path.exists(source):
        return source
    return None


def document(
    source: Source, *, base: Mapping[str, Any] | None = None, name: str = IN_PROCESS_SOURCE
) -> dict[str, Any]:
    """The configuration document of a mapping, YAML text or a YAML file's path (``None`` is empty),
    :func:`layered` over *base* when one is given.

    :param name: names a mapping or YAML text in errors; a file is named by its path.
    :raises ConfigError: the file cannot be read, or the document is not a YAML mapping.
    """
    if source is None:
        parsed: dict[str, Any] = {}
    elif isinstance(source, Mapping):
        parsed = parse_document(source, name)
    else:
        path = _file_path(source)
        if path is None:
            parsed = parse_document(os.fspath(source), name)
        else:
            parsed = parse_document(_read_file(path), path)
    return parsed if base is None else layered(base, parsed)


def parse(
    document: Mapping[str, Any] | str, *, source: str, environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Check a configuration document and build its :class:`Config`.

    :param document: YAML text, or an already parsed mapping (not modified).
    :param source: names the document in errors and warnings, usually the file's path.
    :param environ: ``REGISTRY_*`` overrides to apply; ``None`` applies none, so in-process use is hermetic.
    :raises ConfigError: the configuration is wrong.
    """
    raw = parse_document(document, source)
    for name in ("storage", "auth"):
        # distribution accepts `storage: inmemory`; as a mapping, the environment can reach inside it.
        if isinstance(raw.get(name), str):
            raw[name] = {raw[name]: {}} if raw[name] else {}
    applied = env.Applied()
    if environ is not None:
        try:
            applied = env.apply(raw, environ, SCHEMA)
        except env.EnvError as exc:
            # Name the key the variable aims at, and the variable itself in the problem.
            raise ConfigError(source, exc.key, f"{exc.problem} (from {exc.variable})") from None
    reader = Reader(source, applied.origins, applied.warnings)
    config = read_config(reader, Section(reader, "", raw))
    return LoadedConfig(config=config, raw=raw, warnings=tuple(reader.warnings))


def merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of *base* with *override* merged in: mappings merge, anything else replaces."""
    result: dict[str, Any] = plain(base)
    for key, value in override.items():
        if isinstance(value, Mapping):
            below = result.get(key)
            result[key] = merged(below if isinstance(below, Mapping) else {}, value)
        else:
            result[key] = plain(value)
    return result


def layered(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`merged`, except that a storage driver named in *override* replaces *base*'s driver
    (a plain merge would configure two drivers, which is an error). ``storage: NAME`` is accepted."""
    storage = override.get("storage")
    if isinstance(storage, str):
        override = {**override, "storage": {storage: {}}}
        storage = override["storage"]
    result = dict(base)
    if isinstance(storage, Mapping) and any(key not in NON_DRIVERS for key in storage):
        kept = {k: v for k, v in dict(base.get("storage") or {}).items() if k in NON_DRIVERS}
        result["storage"] = kept
    return merged(result, override)


def development_default() -> dict[str, Any]:
    """A fresh copy of the built-in development configuration (``defaults/development.yml``)."""
    with open(os.path.join(_DEFAULTS, "development.yml"), encoding="utf-8") as file:
        return parse_document(file.read(), DEV_DEFAULT_SOURCE)


def pack_registry_default_path() -> str:
    """The path of ``defaults/pack-registry.yml``, the pack registry image's own default configuration."""
    return os.path.join(_DEFAULTS, "pack-registry.yml")


_SECRET_KEYS = frozenset(
    ("password", "secret", "secretkey", "accesskey", "token", "sessiontoken", "authorization")
)


def redacted(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of *raw* with every secret replaced by ``"<redacted>"``."""
    result = _redact(raw)
    assert isinstance(result, dict)
    return result


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            key: "<redacted>"
            if isinstance(key, str) and key.lower() in _SECRET_KEYS and item not in (None, "")
            else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact(item) for item in value]
    return copy.deepcopy(value)


def dump(raw: Mapping[str, Any]) -> str:
    """YAML text of a raw document, in its own key order."""
    return yaml.safe_dump(plain(raw), sort_keys=False, default_flow_style=False, allow_unicode=True)
