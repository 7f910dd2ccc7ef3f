"""The settings in effect, written back as a configuration document in distribution's layout.

``check-config`` prints this: every default the file leaves out is shown (``serve`` with no ``http.addr``
binds ``:5000``), and what the emulator ignores is not. The document reads back into the same
:class:`~emulator.config.model.Config`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .model import AuthConfig
from .model import Config
from .model import HTTPConfig
from .model import LogConfig
from .model import RedisConfig
from .model import StorageConfig
from .model import TLSConfig

_NANOSECONDS = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9}


def effective(config: Config) -> dict[str, Any]:
    """*config* as a document; secrets are included (pass it to ``redacted`` before showing it)."""
    document: dict[str, Any] = {
        "version": config.version,
        "log": _log(config.log),
        "storage": _storage(config.storage),
        "http": _http(config.http),
        "auth": _auth(config.auth),
    }
    if config.redis is not None:
        document["redis"] = _redis(config.redis)
    document["catalog"] = {"maxentries": config.catalog_maxentries}
    document["tags"] = {"maxtags": config.tags_maxtags}
    return document


def go_duration(seconds: float) -> str:
    """*seconds* as a Go duration the configuration reader takes back: ``168h``, ``1m30s``, ``250ms``."""
    if seconds == 0:
        return "0s"
    rest = round(abs(seconds) * 10**9)
    text = "-" if seconds < 0 else ""
    for unit, size in _NANOSECONDS.items():
        count, rest = divmod(rest, size)
        if count:
            text += f"{count}{unit}"
    if rest:
        text += f"{rest // 10**6}ms" if rest % 10**6 == 0 else f"{rest}ns"
    return text


def _log(log: LogConfig) -> dict[str, Any]:
    return {
        "level": log.level,
        "formatter": log.formatter,
        "fields": dict(log.fields),
        "accesslog": {"disabled": log.accesslog_disabled},
    }


def _storage(storage: StorageConfig) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if storage.driver == "filesystem":
        params = {"rootdirectory": storage.rootdirectory, "maxthreads": storage.maxthreads}
    elif storage.s3 is not None:
        params = {k: v for k, v in dataclasses.asdict(storage.s3).items() if v is not None}
    cache: dict[str, Any] = {}
    if storage.blobdescriptor is not None:
        cache = {"blobdescriptor": storage.blobdescriptor, "blobdescriptorsize": storage.blobdescriptorsize}
    purging = storage.uploadpurging
    return {
        storage.driver: params,
        "cache": cache,
        "delete": {"enabled": storage.delete_enabled},
        "redirect": {"disable": storage.redirect_disable},
        "maintenance": {
            "uploadpurging": {
                "enabled": purging.enabled,
                "age": go_duration(purging.age),
                "interval": go_duration(purging.interval),
                "dryrun": purging.dryrun,
            },
            "readonly": {"enabled": storage.readonly},
        },
    }


def _http(http: HTTPConfig) -> dict[str, Any]:
    document: dict[str, Any] = {"addr": http.addr, "net": http.net, "prefix": http.prefix}
    if http.host is not None:
        document["host"] = http.host
    document.update(
        {
            "relativeurls": http.relativeurls,
            "secret": http.secret,
            "draintimeout": go_duration(http.draintimeout),
            "maxconnections": http.maxconnections,
            "headers": {name: list(values) for name, values in http.headers.items()},
        }
    )
    if http.tls is not None:
        document["tls"] = _tls(http.tls)
    document["http2"] = {"disabled": http.http2_disabled}
    return document


def _tls(tls: TLSConfig) -> dict[str, Any]:
    document: dict[str, Any] = {}
    if tls.certificate is not None:
        document.update({"certificate": tls.certificate, "key": tls.key})
    document.update(
        {
            "clientcas": list(tls.clientcas),
            "minimumtls": tls.minimumtls,
            "ciphersuites": list(tls.ciphersuites),
        }
    )
    if tls.letsencrypt is not None:
        encrypt = tls.letsencrypt
        document["letsencrypt"] = {
            "cachefile": encrypt.cachefile,
            "email": encrypt.email,
            "hosts": list(encrypt.hosts),
            "directoryurl": encrypt.directoryurl,
        }
    return document


def _auth(auth: AuthConfig) -> dict[str, Any]:
    # An empty section: no access control, every request is served without credentials.
    if auth.htpasswd is None:
        return {}
    return {"htpasswd": {"realm": auth.htpasswd.realm, "path": auth.htpasswd.path}}


def _redis(redis: RedisConfig) -> dict[str, Any]:
    document: dict[str, Any] = {"addr": redis.addr}
    if redis.password is not None:
        document["password"] = redis.password
    document.update(
        {
            "db": redis.db,
            "dialtimeout": go_duration(redis.dialtimeout),
            "readtimeout": go_duration(redis.readtimeout),
            "writetimeout": go_duration(redis.writetimeout),
            "pool": {
                "maxidle": redis.pool.maxidle,
                "maxactive": redis.pool.maxactive,
                "idletimeout": go_duration(redis.pool.idletimeout),
            },
        }
    )
    return document
