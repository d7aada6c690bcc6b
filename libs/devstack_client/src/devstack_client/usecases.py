"""What both applications do, written once: plain async classes over the managed pools.

Each method validates its arguments (`InvalidInput`), returns a model shaped like the contract's
schema (openapi/devstack.yaml), and raises only the library's exceptions (`NotFound`,
`DependencyUnavailable`, `DependencyTimeout`, ...), so a web adapter maps results and errors to
HTTP without knowing which backend answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aio_pika
import aio_pika.exceptions
import aiormq.abc
import aiormq.exceptions
import asyncpg
import structlog
from bson import ObjectId
from bson.errors import InvalidId
from redis.asyncio.cluster import RedisCluster

from devstack_client.errors import (
    DependencyUnavailable,
    InvalidInput,
    MessageUnroutable,
    NotFound,
    VaultError,
)
from devstack_client.jsonrules import MAX_DEPTH, check_json, first_violation, nesting_depth
from devstack_client.models import (
    Backend,
    CacheEntry,
    ClusterInfo,
    ClusterSlots,
    ConsumedMessage,
    ConsumeResult,
    Item,
    ItemCreate,
    ItemList,
    NodeInfo,
    PublishResult,
    QueryResult,
    QueueInfo,
    RedisNode,
    SecretValue,
    SecretView,
    SlotAssignment,
    SlotCoverage,
    SlotRange,
)
from devstack_client.pools import (
    MongoPool,
    MySQLPool,
    PostgresPool,
    RabbitHandle,
    RabbitPool,
    RedisPool,
)
from devstack_client.redaction import MASK, is_masked_key
from devstack_client.secretstore import SecretStore
from devstack_client.settings import DEPENDENCIES, ClientSettings

log = structlog.get_logger("devstack_client.usecases")

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


# -- secrets ----------------------------------------------------------------------------------


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)  # true, 3, null: as JSON spells them


class SecretReader:
    """The application secrets of the stack's dependencies, masked (served from the cache)."""

    def __init__(self, store: SecretStore, settings: ClientSettings) -> None:
        self._store = store
        self._settings = settings

    async def read(self, service: str) -> SecretView:
        if service not in DEPENDENCIES:
            raise NotFound(f"no secret for {service!r}")
        path = self._settings.secret_path(service)
        try:
            secret = await self._store.get(path)
        except VaultError as exc:
            if exc.status == 403:
                raise NotFound(f"the secret of {service!r} is not readable") from exc
            raise
        data = {k: MASK if is_masked_key(k) else _as_text(v) for k, v in secret.data.items()}
        return SecretView(
            service=service,
            path=f"{self._settings.vault_kv_mount}/{path}",
            version=secret.version,
            data=data,
            masked_keys=sorted(k for k in secret.data if is_masked_key(k)),
        )

    async def read_key(self, service: str, key: str) -> SecretValue:
        view = await self.read(service)
        if key not in view.data:
            raise NotFound(f"the secret of {service!r} has no key {key!r}")
        return SecretValue(
            service=service, key=key, value=view.data[key], masked=is_masked_key(key)
        )


# -- databases: one query, and a small item collection ---------------------------------------


class ItemRepository(Protocol):
    backend: Backend

    async def query(self) -> QueryResult: ...
    async def create(self, item: ItemCreate) -> Item: ...
    async def get(self, item_id: str) -> Item: ...
    async def list(self, *, limit: int = DEFAULT_PAGE) -> ItemList: ...
    async def delete(self, item_id: str) -> None: ...


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
        key = _uuid_or_404(item_id, self.backend)
        await self._schema.ensure()
        row = await self._pool.fetchrow(
            "get item", "SELECT * FROM items WHERE id = $1", uuid.UUID(key)
        )
        if row is None:
            raise NotFound(f"no {self.backend} item has this id")
        return self._item(row)

    async def list(self, *, limit: int = DEFAULT_PAGE) -> ItemList:
        _check_limit(limit)
        await self._schema.ensure()
        rows = await self._pool.fetch(
            "list items",
            "SELECT * FROM items ORDER BY created_at DESC, id DESC LIMIT $1",
            limit,
        )
        return ItemList(items=[self._item(r) for r in rows])

    async def delete(self, item_id: str) -> None:
        key = _uuid_or_404(item_id, self.backend)
        await self._schema.ensure()
        status = await self._pool.execute(
            "delete item", "DELETE FROM items WHERE id = $1", uuid.UUID(key)
        )
        if status.endswith(" 0"):
            raise NotFound(f"no {self.backend} item has this id")


