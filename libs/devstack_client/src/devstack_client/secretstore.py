"""KV secrets cached with a TTL, refreshed in the background, kept through a Vault outage.

- `get(path)` answers from the cache while the value is younger than `ttl` (a hit); otherwise it
  reads Vault (a miss), one read per path at a time however many callers wait.
- A background task re-reads every cached secret once it is half its TTL old, so callers keep
  hitting the cache: at steady state an operation causes no Vault call.
- When Vault cannot be reached, the last good value is served and marked stale (health shows
  it); the next successful read clears the mark.
- Subscribers of a path are told when a new version appears, so pools can rebuild with new
  credentials without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from devstack_client.errors import DependencyError, NotFound
from devstack_client.metrics import Metrics
from devstack_client.vault import VaultSecret

log = structlog.get_logger("devstack_client.secrets")

Fetch = Callable[[str], Awaitable[VaultSecret | None]]
Subscriber = Callable[[VaultSecret], Awaitable[None]]


@dataclass
class _Entry:
    secret: VaultSecret
    fetched_at: float
    failed: bool = False  # the last refresh could not reach Vault
    error: str | None = None


@dataclass(frozen=True)
class SecretState:
    """A cached secret's age and whether it is stale."""

    path: str
    version: int
    age: float
    stale: bool
    error: str | None


class SecretStore:
    """The dependencies' secrets, read from Vault once and cached, refreshed in the background."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        ttl: float,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.ttl = ttl
        self._metrics = metrics
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Future[VaultSecret | None]] = {}
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.hits = 0
        self.misses = 0
        self.stale_served = 0

    # -- reads ----------------------------------------------------------------------------

    async def get(self, path: str) -> VaultSecret:
        """The secret at `path`: the cached copy, else read from Vault (single flight)."""
        entry = self._entries.get(path)
        if entry is not None and self._clock() - entry.fetched_at < self.ttl:
            self._count("hit")
            return entry.secret
        try:
            secret = await self.refresh(path)
        except DependencyError:
            if entry is None:
                raise
            self._count("stale")
            return entry.secret
        self._count("miss")
        return secret

    def peek(self, path: str) -> VaultSecret | None:
        """The cached secret at `path`, without reading Vault."""
        entry = self._entries.get(path)
        return None if entry is None else entry.secret

    async def refresh(self, path: str, *, max_age: float = 0.0) -> VaultSecret:
        """Read Vault now (unless the cached copy is younger than `max_age`), single flight.

        Raises DependencyError when Vault cannot answer (the entry is then marked stale) and
        NotFound when the secret does not exist.
        """
        entry = self._entries.get(path)
        if entry is not None and max_age > 0 and self._clock() - entry.fetched_at < max_age:
            return entry.secret
        future = self._inflight.get(path)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._inflight[path] = future
            try:
                result = await self._fetch(path)
            except BaseException as exc:
                self._inflight.pop(path, None)
                if isinstance(exc, DependencyError) and entry is not None:
                    entry.failed, entry.error = True, exc.message
                future.set_exception(exc)
                future.exception()  # retrieved: waiters re-raise it, nobody else must
                raise
            self._inflight.pop(path, None)
            future.set_result(result)
            if result is not None:
                await self._store(path, result)
        else:
            result = await asyncio.shield(future)
        if result is None:
            raise NotFound(f"secret {path!r} does not exist")
        return result

    async def _store(self, path: str, secret: VaultSecret) -> None:
        previous = self._entries.get(path)
        self._entries[path] = _Entry(secret, self._clock())
        if previous is not None and previous.secret.version != secret.version:
            log.info(
                "secret version changed",
                path=path,
                old_version=previous.secret.version,
                new_version=secret.version,
            )
            if self._metrics is not None:
                self._metrics.secret_changes.labels(path).inc()
            for subscriber in list(self._subscribers.get(path, ())):
                try:
                    await subscriber(secret)
                except Exception:
                    log.exception("secret subscriber failed", path=path)

    def _count(self, result: str) -> None:
        if result == "hit":
            self.hits += 1
        elif result == "miss":
            self.misses += 1
        else:
            self.stale_served += 1
        if self._metrics is not None:
            self._metrics.secret_cache.labels(result).inc()

    # -- change notification ------------------------------------------------------------

    def subscribe(self, path: str, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(new_secret)` whenever a new version of `path` is read."""
        self._subscribers.setdefault(path, []).append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.get(path, []).remove(callback)

        return unsubscribe

    # -- state for health -----------------------------------------------------------------

    def states(self) -> list[SecretState]:
        """The state of every cached secret."""
        now = self._clock()
        return [
            SecretState(
                path=path,
                version=e.secret.version,
                age=now - e.fetched_at,
                stale=e.failed or now - e.fetched_at >= self.ttl,
                error=e.error,
            )
            for path, e in sorted(self._entries.items())
        ]

    def stale_paths(self) -> list[str]:
        """The paths of the stale cached secrets."""
        return [s.path for s in self.states() if s.stale]

    # -- background refresh -------------------------------------------------------------

    def start(self) -> None:
        """Start the background refresh (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._refresh_loop(), name="devstack-secret-refresh")

    async def aclose(self) -> None:
        """Stop the background refresh."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _next_due(self) -> float:
        now = self._clock()
        half = self.ttl / 2
        dues = [
            now + min(half, 1.0) if e.failed else e.fetched_at + half
            for e in self._entries.values()
        ]
        return max(0.05, (min(dues) if dues else now + half) - now)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._next_due())
            now = self._clock()
            due = [
                path
                for path, e in self._entries.items()
                if e.failed or now - e.fetched_at >= self.ttl / 2
            ]
            for path in due:
                try:
                    await self.refresh(path)
                except DependencyError as exc:
                    # Vault is down: mark the rest stale too, and try again in a moment.
                    for other in due:
                        entry = self._entries.get(other)
                        if entry is not None:
                            entry.failed, entry.error = True, exc.message
                    log.warning("secret refresh failed; serving cached values", error=exc.message)
                    break
                except NotFound:
                    log.warning("a cached secret was deleted from Vault; keeping it", path=path)
                    self._entries[path].fetched_at = now
                except Exception:
                    log.exception("secret refresh failed unexpectedly", path=path)
                    self._entries[path].failed = True
