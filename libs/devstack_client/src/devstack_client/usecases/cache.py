"""String values in the Redis Cluster, with an optional time to live."""

from __future__ import annotations

import re

from devstack_client.errors import (
    InvalidInput,
    NotFound,
)
from devstack_client.jsonrules import check_json
from devstack_client.models import (
    CacheEntry,
)
from devstack_client.pools import (
    RedisPool,
)

_CACHE_KEY = re.compile(r"[A-Za-z0-9:_.\-]{1,200}")
MAX_CACHE_TTL = 86400
# The value (nil when missing) and the TTL in seconds (-1: none, -2: missing) of KEYS[1].
_GET_WITH_TTL = "return {redis.call('GET', KEYS[1]), redis.call('TTL', KEYS[1])}"


class CacheService:
    """Get, put (with an optional TTL) and delete string values in the Redis Cluster.

    Keys live under a prefix (`cache_key_prefix`); the cluster client sends each command to the
    master that owns the key's slot."""

    def __init__(self, pool: RedisPool, prefix: str = "cache:") -> None:
        self._pool = pool
        self.prefix = prefix

    def redis_key(self, key: str) -> str:
        """The Redis key of cache key `key`; InvalidInput when `key` breaks the contract's rule."""
        if not _CACHE_KEY.fullmatch(key) or key in (".", ".."):
            raise InvalidInput("a cache key is 1-200 of A-Z a-z 0-9 : _ . - (not . or ..)")
        return self.prefix + key

    async def node_for(self, key: str) -> str:
        """`host:port` of the master that holds `key`."""
        name = self.redis_key(key)
        async with self._pool.operation("cache node") as cluster:
            node = cluster.get_node_from_key(name)
        return "unknown" if node is None else f"{node.host}:{node.port}"

    async def get(self, key: str) -> CacheEntry:
        """The value and remaining TTL of `key`; NotFound when it does not exist."""
        name = self.redis_key(key)
        async with self._pool.operation("cache get") as cluster:
            # One script on the key's master: value and TTL read atomically, in one round trip,
            # on one connection (redis-py's async cluster pipeline is not safe under load).
            value, ttl = await cluster.eval(_GET_WITH_TTL, 1, name)
        if value is None:
            raise NotFound(f"cache key {key!r} does not exist")
        text = value.decode() if isinstance(value, bytes) else str(value)
        return CacheEntry(key=key, value=text, ttl_seconds=int(ttl) if int(ttl) >= 0 else None)

    async def put(
        self, key: str, value: str, ttl_seconds: int | None = None
    ) -> tuple[CacheEntry, bool]:
        """Store `value`; returns the entry and whether the key was created (else replaced).
        Without a TTL the key never expires (a TTL it had is removed)."""
        name = self.redis_key(key)
        if ttl_seconds is not None and not 1 <= ttl_seconds <= MAX_CACHE_TTL:
            raise InvalidInput(f"ttl_seconds must be between 1 and {MAX_CACHE_TTL}")
        check_json(value, "the value")  # a lone surrogate cannot be stored as UTF-8
        async with self._pool.operation("cache put") as cluster:
            previous = await cluster.set(name, value, ex=ttl_seconds, get=True)
        return CacheEntry(key=key, value=value, ttl_seconds=ttl_seconds), previous is None

    async def delete(self, key: str) -> None:
        """Delete `key`; NotFound when it did not exist."""
        name = self.redis_key(key)
        async with self._pool.operation("cache delete") as cluster:
            deleted = await cluster.delete(name)
        if not deleted:
            raise NotFound(f"cache key {key!r} does not exist")
