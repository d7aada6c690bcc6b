"""One managed client per dependency: built once, rebuilt on new credentials, closed cleanly.

Every pool follows the same rules (the `ManagedPool` base class):
- it is built from the dependency's secret (read through the `SecretStore`, so no Vault call once
  cached) and TLS when the secret says `tls_enabled`; it connects lazily if the server is down at
  start, so an application starts and reports itself degraded instead of crashing;
- every operation runs inside `operation(...)`: a timeout (`operation_timeout`), and backend
  errors translated to `DependencyUnavailable` / `DependencyTimeout` with a short reason;
- a pool whose client fails when it runs out of connections instead of waiting for one (the
  Redis Cluster client raises `MaxConnectionsError`) sets `max_concurrency`: `operation(...)`
  then waits for one of that many slots, within the same timeout, so concurrent callers queue
  rather than fail (the other clients queue by themselves);
- a new version of the secret rebuilds the pool (the old one is closed after a grace period);
  an authentication failure makes the store re-read the secret at once (rate limited);
- connection-level errors drop idle connections so the pool recovers as soon as the server is
  back, without restarting the application; a client that is broken as a whole (RabbitMQ's
  connection closed) is replaced at the next operation;
- the outage policy, the same for every dependency (docs/api.md, "Dependency outages"): once an
  operation failed as unavailable (refused, reset, closed; or timed out while the client knows
  its connection attempts fail), the dependency is "down" and every operation
  first opens a TCP connection to its port (within `connect_timeout`): refused, it fails at
  once as DependencyUnavailable, without waiting for the client's own timeouts; accepted, the
  operation runs, and its success ends the "down" state. So a stopped or killed server answers
  503 at once, a frozen one 504 after `operation_timeout`, and recovery needs no restart.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import linecache
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import aio_pika
import aio_pika.abc
import aio_pika.exceptions
import aio_pika.pool
import aiormq.abc
import aiormq.exceptions
import asyncmy
import asyncmy.errors
import asyncpg
import pymongo.errors
import redis.exceptions
import structlog
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.server_type import SERVER_TYPE
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import RedisSSLContext, SSLConnection

from devstack_client.errors import (
    DependencyTimeout,
    DependencyUnavailable,
    DevStackError,
    InvalidInput,
)
from devstack_client.metrics import Metrics
from devstack_client.secretstore import SecretStore
from devstack_client.settings import ClientSettings
from devstack_client.tls import TrustStore
from devstack_client.vault import VaultSecret

log = structlog.get_logger("devstack_client.pools")

C = TypeVar("C")

AUTH_REFRESH_MAX_AGE = 2.0  # an auth failure re-reads the secret unless read in the last 2 s
REBUILD_RETRY = 1.0  # a failed rebuild is retried at most once a second


def tls_enabled(secret: VaultSecret) -> bool:
    value = secret.data.get("tls_enabled", True)
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off")
    return bool(value)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def describe(exc: BaseException) -> str:
    """A short reason for an error, safe to show: its kind, never raw server text."""
    if any(
        isinstance(e, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(e)
        for e in _chain(exc)
    ):
        return "TLS certificate verification failed"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__


class ManagedPool(Generic[C], abc.ABC):
    name: ClassVar[str]
    errors: ClassVar[tuple[type[BaseException], ...]] = (OSError,)
    # Errors meaning "the server refused this value": InvalidInput (422), never an outage.
    rejected_data: ClassVar[tuple[type[BaseException], ...]] = ()
    # Operations allowed at once (None: unbounded, the client queues callers itself).
    max_concurrency: int | None = None

    def __init__(
        self,
        settings: ClientSettings,
        secrets: SecretStore,
        trust: TrustStore,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._secrets = secrets
        self._trust = trust
        self._metrics = metrics
        self.secret_path = settings.secret_path(self.name)
        self._client: C | None = None
        self._version: int | None = None
        self._rebuild_wanted = False
        self._next_rebuild = 0.0
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self._retired: list[C] = []
        self._unsubscribe: Any = None
        self._closed = False
        self.rebuilds = 0
        self._endpoint: tuple[str, int] | None = None  # where the current client connects
        self.down_since: float | None = None  # monotonic time of the failure that began it
        self._slots = (
            asyncio.Semaphore(self.max_concurrency) if self.max_concurrency is not None else None
        )

    # -- what subclasses provide ------------------------------------------------------------

    @abc.abstractmethod
    async def _build(self, secret: VaultSecret) -> C: ...

    @abc.abstractmethod
    async def _close_client(self, client: C) -> None: ...

    def _stats(self, client: C) -> dict[str, int]:
        return {}

    def _is_auth_error(self, exc: BaseException) -> bool:
        return False

    def _on_connection_error(self, client: C, exc: BaseException) -> None:
        """Called after a backend error; drop broken connections here."""

    def _is_broken(self, client: C) -> bool:
        """True when `client` can serve nothing more and must be replaced (not repaired)."""
        return False

    def _known_unreachable(self, client: C) -> bool:
        """True when the client knows its last attempt to reach the server failed."""
        return False

    def _target(self, secret: VaultSecret) -> tuple[str, int]:
        """The (host, port) the client built from `secret` connects to."""
        return self._settings.endpoint(self.name, tls=tls_enabled(secret))

    @property
    def operation_timeout(self) -> float:
        return self._settings.operation_timeout

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._unsubscribe = self._secrets.subscribe(self.secret_path, self._on_secret)
        if self._metrics is not None:
            self._metrics.register_pool(self.name, self.stats)
        expected: tuple[type[BaseException], ...] = (DevStackError, TimeoutError, *self.errors)
        try:
            async with asyncio.timeout(self._settings.connect_timeout + 1):
                await self.warm_up()
        except expected as exc:
            log.warning(
                "dependency not reachable at start; will connect on first use",
                dependency=self.name,
                reason=describe(exc) if not isinstance(exc, DevStackError) else exc.message,
            )

    async def warm_up(self) -> None:
        """Build the client and open a first connection (subclasses add the round trip)."""
        await self.client()

    async def aclose(self) -> None:
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._metrics is not None:
            self._metrics.unregister_pool(self.name)
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        clients = [*self._retired, *([self._client] if self._client is not None else [])]
        self._client, self._retired = None, []
        for client in clients:
            await self._close_quietly(client)

    async def _close_quietly(self, client: C) -> None:
        try:
            async with asyncio.timeout(self._settings.operation_timeout):
                await self._close_client(client)
        except Exception as exc:
            log.warning("closing a pool failed", dependency=self.name, reason=describe(exc))

    # -- the current client ---------------------------------------------------------------

    @property
    def version(self) -> int | None:
        """The version of the secret the current client was built with."""
        return self._version

    def _usable(self) -> C | None:
        """The current client, unless there is none, it is broken, or a rebuild is due."""
        current = self._client
        if current is None or (self._rebuild_wanted and self._rebuild_due()):
            return None
        return None if self._is_broken(current) else current

    async def client(self) -> C:
        usable = self._usable()
        if usable is not None:
            return usable
        async with self._lock:
            if self._closed:
                raise DependencyUnavailable(self.name, "the client is closed")
            usable = self._usable()
            if usable is not None:
                return usable
            current = self._client
            broken = current is not None and self._is_broken(current)
            secret = await self._secrets.get(self.secret_path)
            try:
                new = await self._build(secret)
            except Exception:
                if current is None or broken:
                    raise
                self._next_rebuild = time.monotonic() + REBUILD_RETRY
                log.warning("rebuilding a pool failed; keeping the old one", dependency=self.name)
                return current
            self._endpoint = self._target(secret)
            self._client, self._version, self._rebuild_wanted = new, secret.version, False
            if current is not None:
                self.rebuilds += 1
                why = "connection" if broken else "credentials"
                if self._metrics is not None:
                    self._metrics.pool_rebuilds.labels(self.name, why).inc()
                log.info("pool rebuilt", dependency=self.name, reason=why)
                self._retire(current)
            return new

    def _rebuild_due(self) -> bool:
        return time.monotonic() >= self._next_rebuild

    def _retire(self, client: C) -> None:
        """Close an old client once operations already running on it had time to finish."""
        self._retired.append(client)

        async def close_later() -> None:
            await asyncio.sleep(self._settings.operation_timeout)
            if client in self._retired:
                self._retired.remove(client)
                await self._close_quietly(client)

        self._spawn(close_later())

    async def _on_secret(self, secret: VaultSecret) -> None:
        if self._version is not None and secret.version != self._version:
            self._rebuild_wanted = True
            self._next_rebuild = 0.0
            self._spawn(self._rebuild_quietly())

    async def _rebuild_quietly(self) -> None:
        try:
            await self.client()
        except Exception as exc:
            log.warning("rebuild failed", dependency=self.name, reason=describe(exc))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def stats(self) -> dict[str, int]:
        client = self._client
        return {} if client is None else self._stats(client)

    # -- operations -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def operation(self, what: str, *, within: float | None = None) -> AsyncIterator[C]:
        """The client, for one operation bounded by `within` seconds (default
        `operation_timeout`), errors translated."""
        timeout = self._settings.operation_timeout if within is None else within
        client: C | None = None
        slotted = False  # a timeout waiting for a slot says nothing about the server
        try:
            async with asyncio.timeout(timeout), self._slot():
                slotted = True
                if self.down_since is not None:
                    await self._check_reachable(what)
                client = await self.client()
                yield client
            self.down_since = None
        except DependencyUnavailable as exc:
            if exc.dependency == self.name:
                self._mark_down()
            raise
        except DevStackError:
            raise
        except TimeoutError as exc:
            # A slow server is not a down one (no TCP check would tell them apart), unless the
            # client itself knows its connections fail (MongoDB's server selection).
            if slotted and client is not None and self._known_unreachable(client):
                self._mark_down()
            raise DependencyTimeout(self.name, f"{what} timed out after {timeout:g}s") from exc
        except self.rejected_data as exc:
            # The server is up and refused this value (a NUL in PostgreSQL text, a number out
            # of range): the request's fault, not an outage.
            raise InvalidInput(f"{self.name} cannot store this value") from exc
        except self.errors as exc:
            self._after_error(client, exc)
            self._mark_down()
            raise DependencyUnavailable(self.name, f"{what}: {describe(exc)}") from exc

    def _mark_down(self) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()

    async def _check_reachable(self, what: str) -> None:
        """While down: a TCP connection to the server's port, or DependencyUnavailable now."""
        if self._endpoint is None:
            secret = await self._secrets.get(self.secret_path)
            self._endpoint = self._target(secret)
        host, port = self._endpoint
        try:
            async with asyncio.timeout(self._settings.connect_timeout):
                _, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            raise DependencyUnavailable(self.name, f"{what}: {describe(exc)}") from exc
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """One of `max_concurrency` slots, waited for (the caller's timeout bounds the wait)."""
        if self._slots is None:
            yield
            return
        async with self._slots:
            yield

    def _after_error(self, client: C | None, exc: BaseException) -> None:
        if self._is_auth_error(exc):
            log.warning("authentication failed; re-reading the secret", dependency=self.name)
            self._spawn(self._refresh_secret())
        if client is not None:
            self._on_connection_error(client, exc)

    async def _refresh_secret(self) -> None:
        with contextlib.suppress(DevStackError):
            await self._secrets.refresh(self.secret_path, max_age=AUTH_REFRESH_MAX_AGE)


