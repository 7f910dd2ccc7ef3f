"""A registry emulator for Spectro Cloud pack registries and the Docker Registry HTTP API v2 / OCI
Distribution 1.1, configured like distribution.

In-process use::

    import emulator

    with emulator.start({"storage": {"filesystem": {"rootdirectory": "/tmp/r"}}}) as server:
        print(server.url)

For tests (in pytest, unittest or a plain script), ``pax_registry_fixtures.RegistryServer`` serves the
same registry with a request log, fault injection, fast seeding, ``reset()`` and a strict mode, and
``pax_registry_fixtures.with_registry`` starts one for a single function.
"""

from __future__ import annotations

import importlib
import typing as t

if t.TYPE_CHECKING:
    from .app import RegistryApp as RegistryApp
    from .app import make_app as make_app
    from .config import Config as Config
    from .config import ConfigError as ConfigError
    from .inprocess import load_config as load_config
    from .inprocess import serve_wsgi as serve_wsgi
    from .inprocess import start as start
    from .serving import BackgroundServer as BackgroundServer

#: Where each name the package offers is defined. They are imported on first use (PEP 562) so that a
#: command pays only for what it runs: ``registry pack ...`` never loads Werkzeug, and ``registry serve``
#: can choose how Werkzeug is loaded before anything imports it (see :mod:`emulator.lazyinit`).
_EXPORTS = {
    "RegistryApp": "app",
    "make_app": "app",
    "Config": "config",
    "ConfigError": "config",
    "load_config": "inprocess",
    "serve_wsgi": "inprocess",
    "start": "inprocess",
    "BackgroundServer": "serving",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> t.Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
