"""The optional dependencies ("extras") a configuration needs, found before anything imports them.

A plain ``pip install`` leaves out boto3, redis and the ACME client. A configuration that needs one of
them must stop with one line naming the extra to install, not with an ``ImportError`` traceback from
deep inside the start-up: :func:`missing_extra` gives that line (the CLI prints it for ``serve`` and
``check-config``) and :func:`require` raises it for code that builds an app itself.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import typing as t

from .config import ConfigError

if t.TYPE_CHECKING:
    from .config import Config

DISTRIBUTION = "pax-registry-harness"


@dataclasses.dataclass(frozen=True)
class Extra:
    """An extra of the distribution and the top-level modules it installs."""

    name: str
    modules: tuple[str, ...]

    def installed(self) -> bool:
        # find_spec looks for the module without importing it: boto3 alone takes a quarter second.
        return all(importlib.util.find_spec(module) is not None for module in self.modules)

    def needs(self) -> str:
        """``needs the boto3 package: pip install 'pax-registry-harness[s3]'``."""
        names = " and ".join(self.modules)
        noun = "package" if len(self.modules) == 1 else "packages"
        return f"needs the {names} {noun}: pip install '{DISTRIBUTION}[{self.name}]'"


S3 = Extra("s3", ("boto3",))
REDIS = Extra("redis", ("redis",))
ACME = Extra("acme", ("acme", "josepy"))


class MissingExtraError(ConfigError):
    """A configuration names a feature whose extra is not installed."""


def needed(config: Config) -> list[tuple[str, Extra]]:
    """The extras ``config`` uses, each with the key that asks for it, in the order a reader meets them."""
    found: list[tuple[str, Extra]] = []
    if config.storage.driver == "s3":
        found.append(("storage.s3", S3))
    # Without a redis section the cache is off (as make_app builds it), so nothing imports redis.
    if config.storage.blobdescriptor == "redis" and config.redis is not None:
        found.append(("storage.cache.blobdescriptor", REDIS))
    if config.http.tls is not None and config.http.tls.letsencrypt is not None:
        found.append(("http.tls.letsencrypt", ACME))
    return found


def _first_missing(config: Config) -> MissingExtraError | None:
    for key, extra in needed(config):
        if not extra.installed():
            return MissingExtraError(config.source, key, extra.needs())
    return None


def missing_extra(config: Config) -> str | None:
    """One line, ``'<source>: <key>: needs ...: pip install ...'``, for the first extra ``config`` needs
    that is not installed; ``None`` when everything it needs is there."""
    error = _first_missing(config)
    return None if error is None else str(error)


def require(config: Config) -> None:
    """:raises MissingExtraError: ``config`` needs an extra that is not installed."""
    error = _first_missing(config)
    if error is not None:
        raise error