# -- PostgreSQL ---------------------------------------------------------------------------


class PostgresPool(ManagedPool[Any]):
    """An asyncpg pool (`asyncpg.Pool`), TLS verified against the stack's CA."""

    name = "postgres"
    # InternalClientError: asyncpg's protocol state after an interrupted exchange (seen when the
    # server restarts mid-query); the connection is unusable and is replaced like a broken one.
    errors = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)
    rejected_data = (asyncpg.exceptions.DataError,)

    async def _build(self, secret: VaultSecret) -> Any:
        host, port = self._settings.endpoint(self.name)
        pool = asyncpg.create_pool(
            host=host,
            port=port,
            user=secret.data["user"],
            password=secret.data["password"],
            database=secret.data["database"],
            ssl=self._trust.ssl_context() if tls_enabled(secret) else False,
            min_size=0,
            max_size=self._settings.pool_max_size,
            timeout=self._settings.connect_timeout,
            command_timeout=self._settings.operation_timeout,
            max_inactive_connection_lifetime=300,
            server_settings={"application_name": "devstack_client"},
        )
        return await pool

    async def warm_up(self) -> None:
        async with self.operation("warm-up") as pool:
            await pool.fetchval("SELECT 1")

    async def _close_client(self, client: Any) -> None:
        try:
            async with asyncio.timeout(self._settings.operation_timeout / 2):
                await client.close()
        except TimeoutError:
            client.terminate()

    def _stats(self, client: Any) -> dict[str, int]:
        size, idle = client.get_size(), client.get_idle_size()
        return {"open": size, "idle": idle, "in_use": size - idle, "max": client.get_max_size()}

    def _is_auth_error(self, exc: BaseException) -> bool:
        return isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError)

    def _on_connection_error(self, client: Any, exc: BaseException) -> None:
        broken = (
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
            asyncpg.PostgresConnectionError,
            asyncpg.exceptions.OperatorInterventionError,
            OSError,
        )
        if isinstance(exc, broken):
            # Idle connections to a restarted server are dead: replace them at next acquire.
            self._spawn(client.expire_connections())

    @contextlib.asynccontextmanager
    async def connection(self, what: str) -> AsyncIterator[Any]:
        """One connection for several statements (a transaction), within one timeout."""
        async with self.operation(what) as pool, pool.acquire() as conn:
            yield conn

    async def fetch(self, what: str, query: str, *args: Any) -> list[Any]:
        async with self.operation(what) as pool:
            rows: list[Any] = await pool.fetch(query, *args)
            return rows

    async def fetchrow(self, what: str, query: str, *args: Any) -> Any:
        async with self.operation(what) as pool:
            return await pool.fetchrow(query, *args)

    async def fetchval(self, what: str, query: str, *args: Any) -> Any:
        async with self.operation(what) as pool:
            return await pool.fetchval(query, *args)

    async def execute(self, what: str, query: str, *args: Any) -> str:
        async with self.operation(what) as pool:
            status: str = await pool.execute(query, *args)
            return status