class MySQLItems:
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
        rows = await self._pool.fetch("query", "SELECT VERSION(), UTC_TIMESTAMP(3)")
        version, time = rows[0]
        return QueryResult(database="mysql", server_version=str(version), server_time=_utc(time))

    @staticmethod
    def _item(row: Any) -> Item:
        return Item(id=row[0], name=row[1], quantity=int(row[2]), created_at=_utc(row[3]))

    async def create(self, item: ItemCreate) -> Item:
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
        key = _uuid_or_404(item_id, self.backend)
        await self._schema.ensure()
        affected = await self._pool.execute(
            "delete item", "DELETE FROM items WHERE id = %s", (key,)
        )
        if affected == 0:
            raise NotFound(f"no {self.backend} item has this id")


class MongoItems:
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
        oid = self._object_id(item_id)
        async with self._pool.operation("get item") as handle:
            doc = await handle.database[self.collection].find_one({"_id": oid})
        if doc is None:
            raise NotFound("no mongodb item has this id")
        return self._item(doc)

    async def list(self, *, limit: int = DEFAULT_PAGE) -> ItemList:
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
        oid = self._object_id(item_id)
        async with self._pool.operation("delete item") as handle:
            result = await handle.database[self.collection].delete_one({"_id": oid})
        if result.deleted_count == 0:
            raise NotFound("no mongodb item has this id")


# -- cache --------------------------------------------------------------------------------------

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
        name = self.redis_key(key)
        async with self._pool.operation("cache delete") as cluster:
            deleted = await cluster.delete(name)
        if not deleted:
            raise NotFound(f"cache key {key!r} does not exist")


# -- messaging --------------------------------------------------------------------------------

_QUEUE_NAME = re.compile(r"[A-Za-z0-9._\-]{1,200}")
MAX_CONSUME = 100
DEFAULT_CONSUME = 10


def _decode(body: bytes) -> dict[str, Any] | None:
    """A message body as the JSON object it must be, or None when it cannot be delivered."""
    if nesting_depth(body) > MAX_DEPTH:
        return None
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_not_json)
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict) or first_violation(payload) is not None:
        return None
    return payload


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _close_channel(channel: aiormq.abc.AbstractChannel) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2):
            await channel.close()


class PendingConsume:
    """Messages taken from a queue and not acknowledged yet (`QueueService.take`).

    `ack()` acknowledges them all, `release()` puts them back; either closes their channel, and
    so does the timer after `hold` seconds if neither came (the broker then requeues them)."""

    def __init__(
        self,
        result: ConsumeResult,
        channel: aiormq.abc.AbstractChannel | None,
        last_tag: int | None,
        pool: RabbitPool,
        handle: RabbitHandle | None,
        *,
        hold: float,
    ) -> None:
        self.result = result
        self._channel = channel
        self._last_tag = last_tag
        self._pool = pool
        self._handle = handle
        self._settled = False
        self._timer = asyncio.get_running_loop().call_later(hold, self._expire) if channel else None
        self._expiry: asyncio.Task[None] | None = None

    @property
    def settled(self) -> bool:
        return self._settled

    async def ack(self) -> None:
        """Acknowledge every message of the result (one `basic.ack`, multiple)."""
        await self._settle(ack=True)

    async def release(self) -> None:
        """Give the messages back to the queue (redelivered later, marked `redelivered`)."""
        await self._settle(ack=False)

    async def _settle(self, *, ack: bool) -> None:
        if self._settled:
            return
        self._settled = True
        if self._timer is not None:
            self._timer.cancel()
        channel, self._channel = self._channel, None
        if channel is None:
            return
        settled = False
        try:
            if self._last_tag is not None:
                async with self._pool.operation("acknowledge") as _:
                    if ack:
                        await channel.basic_ack(self._last_tag, multiple=True)
                    else:
                        await channel.basic_nack(self._last_tag, multiple=True, requeue=True)
            settled = True
        finally:
            if settled and self._handle is not None:
                await self._handle.give_back(channel)  # reused by the next consume
            else:
                await _close_channel(channel)  # the broker requeues what is unacknowledged

    def _expire(self) -> None:
        if not self._settled:
            log.warning("messages not settled in time: given back", queue=self.result.queue)
            self._expiry = asyncio.ensure_future(self.release())


def _check_queue(name: str) -> None:
    if not _QUEUE_NAME.fullmatch(name) or name in (".", "..") or name.startswith("amq."):
        raise InvalidInput("a queue name is 1-200 of A-Z a-z 0-9 . _ - (not amq.*, . or ..)")


