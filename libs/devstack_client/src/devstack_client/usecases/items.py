"""A small item collection in each of the three databases, and one query each."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import asyncpg
from bson import ObjectId
from bson.errors import InvalidId

from devstack_client.errors import (
    InvalidInput,
    NotFound,
)
from devstack_client.models import (
    Backend,
    Item,
    ItemCreate,
    ItemList,
    QueryResult,
)
from devstack_client.pools import (
    MongoPool,
    MySQLPool,
    PostgresPool,
)

DEFAULT_PAGE = 20
MAX_PAGE = 100


def _now() -> dt.datetime:
    """UTC now at millisecond precision: what every backend stores unchanged."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")


def _uuid_or_404(item_id: str, backend: str) -> str:
    try:
        return str(uuid.UUID(item_id))
    except ValueError:
        raise NotFound(f"no {backend} item has this id") from None


class ItemRepository(Protocol):
    """The item collection of one database, as every backend offers it."""

    backend: Backend

    async def query(self) -> QueryResult:
        """The database's version and clock."""
        ...

    async def create(self, item: ItemCreate) -> Item:
        """Store a new item."""
        ...

    async def get(self, item_id: str) -> Item:
        """The item `item_id`; NotFound when it does not exist (or the id cannot be one)."""
        ...

    async def list(self, *, limit: int = DEFAULT_PAGE) -> ItemList:
        """Up to `limit` items (1 to MAX_PAGE), newest first."""
        ...

    async def delete(self, item_id: str) -> None:
        """Delete the item `item_id`; NotFound when it does not exist."""
        ...


class _SchemaOnce:
    """Creates a table once per process (idempotent DDL), retried after a failure."""

    def __init__(self, create: Callable[[], Awaitable[None]]) -> None:
        self._create = create
        self._ready = False
        self._lock = asyncio.Lock()

    async def ensure(self) -> None:
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                await self._create()
                self._ready = True


class PostgresItems:
    """Items in a PostgreSQL table."""

    backend: Backend = "postgres"

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool
        self._schema = _SchemaOnce(self._create_schema)

    async def _create_schema(self) -> None:
        async with self._pool.operation("create table") as pool:
            # Another process may create it at the same moment: that is fine too.
            with contextlib.suppress(asyncpg.UniqueViolationError, asyncpg.DuplicateTableError):
                await pool.execute(
                    "CREATE TABLE IF NOT EXISTS items (id uuid PRIMARY KEY, "
                    "name varchar(100) NOT NULL, quantity integer NOT NULL DEFAULT 0, "
                    "created_at timestamptz NOT NULL)"
                )

    async def query(self) -> QueryResult:
        """The server's version and clock."""
        row = await self._pool.fetchrow(
            "query", "SELECT current_setting('server_version') AS version, now() AS time"
        )
        return QueryResult(
            database="postgres", server_version=row["version"], server_time=_utc(row["time"])
        )

    @staticmethod
    def _item(row: Any) -> Item:
        return Item(
            id=str(row["id"]),
            name=row["name"],
            quantity=row["quantity"],
            created_at=_utc(row["created_at"]),
        )

    async def create(self, item: ItemCreate) -> Item:
        """Insert a new item (uuid id)."""
        await self._schema.ensure()
        row = await self._pool.fetchrow(
            "create item",
            "INSERT INTO items (id, name, quantity, created_at) "
            "VALUES ($1, $2, $3, $4) RETURNING *",
            uuid.uuid4(),
            item.name,
            item.quantity,
            _now(),
        )
        return self._item(row)

    async def get(self, item_id: str) -> Item:
        """The item `item_id`; NotFound when absent or not a uuid."""
        key = _uuid_or_404(item_id, self.backend)
        await self._schema.ensure()
        row = await self._pool.fetchrow(
            "get item", "SELECT * FROM items WHERE id = $1", uuid.UUID(key)
        )
        if row is None:
            raise NotFound(f"no {self.backend} item has this id")
        return self._item(row)

    async def list(self, *, limit: int = DEFAULT_PAGE) -> ItemList:
        """Up to `limit` items, newest first."""
        _check_limit(limit)
        await self._schema.ensure()
        rows = await self._pool.fetch(
            "list items",
            "SELECT * FROM items ORDER BY created_at DESC, id DESC LIMIT $1",
            limit,
        )
        return ItemList(items=[self._item(r) for r in rows])

    async def delete(self, item_id: str) -> None:
        """Delete the item `item_id`; NotFound when absent."""
        key = _uuid_or_404(item_id, self.backend)
        await self._schema.ensure()
        status = await self._pool.execute(
            "delete item", "DELETE FROM items WHERE id = $1", uuid.UUID(key)
        )
        if status.endswith(" 0"):
            raise NotFound(f"no {self.backend} item has this id")