# -- MySQL (MariaDB) ------------------------------------------------------------------------


class MySQLPool(ManagedPool[Any]):
    """An asyncmy pool; a connection interrupted mid-statement is closed, never reused."""

    name = "mysql"
    errors = (asyncmy.errors.MySQLError, OSError)
    rejected_data = (asyncmy.errors.DataError,)

    async def _build(self, secret: VaultSecret) -> Any:
        host, port = self._settings.endpoint(self.name)
        return await asyncmy.create_pool(
            minsize=0,
            maxsize=self._settings.pool_max_size,
            pool_recycle=300,
            host=host,
            port=port,
            user=secret.data["user"],
            password=secret.data["password"],
            db=secret.data["database"],
            ssl=self._trust.ssl_context() if tls_enabled(secret) else None,
            connect_timeout=self._settings.connect_timeout,
            autocommit=True,
            charset="utf8mb4",
        )

    async def warm_up(self) -> None:
        await self.fetch("warm-up", "SELECT 1")

    async def _close_client(self, client: Any) -> None:
        client.close()
        try:
            async with asyncio.timeout(self._settings.operation_timeout / 2):
                await client.wait_closed()
        except TimeoutError:
            client.terminate()

    def _stats(self, client: Any) -> dict[str, int]:
        size, idle = int(client.size), int(client.freesize)
        return {"open": size, "idle": idle, "in_use": size - idle, "max": int(client.maxsize)}

    def _is_auth_error(self, exc: BaseException) -> bool:
        return isinstance(exc, asyncmy.errors.OperationalError) and exc.args[:1] == (1045,)

    @contextlib.asynccontextmanager
    async def connection(self, what: str, *, within: float | None = None) -> AsyncIterator[Any]:
        async with self.operation(what, within=within) as pool, pool.acquire() as conn:
            try:
                yield conn
            except BaseException:
                conn.close()  # half-read results must not reach the next user of the connection
                raise

    async def fetch(self, what: str, query: str, args: tuple[Any, ...] = ()) -> list[Any]:
        async with self.connection(what) as conn, conn.cursor() as cursor:
            await cursor.execute(query, args)
            rows: list[Any] = list(await cursor.fetchall())
            return rows

    async def execute(self, what: str, query: str, args: tuple[Any, ...] = ()) -> int:
        async with self.connection(what) as conn, conn.cursor() as cursor:
            affected: int = await cursor.execute(query, args)
            return affected


