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
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, Generic, TypeVar

import structlog

from devstack_client.errors import (
    DependencyTimeout,
    DependencyUnavailable,
    DevStackError,
    InvalidInput,
    describe,
)
from devstack_client.health import CheckOutcome
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
    """Whether a dependency's secret says to connect over TLS (default yes)."""
    value = secret.data.get("tls_enabled", True)
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off")
    return bool(value)


def connection_counts(open_: int, idle: int, maximum: int) -> dict[str, int]:
    """The connection counts a pool reports (metrics, health details)."""
    return {"open": open_, "idle": idle, "in_use": open_ - idle, "max": maximum}


class ManagedPool(Generic[C], abc.ABC):
    """A dependency's client, managed: the rules of this module's docstring."""

    name: ClassVar[str]
    errors: ClassVar[tuple[type[BaseException], ...]] = (OSError,)
    # Errors meaning "the server refused this value": InvalidInput (422), never an outage.
    rejected_data: ClassVar[tuple[type[BaseException], ...]] = ()
    # Operations allowed at once (None: unbounded, the client queues callers itself);
    # `bounded_by_pool_size` makes it `pool_max_size`.
    max_concurrency: int | None = None
    bounded_by_pool_size: ClassVar[bool] = False

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
        if self.bounded_by_pool_size:
            self.max_concurrency = settings.pool_max_size
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

    @abc.abstractmethod
    async def probe(self, within: float) -> CheckOutcome:
        """The dependency's health check: one round trip through this pool (so the outage
        policy applies), bounded by `within` seconds."""

    @property
    def operation_timeout(self) -> float:
        """The default bound of one operation, in seconds."""
        return self._settings.operation_timeout

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Follow the secret, register the metrics and connect (a failure is logged, not raised)."""
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
        """Close the current and the retired clients; the pool serves nothing more."""
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

    async def _close_or_terminate(
        self, closing: Awaitable[None], terminate: Callable[[], None]
    ) -> None:
        """Wait for a graceful close for half an operation timeout, then `terminate()`."""
        try:
            async with asyncio.timeout(self._settings.operation_timeout / 2):
                await closing
        except TimeoutError:
            terminate()

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
        """The current client, built or rebuilt from the secret when needed."""
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
        """The pool's connection counts, for the metrics and the health details."""
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
