"""The pull-through cache (``proxy.remoteurl``): a registry that serves what it has and fetches the rest
from a remote registry, keeping it for ``proxy.ttl``.

:mod:`.remote` talks to the remote registry, :mod:`.store` is the storage facade that fetches what is
missing (below the handlers, so pulls look like any other pull and fills are no pushes), and
:mod:`.expiry` removes cached content once its time is up, keeping its schedule in the storage.
"""

from __future__ import annotations

import typing as t

from .expiry import Expiry
from .remote import Remote
from .store import ProxyRegistry

if t.TYPE_CHECKING:
    from ..config import Config
    from ..drivers.base import StorageDriver
    from ..storage.cache import BlobDescriptorCache

__all__ = ["Expiry", "ProxyRegistry", "Remote", "build"]


def build(config: Config, driver: StorageDriver, cache: BlobDescriptorCache) -> ProxyRegistry:
    """The storage facade of a pull-through cache; its :attr:`~ProxyRegistry.services` are to be
    started with the app."""
    proxy = config.proxy
    if proxy is None:
        raise ValueError("the configuration has no proxy section")
    remote = Remote(proxy.remoteurl, proxy.username, proxy.password)
    return ProxyRegistry(driver, cache, remote, ttl=proxy.ttl, delete_enabled=config.storage.delete_enabled)