# -- MongoDB (PyMongo's AsyncMongoClient) ---------------------------------------------------


class _MongoPoolCounter(monitoring.ConnectionPoolListener):
    """Connection counts from PyMongo's pool events (CMAP)."""

    def __init__(self) -> None:
        self.open = 0
        self.in_use = 0

    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None:
        pass

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None:
        pass

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        pass

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None:
        pass

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        self.open += 1

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        pass

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        self.open = max(0, self.open - 1)

    def connection_check_out_started(
        self, event: monitoring.ConnectionCheckOutStartedEvent
    ) -> None:
        pass

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        pass

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        self.in_use += 1

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        self.in_use = max(0, self.in_use - 1)


@dataclass
class MongoHandle:
    client: AsyncMongoClient[dict[str, Any]]
    database: AsyncDatabase[dict[str, Any]]
    counter: _MongoPoolCounter


class MongoPool(ManagedPool[MongoHandle]):
    """One `AsyncMongoClient` (it pools connections itself); the CA is given as a file."""

    name = "mongodb"
    errors = (pymongo.errors.PyMongoError, OSError)

    async def _build(self, secret: VaultSecret) -> MongoHandle:
        host, port = self._settings.endpoint(self.name)
        s = self._settings
        counter = _MongoPoolCounter()
        tls = tls_enabled(secret)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            host=host,
            port=port,
            username=secret.data["user"],
            password=secret.data["password"],
            authSource=secret.data["database"],
            tls=tls,
            tlsCAFile=str(self._trust.ca_file) if tls else None,
            serverSelectionTimeoutMS=int(s.connect_timeout * 1000),
            connectTimeoutMS=int(s.connect_timeout * 1000),
            socketTimeoutMS=int(s.operation_timeout * 1000),
            maxPoolSize=s.pool_max_size,
            minPoolSize=0,
            appname="devstack_client",
            event_listeners=[counter],
        )
        # PyMongo keeps the formatted stack of the client's creation (for its debug output):
        # formatting it loaded the source of every file on the stack into linecache (0.7 MB,
        # held for the life of the process). The formatted text is kept; the cache can go.
        linecache.clearcache()
        return MongoHandle(client, client[secret.data["database"]], counter)

    async def warm_up(self) -> None:
        async with self.operation("warm-up") as handle:
            await handle.database.command("ping")

    async def _close_client(self, client: MongoHandle) -> None:
        await client.client.close()

    def _stats(self, client: MongoHandle) -> dict[str, int]:
        c = client.counter
        return {
            "open": c.open,
            "in_use": c.in_use,
            "idle": max(0, c.open - c.in_use),
            "max": self._settings.pool_max_size,
        }

    def _is_auth_error(self, exc: BaseException) -> bool:
        return isinstance(exc, pymongo.errors.OperationFailure) and exc.code == 18

    def _known_unreachable(self, client: MongoHandle) -> bool:
        # PyMongo waits for server selection (connect_timeout) while its monitor fails to
        # connect; its topology already says why.
        servers = client.client.topology_description.server_descriptions().values()
        return any(d.server_type == SERVER_TYPE.Unknown and d.error is not None for d in servers)