class QueueService:
    """Publish JSON objects (confirmed; unroutable raises), consume, inspect a queue."""

    def __init__(self, pool: RabbitPool) -> None:
        self._pool = pool

    async def publish(
        self, queue: str, payload: dict[str, Any], *, declare: bool = True
    ) -> PublishResult:
        """Declare `queue` (durable) unless `declare` is False, publish `payload` persistent,
        and return once the broker confirmed it. A message no queue receives raises
        MessageUnroutable."""
        _check_queue(queue)
        if not isinstance(payload, dict):
            raise InvalidInput("a message is a JSON object")
        # What a consumer could not decode or answer with is refused now, not lost later.
        check_json(payload, "the message")
        message_id = str(uuid.uuid4())
        message = aio_pika.Message(
            json.dumps(payload, separators=(",", ":")).encode(),
            message_id=message_id,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        async with self._pool.channel("publish") as channel:
            if declare:
                # Declared on the underlying channel: aio-pika's robust channel keeps every queue
                # object declared through it (to redeclare after a reconnect), one more per
                # publish, never freed. The queue is durable: the broker keeps it anyway.
                underlay = await channel.get_underlay_channel()
                await underlay.queue_declare(queue, durable=True)
            try:
                await channel.default_exchange.publish(message, routing_key=queue, mandatory=True)
            except aio_pika.exceptions.DeliveryError as exc:
                raise MessageUnroutable(f"no queue {queue!r} received the message") from exc
        return PublishResult(queue=queue, message_id=message_id)

    async def consume(self, queue: str, *, max_messages: int = DEFAULT_CONSUME) -> ConsumeResult:
        """Up to `max_messages` messages waiting now, acknowledged once all were taken (see
        `take`, which leaves the acknowledgement to the caller)."""
        pending = await self.take(queue, max_messages=max_messages)
        await pending.ack()
        return pending.result

    async def take(self, queue: str, *, max_messages: int = DEFAULT_CONSUME) -> PendingConsume:
        """Up to `max_messages` messages waiting now (never waits for more), not acknowledged
        yet: the caller acks them once it has delivered them (an API: once its answer is sent),
        or releases them back to the queue. Unsettled after `operation_timeout`, they go back
        to the queue by themselves (their channel is closed), redelivered later.

        A message a client could not be given (not UTF-8 JSON, not an object, or a value the
        JSON rules refuse: devstack_client.jsonrules) is rejected without requeue at once, and
        counted in `rejected` and logged: reported, never silently dropped, and never in the
        way of the good messages after it."""
        _check_queue(queue)
        if not 1 <= max_messages <= MAX_CONSUME:
            raise InvalidInput(f"max must be between 1 and {MAX_CONSUME}")
        taken: list[ConsumedMessage] = []
        rejected = 0
        last_tag: int | None = None
        channel: aiormq.abc.AbstractChannel | None = None
        handle: RabbitHandle | None = None
        try:
            async with self._pool.operation("consume") as handle:
                # A channel held alone: the messages stay unacknowledged on it until settled,
                # and closing it gives back whatever was not acknowledged.
                channel = await handle.raw_channel()
                try:
                    await channel.queue_declare(queue, passive=True)
                except aiormq.exceptions.ChannelNotFoundEntity as exc:
                    raise NotFound(f"queue {queue!r} does not exist") from exc
                for _ in range(max_messages):
                    incoming = await channel.basic_get(queue, no_ack=False)
                    tag = getattr(incoming.delivery, "delivery_tag", None)
                    if tag is None:  # Basic.GetEmpty
                        break
                    payload = _decode(incoming.body)
                    if payload is None:
                        await channel.basic_reject(tag, requeue=False)
                        rejected += 1
                        log.warning(
                            "rejected a message that cannot be delivered as JSON",
                            queue=queue,
                            message_id=incoming.header.properties.message_id,
                        )
                        continue
                    last_tag = tag
                    taken.append(
                        ConsumedMessage(
                            message_id=incoming.header.properties.message_id,
                            payload=payload,
                            redelivered=bool(getattr(incoming.delivery, "redelivered", False)),
                        )
                    )
        except BaseException:
            if channel is not None:
                await _close_channel(channel)  # nothing was acknowledged: all go back
            raise
        result = ConsumeResult(queue=queue, messages=taken, rejected=rejected)
        return PendingConsume(
            result, channel, last_tag, self._pool, handle, hold=self._pool.operation_timeout
        )

    async def inspect(self, queue: str) -> QueueInfo:
        _check_queue(queue)
        async with self._pool.channel("inspect queue") as channel:
            # aio-pika's passive declare_queue() does not expose fresh counts: ask the broker.
            underlay = await channel.get_underlay_channel()
            try:
                result = await underlay.queue_declare(queue, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity as exc:
                raise NotFound(f"queue {queue!r} does not exist") from exc
        return QueueInfo(
            queue=queue,
            message_count=int(result.message_count or 0),
            consumer_count=int(result.consumer_count or 0),
        )

    async def delete(self, queue: str) -> None:
        _check_queue(queue)
        async with self._pool.channel("delete queue") as channel:
            await channel.queue_delete(queue)


# -- the Redis cluster --------------------------------------------------------------------------


def _address(raw: str) -> str:
    return raw.split("@", 1)[0]


class ClusterService:
    """Describe the Redis Cluster: its nodes, slot ranges, state, and each node's INFO."""

    def __init__(self, pool: RedisPool) -> None:
        self._pool = pool

    async def nodes(self) -> list[RedisNode]:
        """Every node the cluster knows, sorted by address."""
        async with self._pool.operation("cluster nodes") as cluster:
            raw = await cluster.cluster_nodes()
        return parse_cluster_nodes(raw)

    async def slots(self) -> ClusterSlots:
        nodes = await self.nodes()
        by_id = {n.id: n for n in nodes}
        replicas: dict[str, list[str]] = {}
        for node in nodes:
            if node.role == "replica" and node.master_id in by_id:
                replicas.setdefault(node.master_id, []).append(node.address)
        ranges = sorted(
            (
                SlotAssignment(
                    start=r.start,
                    end=r.end,
                    master=node.address,
                    replicas=sorted(replicas.get(node.id, [])),
                )
                for node in nodes
                if node.role == "master"
                for r in node.slots
            ),
            key=lambda a: a.start,
        )
        assigned = sum(r.end - r.start + 1 for r in ranges)
        return ClusterSlots(
            ranges=ranges,
            coverage=SlotCoverage(slots_assigned=assigned, all_covered=assigned == 16384),
        )

    async def info(self) -> ClusterInfo:
        async with self._pool.operation("cluster info") as cluster:
            info = await cluster.cluster_info()
        counters = {
            name: int(info.get(name, 0))
            for name in ClusterInfo.model_fields
            if name != "cluster_state"
        }
        return ClusterInfo(cluster_state=str(info.get("cluster_state", "fail")), **counters)

    async def node_info(self, node: str) -> NodeInfo:
        """INFO of one node named `host:port` as the cluster lists it; any other name is
        NotFound without a connection attempt."""
        listed = {n.address for n in await self.nodes()}
        if node not in listed:
            raise NotFound(f"the cluster has no node {node!r}")
        host, port = node.rsplit(":", 1)
        async with self._pool.operation("node info") as cluster:
            target = cluster.get_node(host=host, port=int(port))
            if target is None:
                raise DependencyUnavailable("redis", f"node {node} is not connected")
            info: dict[str, Any] = await cluster.info(target_nodes=target)
            keys = await cluster.dbsize(target_nodes=target)
        role = str(info.get("role", "master"))
        return NodeInfo(
            node=node,
            role="replica" if role in ("slave", "replica") else "master",
            redis_version=str(info.get("redis_version", "")),
            uptime_seconds=int(info.get("uptime_in_seconds", 0)),
            connected_clients=int(info.get("connected_clients", 0)),
            used_memory_bytes=int(info.get("used_memory", 0)),
            keys=int(keys),
        )


def parse_cluster_nodes(raw: Any) -> list[RedisNode]:
    """CLUSTER NODES, as redis-py parses it (address -> fields) or as raw text lines."""
    if isinstance(raw, bytes):
        raw = raw.decode()
    if isinstance(raw, str):
        raw = _parse_cluster_nodes_text(raw)
    if not isinstance(raw, dict):
        raise DependencyUnavailable("redis", "unexpected CLUSTER NODES answer")
    nodes: list[RedisNode] = []
    for address, fields in raw.items():
        flags = [f for f in str(fields.get("flags", "")).split(",") if f]
        slots = sorted(
            (
                SlotRange(start=int(pair[0]), end=int(pair[-1]))
                for pair in fields.get("slots") or []
                if pair and not str(pair[0]).startswith("[")
            ),
            key=lambda s: s.start,
        )
        master_id = str(fields.get("master_id") or "-")
        failing = "fail" in flags or "fail?" in flags
        nodes.append(
            RedisNode(
                id=str(fields.get("node_id", "")),
                address=_address(str(address)),
                role="master" if "master" in flags else "replica",
                master_id=None if master_id == "-" else master_id,
                connected=bool(fields.get("connected")) and not failing,
                slots=slots,
            )
        )
    return sorted(nodes, key=lambda n: n.address)


def _parse_cluster_nodes_text(raw: str) -> dict[str, dict[str, Any]]:
    """`<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot> ...` lines."""
    parsed: dict[str, dict[str, Any]] = {}
    for line in raw.strip().splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        parsed[_address(parts[1])] = {
            "node_id": parts[0],
            "flags": parts[2],
            "master_id": parts[3],
            "connected": parts[7] == "connected",
            "slots": [spec.split("-") for spec in parts[8:] if not spec.startswith("[")],
        }
    return parsed


# A redis-py type alias kept for callers that want the raw client.
Cluster = RedisCluster
