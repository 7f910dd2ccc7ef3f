"""The blob-descriptor cache on Redis (``storage.cache.blobdescriptor: redis``), shared by processes.

Keys are distribution's (``registry/storage/cache/redis/redis.go``), so a docker-registry configured
with the same Redis shares the cache too:

* ``blobs::<digest>``: a hash with ``digest``, ``size`` and ``mediatype``, the global descriptor;
* ``repository::<name>::blobs``: a set of the digests known to be linked into the repository;
* ``repository::<name>::blobs::<digest>``: a hash with the repository's own ``digest`` and ``mediatype``.

The cache only ever saves work: when Redis is unreachable it behaves as no cache at all (and says so
once in the log) rather than failing requests, and it tries Redis again after :data:`RETRY_AFTER`.
Invalidations that could not be sent are kept and sent first once Redis answers again, so a blob
unlinked during an outage is not served from a stale entry afterwards.
"""

from __future__ import annotations

import logging
import threading
import time
import typing as t

try:
    import redis
except ModuleNotFoundError as e:
    if e.name != "redis":
        raise
    from ..extras import REDIS

    raise ModuleNotFoundError(f"the redis blob-descriptor cache {REDIS.needs()}", name=e.name) from None
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..reference import Digest
from .cache import BlobDescriptorCache
from .cache import Descriptor

if t.TYPE_CHECKING:
    from ..config import RedisConfig

log = logging.getLogger("emulator.redis")

#: Seconds to go without Redis after a failure before trying it again: a dead server then costs one
#: failed connection per interval rather than one per lookup.
RETRY_AFTER = 1.0
#: distribution waits forever when a timeout is 0; a stuck cache must not stall requests, so 0 means this.
DEFAULT_TIMEOUT = 5.0
#: Invalidations kept during an outage; past this, the oldest are dropped (and that is logged).
MAX_PENDING_CLEARS = 10000

_DEFAULT_MEDIA_TYPE = "application/octet-stream"


def blob_key(digest: Digest | str) -> str:
    return f"blobs::{digest}"


def repository_set_key(repository: str) -> str:
    return f"repository::{repository}::blobs"


def repository_blob_key(repository: str, digest: Digest | str) -> str:
    return f"repository::{repository}::blobs::{digest}"


def connection_pool(config: RedisConfig) -> redis.ConnectionPool:
    """A connection pool from distribution's ``redis`` section.

    ``pool.maxactive`` bounds the connections (0: unbounded); with a bound, a request waits up to the
    dial timeout for a free connection, where redigo would fail at once. redis-py keeps every idle
    connection, so ``pool.maxidle`` has no equivalent; ``pool.idletimeout`` becomes the interval after
    which an idle connection is checked with a PING before use, redigo's ``TestOnBorrow``.
    """
    host, _, port = config.addr.rpartition(":")
    dial = config.dialtimeout or DEFAULT_TIMEOUT
    kwargs: dict[str, t.Any] = {
        "host": host or "localhost",
        "port": int(port or 6379),
        "db": config.db,
        "password": config.password or None,
        "socket_connect_timeout": dial,
        # redis-py has one socket timeout for reads and writes: the longer of the two configured.
        "socket_timeout": max(config.readtimeout, config.writetimeout) or DEFAULT_TIMEOUT,
        "health_check_interval": int(config.pool.idletimeout),
        "decode_responses": True,
        # A cache must fail fast: the caller falls back to storage, which is the retry.
        "retry": Retry(NoBackoff(), 0),
    }
    if config.pool.maxactive > 0:
        blocking: t.Any = redis.BlockingConnectionPool  # untyped in redis-py
        return t.cast(
            redis.ConnectionPool, blocking(max_connections=config.pool.maxactive, timeout=dial, **kwargs)
        )
    return redis.ConnectionPool(**kwargs)