# -- Redis Cluster ----------------------------------------------------------------------------


class SharedContextSSLConnection(SSLConnection):
    """A TLS connection that uses one SSL context given to it.

    redis-py builds a new context for every connection, and each loads the system CA store
    (about 1 MB each, 20 MB for a pool of 21 connections); ours trusts only the Vault CA."""

    def __init__(self, *, ssl_shared_context: RedisSSLContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ssl_context = ssl_shared_context


def share_one_ssl_context(cluster: RedisCluster, context: ssl.SSLContext) -> None:
    """Make every connection of `cluster` (the startup nodes' and those it discovers) use
    `context`. redis-py (8.1) has no option for it: this sets the connection class and its
    arguments where the cluster keeps them; tests/integration/client pins the behaviour."""
    shared = RedisSSLContext(cert_reqs="required", check_hostname=True)
    shared.context = context
    extra = {"ssl_shared_context": shared}
    cluster.nodes_manager.connection_kwargs.update(
        connection_class=SharedContextSSLConnection, **extra
    )
    for node in cluster.nodes_manager.startup_nodes.values():
        node.connection_class = SharedContextSSLConnection
        node.connection_kwargs.update(extra)


class RedisPool(ManagedPool[RedisCluster]):
    """A cluster-aware client: it follows MOVED/ASK and reaches every master over TLS.

    redis-py's async cluster client opens at most `max_connections` per node and raises
    `MaxConnectionsError` past that instead of waiting, so operations are bounded here to
    `pool_max_size` at once (each uses at most one connection per node at a time): callers
    beyond it wait for a slot within their operation timeout."""

    name = "redis"
    errors = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException, OSError)

    def __init__(
        self,
        settings: ClientSettings,
        secrets: SecretStore,
        trust: TrustStore,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.max_concurrency = settings.pool_max_size
        super().__init__(settings, secrets, trust, metrics=metrics)

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
            socket_timeout=s.operation_timeout,
            socket_connect_timeout=s.connect_timeout,
            max_connections=s.pool_max_size,
            require_full_coverage=True,
            decode_responses=True,
        )
        if tls:
            share_one_ssl_context(cluster, self._trust.ssl_context())
        try:
            await cluster.initialize()
        except BaseException:
            await cluster.aclose()
            raise
        return cluster

    async def warm_up(self) -> None:
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


