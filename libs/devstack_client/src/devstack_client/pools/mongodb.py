"""MongoDB (FerretDB) through PyMongo's AsyncMongoClient."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymongo.errors
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.server_type import SERVER_TYPE

from devstack_client import tuning
from devstack_client.health import CheckOutcome
from devstack_client.pools import mongodb_connect
from devstack_client.pools.base import ManagedPool, connection_counts, tls_enabled
from devstack_client.vault import VaultSecret


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
    """The client, the application's database, and the connection counter."""

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
        mongodb_connect.install()  # no socket left open by a cancelled connect (PYTHON-5867)
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
        tuning.after_mongo_client_built()  # the source lines its creation loaded (opt-in)
        return MongoHandle(client, client[secret.data["database"]], counter)

    async def warm_up(self) -> None:
        """Connect and `ping`."""
        async with self.operation("warm-up") as handle:
            await handle.database.command("ping")

    async def _close_client(self, client: MongoHandle) -> None:
        await client.client.close()

    def _stats(self, client: MongoHandle) -> dict[str, int]:
        c = client.counter
        return connection_counts(c.open, max(0, c.open - c.in_use), self._settings.pool_max_size)

    def _is_auth_error(self, exc: BaseException) -> bool:
        return isinstance(exc, pymongo.errors.OperationFailure) and exc.code == 18

    async def probe(self, within: float) -> CheckOutcome:
        """A `ping` of the database."""
        async with self.operation("health", within=within) as handle:
            await handle.database.command("ping")
        return CheckOutcome(details={"pool": self.stats()})

    def _known_unreachable(self, client: MongoHandle) -> bool:
        # PyMongo waits for server selection (connect_timeout) while its monitor fails to
        # connect; its topology already says why.
        servers = client.client.topology_description.server_descriptions().values()
        return any(d.server_type == SERVER_TYPE.Unknown and d.error is not None for d in servers)
