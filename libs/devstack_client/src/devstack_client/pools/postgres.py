"""PostgreSQL through an asyncpg pool, TLS verified against the stack's CA."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from devstack_client.health import CheckOutcome
from devstack_client.pools.base import ManagedPool, connection_counts, tls_enabled
from devstack_client.vault import VaultSecret


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
        """Connect and run `SELECT 1`."""
        async with self.operation("warm-up") as pool:
            await pool.fetchval("SELECT 1")

    async def _close_client(self, client: Any) -> None:
        await self._close_or_terminate(client.close(), client.terminate)

    def _stats(self, client: Any) -> dict[str, int]:
        return connection_counts(client.get_size(), client.get_idle_size(), client.get_max_size())

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

    async def probe(self, within: float) -> CheckOutcome:
        """`SELECT 1` through the pool."""
        async with self.operation("health", within=within) as pool:
            await pool.fetchval("SELECT 1")
        return CheckOutcome(details={"pool": self.stats()})

    @contextlib.asynccontextmanager
    async def connection(self, what: str) -> AsyncIterator[Any]:
        """One connection for several statements (a transaction), within one timeout."""
        async with self.operation(what) as pool, pool.acquire() as conn:
            yield conn

    async def fetch(self, what: str, query: str, *args: Any) -> list[Any]:
        """The rows of `query`."""
        async with self.operation(what) as pool:
            rows: list[Any] = await pool.fetch(query, *args)
            return rows

    async def fetchrow(self, what: str, query: str, *args: Any) -> Any:
        """The first row of `query`, or None."""
        async with self.operation(what) as pool:
            return await pool.fetchrow(query, *args)

    async def fetchval(self, what: str, query: str, *args: Any) -> Any:
        """The first value of the first row of `query`."""
        async with self.operation(what) as pool:
            return await pool.fetchval(query, *args)

    async def execute(self, what: str, query: str, *args: Any) -> str:
        """Run `query`; its status tag (`DELETE 1`)."""
        async with self.operation(what) as pool:
            status: str = await pool.execute(query, *args)
            return status
