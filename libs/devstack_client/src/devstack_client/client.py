"""`DevStackClient`: everything an application needs, created once in its lifespan.

```python
settings = ClientSettings()  # DEVSTACK_* variables, or ClientSettings.for_stack(...)
async with DevStackClient(settings) as stack:
    item = await stack.items("postgres").create(ItemCreate(name="first", quantity=1))
    entry, created = await stack.cache.put("greeting", "hello", ttl_seconds=60)
    report = await stack.health()
```

The client changes nothing process-wide; the memory measures are opt-in (`tune_process()`,
devstack_client.tuning).

Start order: Vault login (the token is then kept alive in the background), the CA chain, each
dependency's secret (cached), the background secret refresher, then every pool at once (a pool
whose server is down connects on first use). `aclose()` undoes it all and revokes the token.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from functools import cached_property
from typing import Any, cast

import httpx
import structlog

from devstack_client.errors import ConfigurationError
from devstack_client.health import CheckOutcome, HealthChecker, Probe
from devstack_client.metrics import Metrics
from devstack_client.models import Backend, CheckError, HealthReport
from devstack_client.pools import (
    ManagedPool,
    MongoPool,
    MySQLPool,
    PostgresPool,
    RabbitPool,
    RedisPool,
)
from devstack_client.redaction import Redactor
from devstack_client.redaction import redactor as default_redactor
from devstack_client.secretstore import SecretStore
from devstack_client.settings import DEPENDENCIES, ClientSettings, Dependency
from devstack_client.tls import TrustStore, load_trust
from devstack_client.usecases import (
    CacheService,
    ClusterService,
    ItemRepository,
    MongoItems,
    MySQLItems,
    PostgresItems,
    QueueService,
    SecretReader,
)
from devstack_client.vault import VaultClient

log = structlog.get_logger("devstack_client")

HEALTH_BACKSTOP = 0.5  # seconds the checker waits past health_timeout before cancelling a probe

_POOL_TYPES: dict[str, type[ManagedPool[Any]]] = {
    "postgres": PostgresPool,
    "mysql": MySQLPool,
    "mongodb": MongoPool,
    "redis": RedisPool,
    "rabbitmq": RabbitPool,
}


class DevStackClient:
    """Vault login, the CA chain, the dependencies' secrets and one pool per dependency, with
    the use cases (`items`, `cache`, `queues`, `cluster`, `vault_secrets`) and `health()`."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        dependencies: Iterable[Dependency] = DEPENDENCIES,
        metrics: Metrics | None = None,
        redactor: Redactor = default_redactor,
        vault_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.dependencies: tuple[Dependency, ...] = tuple(dict.fromkeys(dependencies))
        unknown = set(self.dependencies) - set(DEPENDENCIES)
        if unknown:
            raise ConfigurationError(f"unknown dependencies: {sorted(unknown)}")
        self.metrics = metrics if metrics is not None else Metrics()
        self.redactor = redactor
        self.vault = VaultClient(
            settings, metrics=self.metrics, redactor=redactor, transport=vault_transport
        )
        self.secrets = SecretStore(
            self.vault.kv_read, ttl=settings.secret_ttl, metrics=self.metrics
        )
        self._trust: TrustStore | None = None
        self._pools: dict[str, ManagedPool[Any]] = {}
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Log in to Vault, load the CA chain and the secrets, start every pool (idempotent)."""
        if self._started:
            return
        self._started = True
        try:
            await self.vault.start()
            self._trust = await load_trust(self.settings, self.vault)
            for dependency in self.dependencies:
                await self.secrets.get(self.settings.secret_path(dependency))
            self.secrets.start()
            for dependency in self.dependencies:
                self._pools[dependency] = _POOL_TYPES[dependency](
                    self.settings, self.secrets, self._trust, metrics=self.metrics
                )
            await asyncio.gather(*(pool.start() for pool in self._pools.values()))
        except BaseException:
            await self.aclose()
            raise
        log.info("devstack client started", dependencies=list(self.dependencies))

    async def aclose(self) -> None:
        """Close every pool, stop the secret refresher and revoke the Vault token."""
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(pool.aclose() for pool in pools), return_exceptions=True)
        await self.secrets.aclose()
        await self.vault.aclose()
        if self._trust is not None:
            self._trust.close()
            self._trust = None

    async def __aenter__(self) -> DevStackClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- pools --------------------------------------------------------------------------------

    def pool(self, dependency: str) -> ManagedPool[Any]:
        """The pool of `dependency`; ConfigurationError when it is not enabled."""
        try:
            return self._pools[dependency]
        except KeyError:
            raise ConfigurationError(
                f"{dependency} is not enabled (or the client is not started)"
            ) from None

    @property
    def trust(self) -> TrustStore:
        """The CA chain every pool verifies its server with."""
        if self._trust is None:
            raise ConfigurationError("the client is not started")
        return self._trust

    @property
    def postgres(self) -> PostgresPool:
        """The PostgreSQL pool."""
        return cast(PostgresPool, self.pool("postgres"))

    @property
    def mysql(self) -> MySQLPool:
        """The MySQL (MariaDB) pool."""
        return cast(MySQLPool, self.pool("mysql"))

    @property
    def mongodb(self) -> MongoPool:
        """The MongoDB (FerretDB) pool."""
        return cast(MongoPool, self.pool("mongodb"))

    @property
    def redis(self) -> RedisPool:
        """The Redis Cluster pool."""
        return cast(RedisPool, self.pool("redis"))

    @property
    def rabbitmq(self) -> RabbitPool:
        """The RabbitMQ pool."""
        return cast(RabbitPool, self.pool("rabbitmq"))

    # -- use cases ----------------------------------------------------------------------------

    def items(self, backend: Backend) -> ItemRepository:
        """The item collection in one of the three databases."""
        return self._repositories[backend]

    @cached_property
    def _repositories(self) -> dict[str, ItemRepository]:
        found: dict[str, ItemRepository] = {}
        if "postgres" in self._pools:
            found["postgres"] = PostgresItems(self.postgres)
        if "mysql" in self._pools:
            found["mysql"] = MySQLItems(self.mysql)
        if "mongodb" in self._pools:
            found["mongodb"] = MongoItems(self.mongodb)
        return found

    @cached_property
    def cache(self) -> CacheService:
        """String values in the Redis Cluster, under `cache_key_prefix`."""
        return CacheService(self.redis, self.settings.cache_key_prefix)

    @cached_property
    def queues(self) -> QueueService:
        """Publish, consume and inspect RabbitMQ queues."""
        return QueueService(self.rabbitmq)

    @cached_property
    def cluster(self) -> ClusterService:
        """The Redis Cluster described (nodes, slots, INFO)."""
        return ClusterService(self.redis)

    @cached_property
    def vault_secrets(self) -> SecretReader:
        """The dependencies' secrets, masked, as an API may show them."""
        return SecretReader(self.secrets, self.settings)

    # -- health -------------------------------------------------------------------------------

    @cached_property
    def health_checker(self) -> HealthChecker:
        """One probe per dependency (each pool's, and Vault's), run concurrently."""
        probes: dict[str, Probe] = {"vault": self._probe_vault}
        within = self.settings.health_timeout
        for name, pool in self._pools.items():
            probes[name] = functools.partial(pool.probe, within)
        # Each probe bounds its own operation by health_timeout (so a pool sees its timeout
        # and applies the outage policy); the checker's bound is only a backstop.
        return HealthChecker(
            probes,
            timeout=self.settings.health_timeout + HEALTH_BACKSTOP,
            metrics=self.metrics,
            redactor=self.redactor,
        )

    async def health(self, names: Iterable[str] | None = None) -> HealthReport:
        """Every dependency's probe at once, each with its timeout. Vault's is one `sys/health`
        request (no token, not audited); no authenticated Vault call is made."""
        return await self.health_checker.check(names)

    async def _probe_vault(self) -> CheckOutcome:
        # One unauthenticated, unaudited sys/health request (shared by concurrent checks): Vault
        # dying is seen by the next health check, not by the next refresh minutes later.
        status = await self.vault.probe(within=self.settings.health_timeout)
        states = self.secrets.states()
        stale = [s.path for s in states if s.stale]
        details: dict[str, Any] = {
            "reachable": status.reachable,
            "token_ttl_seconds": None if status.token_ttl is None else round(status.token_ttl),
            "cached_secrets": "stale" if stale else "fresh",
            "stale_secrets": stale,
        }
        if not status.reachable:
            down = "" if status.down_for is None else f" for {status.down_for:.0f}s"
            slow = status.last_error == "timed out"  # no answer in time: a timeout, as for all
            if states and len(states) >= len(self.dependencies):
                # Still serving: every secret comes from the cache (the contract's "degraded").
                reason = f"unreachable{down}; serving cached credentials"
                outcome: CheckError = "timeout" if slow else "unavailable"
                return CheckOutcome("degraded", reason, details, error=outcome)
            error: CheckError = (
                "not_ready"
                if "sealed" in (status.last_error or "")
                else ("timeout" if slow else "unavailable")
            )
            return CheckOutcome("unhealthy", f"unreachable{down}", details, error=error)
        if not status.authenticated:
            if states and len(states) >= len(self.dependencies):
                # Vault answers but refuses us (a dead secret-id): still serving from the cache.
                reason = "no valid token; serving cached credentials"
                return CheckOutcome("degraded", reason, details, error="unavailable")
            return CheckOutcome("unhealthy", "no valid token", details)
        if stale:
            return CheckOutcome("degraded", f"stale secrets: {', '.join(stale)}", details)
        return CheckOutcome("healthy", None, details)
