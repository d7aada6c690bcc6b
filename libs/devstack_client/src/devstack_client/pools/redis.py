"""The Redis Cluster through redis-py's async cluster client."""

from __future__ import annotations

import ssl

import redis.exceptions
from redis.asyncio.cluster import RedisCluster

from devstack_client import tuning
from devstack_client.health import CheckOutcome
from devstack_client.pools.base import ManagedPool, tls_enabled
from devstack_client.vault import VaultSecret


class RedisPool(ManagedPool[RedisCluster]):
    """A cluster-aware client: it follows MOVED/ASK and reaches every master over TLS.

    redis-py's async cluster client opens at most `max_connections` per node and raises
    `MaxConnectionsError` past that instead of waiting, so operations are bounded here to
    `pool_max_size` at once (each uses at most one connection per node at a time): callers
    beyond it wait for a slot within their operation timeout."""

    name = "redis"
    errors = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException, OSError)
    bounded_by_pool_size = True

    async def _build(self, secret: VaultSecret) -> RedisCluster:
        tls = tls_enabled(secret)
        host, port = self._settings.endpoint(self.name, tls=tls)
        s = self._settings
        cluster = RedisCluster(
            host=host,
            port=port,
            username=secret.data.get("user") or None,
            password=secret.data["password"],
            ssl=tls,
            ssl_ca_data=self._trust.ca_pem if tls else None,
            ssl_check_hostname=tls,
            ssl_min_version=ssl.TLSVersion.TLSv1_2 if tls else None,
            # No socket timeout of redis-py's own: with one, each command is sent through
            # `asyncio.wait_for`, a task of its own per command (Python 3.11). Every command runs
            # inside `operation()`, whose deadline bounds a server that never answers (a test
            # SIGSTOPs a master); redis-py closes a connection whose read was cancelled.
            socket_timeout=None,
            socket_connect_timeout=s.connect_timeout,
            max_connections=s.pool_max_size,
            require_full_coverage=True,
            decode_responses=True,
        )
        if tls:
            tuning.share_one_ssl_context(cluster, self._trust.ssl_context())
        try:
            await cluster.initialize()
        except BaseException:
            await cluster.aclose()
            raise
        return cluster

    async def warm_up(self) -> None:
        """Connect to the cluster and ping every master."""
        async with self.operation("warm-up") as cluster:
            await cluster.ping(target_nodes=RedisCluster.PRIMARIES)

    async def _close_client(self, client: RedisCluster) -> None:
        await client.aclose()

    def _stats(self, client: RedisCluster) -> dict[str, int]:
        open_, idle = 0, 0
        for node in client.get_nodes():
            open_ += len(getattr(node, "_connections", ()))
            idle += len(getattr(node, "_free", ()))
        nodes = len(client.get_nodes())
        return {"open": open_, "idle": idle, "in_use": open_ - idle, "nodes": nodes}

    def _is_auth_error(self, exc: BaseException) -> bool:
        return isinstance(exc, redis.exceptions.AuthenticationError)

    async def probe(self, within: float) -> CheckOutcome:
        """CLUSTER INFO and a PING of every master: unhealthy (not ready) unless the state is ok."""
        async with self.operation("health", within=within) as cluster:
            info = await cluster.cluster_info()
            await cluster.ping(target_nodes=RedisCluster.PRIMARIES)
            masters = len(cluster.get_primaries())
        state = str(info.get("cluster_state"))
        details = {"cluster_state": state, "masters": masters}
        if state != "ok":
            return CheckOutcome(
                "unhealthy", f"cluster state is {state}", details, error="not_ready"
            )
        return CheckOutcome(details=details)