class MySQLItems:
    """Items in a MySQL (MariaDB) table."""

    backend: Backend = "mysql"

    def __init__(self, pool: MySQLPool) -> None:
        self._pool = pool
        self._schema = _SchemaOnce(self._create_schema)

    async def _create_schema(self) -> None:
        # Microseconds: two inserts on loopback can land in the same millisecond, and ids are
        # random, so a coarser clock would make "newest first" a coin toss.
        await self._pool.execute(
            "create table",
            "CREATE TABLE IF NOT EXISTS items (id CHAR(36) PRIMARY KEY, "
            "name VARCHAR(100) NOT NULL, quantity INT UNSIGNED NOT NULL DEFAULT 0, "
            "created_at DATETIME(6) NOT NULL, KEY by_created (created_at, id)) "
            "CHARACTER SET utf8mb4",
        )

    async def query(self) -> QueryResult:
        """The server's version and clock."""
        rows = await self._pool.fetch("query", "SELECT VERSION(), UTC_TIMESTAMP(3)")
        version, time = rows[0]
        return QueryResult(database="mysql", server_version=str(version), server_time=_utc(time))

    @staticmethod
    def _item(row: Any) -> Item:
        return Item(id=row[0], name=row[1], quantity=int(row[2]), created_at=_utc(row[3]))

    async def create(self, item: ItemCreate) -> Item:
        """Insert a new item (uuid id)."""
        await self._schema.ensure()
        created = Item(
            id=str(uuid.uuid4()), name=item.name, quantity=item.quantity, created_at=_now()
        )
        await self._pool.execute(
            "create item",
            "INSERT INTO items (id, name, quantity, created_at) VALUES (%s, %s, %s, %s)",
            (created.id, created.name, created.quantity, created.created_at.replace(tzinfo=None)),
        )
        return created

    async def get(self, item_id: str) -> Item:
        """The item `item_id`; NotFound when absent or not a uuid."""
        key = _uuid_or_404(item_id, self.backend)
        await self._schema.ensure()
        rows = await self._pool.fetch(
            "get item",
            "SELECT id, name, quantity, created_at FROM items WHERE id = %s",
            (key,),
        )
        if not rows:
            raise NotFound(f"no {self.backend} item has this id")
        return self._item(rows[0])

    async def list(self, *, limit: int = DEFAULT_PAGE) -> ItemList:
        """Up to `limit` items, newest first."""
        _check_limit(limit)
        await self._schema.ensure()
        rows = await self._pool.fetch(
            "list items",
            "SELECT id, name, quantity, created_at FROM items "
            "ORDER BY created_at DESC, id DESC LIMIT %s",
            (limit,),
        )
        return ItemList(items=[self._item(r) for r in rows])

    async def delete(self, item_id: str) -> None:
        """Delete the item `item_id`; NotFound when absent."""
        key = _uuid_or_404(item_id, self.backend)
        await self._schema.ensure()
        affected = await self._pool.execute(
            "delete item", "DELETE FROM items WHERE id = %s", (key,)
        )
        if affected == 0:
            raise NotFound(f"no {self.backend} item has this id")


class MongoItems:
    """Items in a MongoDB collection."""

    backend: Backend = "mongodb"
    collection = "items"

    def __init__(self, pool: MongoPool) -> None:
        self._pool = pool

    @staticmethod
    def _object_id(item_id: str) -> ObjectId:
        try:
            return ObjectId(item_id)
        except (InvalidId, TypeError):
            raise NotFound("no mongodb item has this id") from None

    async def query(self) -> QueryResult:
        """The server's version and clock."""
        async with self._pool.operation("query") as handle:
            build = await handle.database.command("buildInfo")
            status = await handle.client.admin.command("hello")
        time = status.get("localTime")
        return QueryResult(
            database="mongodb",
            server_version=str(build.get("version", "")),
            server_time=_utc(time) if isinstance(time, dt.datetime) else _now(),
        )

    @staticmethod
    def _item(doc: dict[str, Any]) -> Item:
        return Item(
            id=str(doc["_id"]),
            name=doc["name"],
            quantity=int(doc.get("quantity", 0)),
            created_at=_utc(doc["created_at"]),
        )

    async def create(self, item: ItemCreate) -> Item:
        """Insert a new item (ObjectId id)."""
        doc = {
            "_id": ObjectId(),
            "name": item.name,
            "quantity": item.quantity,
            "created_at": _now(),
        }
        async with self._pool.operation("create item") as handle:
            await handle.database[self.collection].insert_one(doc)
        return self._item(doc)

    async def get(self, item_id: str) -> Item:
        """The item `item_id`; NotFound when absent or not an ObjectId."""
        oid = self._object_id(item_id)
        async with self._pool.operation("get item") as handle:
            doc = await handle.database[self.collection].find_one({"_id": oid})
        if doc is None:
            raise NotFound("no mongodb item has this id")
        return self._item(doc)

    async def list(self, *, limit: int = DEFAULT_PAGE) -> ItemList:
        """Up to `limit` items, newest first."""
        _check_limit(limit)
        async with self._pool.operation("list items") as handle:
            cursor = (
                handle.database[self.collection]
                .find({})
                .sort([("created_at", -1), ("_id", -1)])
                .limit(limit)
            )
            docs = await cursor.to_list(length=limit)
        return ItemList(items=[self._item(d) for d in docs])

    async def delete(self, item_id: str) -> None:
        """Delete the item `item_id`; NotFound when absent."""
        oid = self._object_id(item_id)
        async with self._pool.operation("delete item") as handle:
            result = await handle.database[self.collection].delete_one({"_id": oid})
        if result.deleted_count == 0:
            raise NotFound("no mongodb item has this id")