class RedisDescriptorCache(BlobDescriptorCache):
    """:class:`~emulator.storage.cache.BlobDescriptorCache`'s interface, stored in Redis.

    ``blobdescriptorsize`` does not apply: Redis's own ``maxmemory`` policy bounds it, as in distribution.
    """

    def __init__(self, config: RedisConfig, *, client: redis.Redis | None = None) -> None:
        super().__init__(0)
        self.client = client if client is not None else redis.Redis(connection_pool=connection_pool(config))
        self._down_until = 0.0
        self._down = False
        self._pending: list[tuple[Digest, str]] = []
        self._state_lock = threading.Lock()

    def get(self, digest: Digest, repository: str = "") -> Descriptor | None:
        if not self._available():
            return None
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hmget(blob_key(digest), ["digest", "size", "mediatype"])
            if repository:
                pipe.sismember(repository_set_key(repository), str(digest))
                pipe.hget(repository_blob_key(repository, digest), "mediatype")
            answers = pipe.execute()
        except redis.RedisError as e:
            self._failed(e)
            return None
        self._succeeded()
        stored_digest, size, media_type = answers[0]
        if repository:
            if not answers[1]:
                return None
            media_type = answers[2] or media_type
        if stored_digest is None or size is None:
            return None
        try:
            return Descriptor(digest, int(size), media_type or _DEFAULT_MEDIA_TYPE)
        except ValueError:
            return None  # not written by a registry: treat as absent

    def set(self, descriptor: Descriptor, repository: str = "") -> None:
        if not self._available():
            return
        digest = str(descriptor.digest)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(blob_key(digest), mapping={"digest": digest, "size": str(descriptor.size)})
            # The first media type recorded for a blob stays, as distribution's HSETNX keeps it.
            pipe.hsetnx(blob_key(digest), "mediatype", descriptor.media_type)
            if repository:
                pipe.sadd(repository_set_key(repository), digest)
                pipe.hset(
                    repository_blob_key(repository, digest),
                    mapping={"digest": digest, "mediatype": descriptor.media_type},
                )
            pipe.execute()
        except redis.RedisError as e:
            self._failed(e)
            return
        self._succeeded()

    def clear(self, digest: Digest, repository: str = "") -> None:
        if self._available():
            try:
                self._send_clear(digest, repository)
            except redis.RedisError as e:
                self._failed(e)
            else:
                self._succeeded()
                return
        with self._state_lock:
            self._pending.append((digest, repository))
            if len(self._pending) > MAX_PENDING_CLEARS:
                del self._pending[0]
                log.warning("too many cache invalidations pending while redis is down; some were dropped")

    def __len__(self) -> int:
        """How many blobs have a global descriptor (a full key scan: for tests and debugging only)."""
        if not self._available():
            return 0
        try:
            return sum(1 for _ in self.client.scan_iter(match="blobs::*", count=1000))
        except redis.RedisError as e:
            self._failed(e)
            return 0

    def _send_clear(self, digest: Digest, repository: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        if repository:
            pipe.srem(repository_set_key(repository), str(digest))
            pipe.delete(repository_blob_key(repository, digest))
        else:
            pipe.delete(blob_key(digest))
        pipe.execute()

    # -- outage handling ------------------------------------------------------------------------------

    def _available(self) -> bool:
        if not self._down:
            return True
        if time.monotonic() < self._down_until:
            return False
        return self._flush_pending()

    def _flush_pending(self) -> bool:
        """Send the invalidations an outage held back; only then may the cache answer again."""
        with self._state_lock:
            pending, self._pending = self._pending, []
        while pending:
            try:
                self._send_clear(*pending[0])
            except redis.RedisError as e:
                with self._state_lock:
                    self._pending[:0] = pending
                self._failed(e)
                return False
            pending.pop(0)
        return True

    def _failed(self, error: Exception) -> None:
        with self._state_lock:
            first = not self._down
            self._down = True
            self._down_until = time.monotonic() + RETRY_AFTER
        if first:
            log.warning("redis cache unavailable, serving without it: %s", error)

    def _succeeded(self) -> None:
        if self._down:
            with self._state_lock:
                was_down, self._down = self._down, False
            if was_down:
                log.info("redis cache available again")