# -- RabbitMQ ---------------------------------------------------------------------------------


IDLE_RAW_CHANNELS = 4  # raw channels kept open for reuse (opening one per consume costs memory)


@dataclass
class RabbitHandle:
    connection: aio_pika.abc.AbstractConnection
    channels: aio_pika.pool.Pool[aio_pika.abc.AbstractChannel]
    idle: list[aiormq.abc.AbstractChannel] = field(default_factory=list)

    async def raw_channel(self) -> aiormq.abc.AbstractChannel:
        """A channel of the connection (aiormq's), outside the pool, without confirms, for
        one holder at a time: a reused one (`give_back`) or a new one."""
        while self.idle:
            channel = self.idle.pop()
            if not channel.is_closed:
                return channel
        transport = self.connection.transport
        if transport is None:
            raise aiormq.exceptions.ChannelInvalidStateError("the connection is closed")
        with _connection_gone():
            return await transport.connection.channel(publisher_confirms=False)

    async def give_back(self, channel: aiormq.abc.AbstractChannel) -> None:
        """A raw channel its holder is done with (nothing left unacknowledged on it)."""
        if channel.is_closed:
            return
        if len(self.idle) < IDLE_RAW_CHANNELS:
            self.idle.append(channel)
            return
        with contextlib.suppress(Exception):
            await channel.close()


