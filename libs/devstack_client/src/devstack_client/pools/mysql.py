"""MySQL (MariaDB) through an asyncmy pool."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncmy
import asyncmy.errors

from devstack_client.health import CheckOutcome
from devstack_client.pools.base import ManagedPool, connection_counts, tls_enabled
from devstack_client.vault import VaultSecret


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
        """Connect and run `SELECT 1`."""
        await self.fetch("warm-up", "SELECT 1")

    async def _close_client(self, client: Any) -> None:
        client.close()
        await self._close_or_terminate(client.wait_closed(), client.terminate)

    def _stats(self, client: Any) -> dict[str, int]:
        return connection_counts(int(client.size), int(client.freesize), int(client.maxsize))

    def _is_auth_error(self, exc: BaseException) -> bool:
        return isinstance(exc, asyncmy.errors.OperationalError) and exc.args[:1] == (1045,)

    async def probe(self, within: float) -> CheckOutcome:
        """`SELECT 1` on a pooled connection."""
        async with (
            self.connection("health", within=within) as conn,
            conn.cursor() as cursor,
        ):
            await cursor.execute("SELECT 1")
            await cursor.fetchall()
        return CheckOutcome(details={"pool": self.stats()})

    @contextlib.asynccontextmanager
    async def connection(self, what: str, *, within: float | None = None) -> AsyncIterator[Any]:
        """A connection of the pool for one operation (closed, not reused, after an error)."""
        async with self.operation(what, within=within) as pool, pool.acquire() as conn:
            try:
                yield conn
            except BaseException:
                conn.close()  # half-read results must not reach the next user of the connection
                raise

    async def fetch(self, what: str, query: str, args: tuple[Any, ...] = ()) -> list[Any]:
        """The rows of `query`."""
        async with self.connection(what) as conn, conn.cursor() as cursor:
            await cursor.execute(query, args)
            rows: list[Any] = list(await cursor.fetchall())
            return rows

    async def execute(self, what: str, query: str, args: tuple[Any, ...] = ()) -> int:
        """Run `query`; the number of affected rows."""
        async with self.connection(what) as conn, conn.cursor() as cursor:
            affected: int = await cursor.execute(query, args)
            return affected