class RabbitPool(ManagedPool[RabbitHandle]):
    """A connection and a pool of confirming channels: publisher confirms on, and `mandatory`
    publishes that nobody can receive raise.

    Not aio-pika's robust connection: while it reconnects by itself, its channels fail with
    errors of their own (ChannelInvalidStateError, a RuntimeError) and it retries on its own
    schedule (5 s), seconds after the broker is back. A closed connection is instead replaced
    by the pool at the next operation, like any broken client (see ManagedPool)."""

    name = "rabbitmq"
    errors = (
        aio_pika.exceptions.AMQPException,
        aiormq.exceptions.AMQPError,
        # "No active transport in channel": the connection died under the channel.
        aiormq.exceptions.ChannelInvalidStateError,
        aio_pika.pool.PoolInvalidStateError,
        OSError,
    )

    async def _build(self, secret: VaultSecret) -> RabbitHandle:
        tls = tls_enabled(secret)
        host, port = self._settings.endpoint(self.name, tls=tls)
        connection = await aio_pika.connect(
            host=host,
            port=port,
            login=secret.data["user"],
            password=secret.data["password"],
            virtualhost=secret.data.get("vhost", "/"),
            ssl=tls,
            ssl_context=self._trust.ssl_context() if tls else None,
            timeout=self._settings.connect_timeout,
            client_properties={"connection_name": "devstack_client"},
        )

        async def new_channel() -> aio_pika.abc.AbstractChannel:
            return await connection.channel(publisher_confirms=True, on_return_raises=True)

        channels: aio_pika.pool.Pool[aio_pika.abc.AbstractChannel] = aio_pika.pool.Pool(
            new_channel, max_size=self._settings.channel_pool_size
        )
        return RabbitHandle(connection, channels)

    async def warm_up(self) -> None:
        async with self.channel("warm-up"):
            pass

    async def _close_client(self, client: RabbitHandle) -> None:
        await client.channels.close()
        await client.connection.close()

    def _stats(self, client: RabbitHandle) -> dict[str, int]:
        return {
            "connections": 0 if client.connection.is_closed else 1,
            "channels_max": self._settings.channel_pool_size,
        }

    def _is_auth_error(self, exc: BaseException) -> bool:
        return isinstance(exc, aiormq.exceptions.ProbableAuthenticationError) or (
            "ACCESS_REFUSED" in str(exc)
        )

    def _is_broken(self, client: RabbitHandle) -> bool:
        # aio-pika's own flag is set by close() only; aiormq's says when the broker went away.
        transport = client.connection.transport
        return bool(
            client.connection.is_closed or transport is None or transport.connection.is_closed
        )

    @contextlib.asynccontextmanager
    async def channel(
        self, what: str, *, within: float | None = None
    ) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
        """A channel from the pool; one closed by a broker error is reopened before reuse."""
        async with (
            self.operation(what, within=within) as handle,
            handle.channels.acquire() as channel,
        ):
            if channel.is_closed:
                with _connection_gone():
                    await channel.reopen()
            yield channel


@contextlib.contextmanager
def _connection_gone() -> Iterator[None]:
    """aiormq's plain RuntimeError for a channel of a closed connection, as the error it is."""
    try:
        yield
    except aiormq.exceptions.ChannelInvalidStateError:
        raise
    except RuntimeError as exc:
        raise aiormq.exceptions.ChannelInvalidStateError(str(exc)) from exc
