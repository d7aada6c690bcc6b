"""Every use case against the real servers, through one client made the way an app makes it."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import datetime as dt
import gc
import os
import signal

import aio_pika.abc
import pytest
from redis.asyncio.connection import SSLConnection
from redis.crc import key_slot

from devstack_client import (
    BACKENDS,
    Backend,
    DependencyError,
    DependencyTimeout,
    DevStackClient,
    InvalidInput,
    ItemCreate,
    MessageUnroutable,
    NotFound,
)
from tests.support import StackUnderTest, client_settings, wait_for


@pytest.mark.parametrize("backend", BACKENDS)
async def test_query_and_item_crud(client: DevStackClient, backend: Backend) -> None:
    repo = client.items(backend)
    result = await repo.query()
    assert result.database == backend
    assert result.server_version
    assert abs(result.server_time - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    first = await repo.create(ItemCreate(name="first", quantity=3))
    second = await repo.create(ItemCreate(name="second"))
    assert (await repo.get(first.id)) == first
    newest = (await repo.list(limit=2)).items
    # Newest first; timestamps have millisecond precision (all three backends store that), so
    # two items created in one millisecond are ordered by id, larger first.
    expected = sorted([first, second], key=lambda i: (i.created_at, i.id), reverse=True)
    assert [i.id for i in newest] == [i.id for i in expected], "newest first"
    assert second.created_at >= first.created_at
    await repo.delete(first.id)
    with pytest.raises(NotFound):
        await repo.get(first.id)
    with pytest.raises(NotFound):
        await repo.delete(first.id)
    with pytest.raises(NotFound):
        await repo.get("not-an-id-that-could-exist")
    await repo.delete(second.id)


async def test_every_database_session_is_tls(client: DevStackClient) -> None:
    assert await client.postgres.fetchval(
        "tls", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    )
    (row,) = await client.mysql.fetch("tls", "SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    assert row[1]
    async with client.mongodb.operation("tls") as handle:
        assert handle.client.options.pool_options._ssl_context is not None


def keys_on_each_master(prefix: str, ranges: list[tuple[int, int]]) -> list[str]:
    found: dict[int, str] = {}
    i = 0
    while len(found) < len(ranges):
        key = f"k{i}"
        slot = key_slot((prefix + key).encode())
        owner = next(n for n, (start, end) in enumerate(ranges) if start <= slot <= end)
        found.setdefault(owner, key)
        i += 1
    return [found[n] for n in range(len(ranges))]


async def test_cache_keys_on_every_master(client: DevStackClient, stack: StackUnderTest) -> None:
    slots = await client.cluster.slots()
    ranges = [(r.start, r.end) for r in slots.ranges]
    keys = keys_on_each_master(client.cache.prefix, ranges)
    owners = set()
    for key in keys:
        entry, created = await client.cache.put(key, f"value of {key}", ttl_seconds=60)
        assert created
        assert entry.ttl_seconds == 60
        _, created_again = await client.cache.put(key, f"value of {key}", ttl_seconds=60)
        assert not created_again
        got = await client.cache.get(key)
        assert got.value == f"value of {key}"
        assert 0 < (got.ttl_seconds or 0) <= 60
        owners.add(await client.cache.node_for(key))
        await client.cache.delete(key)
        with pytest.raises(NotFound):
            await client.cache.get(key)
    tls_ports = {stack.port("redis", "tls", i) for i in range(3)}
    assert owners == {f"127.0.0.1:{port}" for port in tls_ports}, "one key on each master"
    entry, _ = await client.cache.put("forever", "v")
    assert (await client.cache.get("forever")).ttl_seconds is None
    await client.cache.delete("forever")
    with pytest.raises(InvalidInput):
        await client.cache.get("bad key")


async def test_cluster_description(client: DevStackClient, stack: StackUnderTest) -> None:
    tls_addresses = sorted(f"127.0.0.1:{stack.port('redis', 'tls', i)}" for i in range(3))
    nodes = await client.cluster.nodes()
    assert [n.address for n in nodes] == tls_addresses, "the cluster announces its TLS ports"
    assert [n.role for n in nodes] == ["master"] * 3
    assert all(n.connected for n in nodes)
    assert [n.master_id for n in nodes] == [None] * 3
    slots = await client.cluster.slots()
    assert slots.coverage.all_covered
    assert slots.coverage.slots_assigned == 16384
    assert [r.start for r in slots.ranges] == [0, 5461, 10923]
    assert sorted(r.master for r in slots.ranges) == tls_addresses
    info = await client.cluster.info()
    assert info.cluster_state == "ok"
    assert info.cluster_size == 3
    assert info.cluster_known_nodes == 3
    for address in tls_addresses:
        node = await client.cluster.node_info(address)
        assert node.node == address
        assert node.role == "master"
        assert node.redis_version.startswith("7.")
        assert node.uptime_seconds >= 0
    with pytest.raises(NotFound):
        await client.cluster.node_info("10.0.0.1:6379")


async def test_publish_consume_inspect(client: DevStackClient) -> None:
    queue = "devstack.client.test"
    try:
        published = await client.queues.publish(queue, {"order": 1})
        await client.queues.publish(queue, {"order": 2})
        info = await client.queues.inspect(queue)
        assert (info.queue, info.message_count) == (queue, 2)
        taken = await client.queues.consume(queue, max_messages=10)
        assert [m.payload for m in taken.messages] == [{"order": 1}, {"order": 2}]
        assert taken.messages[0].message_id == published.message_id
        assert taken.rejected == 0
        assert (await client.queues.consume(queue)).messages == []
    finally:
        await client.queues.delete(queue)


async def test_unroutable_and_missing_queues(client: DevStackClient) -> None:
    with pytest.raises(MessageUnroutable):
        await client.queues.publish("devstack.client.nobody", {"x": 1}, declare=False)
    with pytest.raises(NotFound):
        await client.queues.inspect("devstack.client.nobody")
    with pytest.raises(NotFound):
        await client.queues.consume("devstack.client.nobody")
    # The broker closed the channel on that 404: the pool reopens it, nothing is poisoned.
    for _ in range(10):
        with pytest.raises(NotFound):
            await client.queues.inspect("devstack.client.nobody")
    await client.queues.publish("devstack.client.after", {"ok": True})
    await client.queues.delete("devstack.client.after")


async def test_secrets_are_masked(client: DevStackClient) -> None:
    view = await client.vault_secrets.read("postgres")
    assert view.path == "secret/postgres"
    assert view.version >= 1
    assert view.data["password"] == "********"
    assert view.masked_keys == ["password"]
    assert view.data["user"] == "devstack"
    assert view.data["tls_enabled"] == "true"
    value = await client.vault_secrets.read_key("redis", "password")
    assert value.masked
    assert value.value == "********"
    for hidden in ("admin/postgres", "vault", "pgbouncer"):
        with pytest.raises(NotFound):
            await client.vault_secrets.read(hidden)


async def test_health_and_metrics(client: DevStackClient) -> None:
    report = await client.health()
    assert report.status == "healthy", report
    assert set(report.checks) == {"vault", "postgres", "mysql", "mongodb", "redis", "rabbitmq"}
    assert all(c.error is None for c in report.checks.values())
    text = client.metrics.render()[0].decode()
    assert 'devstack_vault_logins_total{result="success"} 1.0' in text
    assert 'devstack_dependency_health{dependency="redis"} 1.0' in text
    assert 'devstack_pool_connections{pool="postgres",state="open"}' in text
    token_ttl = client.metrics.registry.get_sample_value("devstack_vault_token_ttl_seconds")
    assert token_ttl is not None
    assert token_ttl > 3000


async def test_health_makes_no_vault_call(client: DevStackClient) -> None:
    before = client.vault.requests
    for _ in range(20):
        await client.health()
        await client.cache.put("no-vault", "x", ttl_seconds=5)
        await client.items("postgres").query()
    assert client.vault.requests == before


async def test_a_value_the_server_refuses_is_invalid_input_not_an_outage(
    client: DevStackClient,
) -> None:
    """PostgreSQL text cannot hold U+0000: that is the request's fault (422), not a 503."""
    refused = ItemCreate.model_construct(name="nul\x00inside", quantity=0)
    with pytest.raises(InvalidInput, match="postgres cannot store this value"):
        await client.items("postgres").create(refused)
    assert (await client.health(["postgres"])).status == "healthy"


async def test_redis_connections_share_one_ssl_context(client: DevStackClient) -> None:
    """redis-py would build (and load the system CA store into) a context per connection."""
    await asyncio.gather(
        *(client.cache.put(f"shared-ctx-{i}", "v", ttl_seconds=30) for i in range(30))
    )
    async with client.redis.operation("inspect") as cluster:
        connections = [c for node in cluster.get_nodes() for c in node._connections]
        contexts = {id(c.ssl_context.get()) for c in connections if isinstance(c, SSLConnection)}
    assert len(connections) >= 3
    assert len(contexts) == 1
    assert {type(c).__name__ for c in connections} == {"SharedContextSSLConnection"}


async def test_tls_connections_read_into_the_configured_buffer(client: DevStackClient) -> None:
    """asyncio's default is a 256 KiB buffer per TLS connection; the client sets 16 KiB, and
    values far larger than one buffer still make the round trip on every kind of connection."""
    big = "".join(chr(0x41 + i % 26) for i in range(600_000))  # 600 KB, about 37 buffers
    entry, _ = await client.cache.put("tls-buffer-big", big, ttl_seconds=60)
    assert (await client.cache.get("tls-buffer-big")).value == big == entry.value
    assert await client.postgres.fetchval("big", "SELECT repeat('x', 600000)") == "x" * 600_000
    rows = await client.mysql.fetch("big", "SELECT REPEAT('y', 600000)")
    assert rows[0][0] == "y" * 600_000
    await client.queues.publish("devstack.client.big", {"x": big})
    try:
        assert [m.payload for m in (await client.queues.consume("devstack.client.big")).messages]
    finally:
        await client.queues.delete("devstack.client.big")
    await asyncio.gather(*(client.health() for _ in range(8)))  # every pool has connections
    protocols = [o for o in gc.get_objects() if isinstance(o, asyncio.sslproto.SSLProtocol)]
    assert len(protocols) >= 6  # Vault is plain HTTP; every other server is TLS
    buffers = {len(p._ssl_buffer) for p in protocols}  # type: ignore[attr-defined]  # CPython's private buffer
    assert buffers == {16 * 1024}  # tune_process()'s (the client fixture applies it)


async def test_every_pool_but_mongodbs_connects_with_one_ssl_context(
    client: DevStackClient,
) -> None:
    """One context for PostgreSQL, MariaDB, Redis (3 masters) and RabbitMQ: the client's. PyMongo
    builds its own from the CA file (it takes no context)."""
    await asyncio.gather(*(client.health() for _ in range(8)))  # every pool has connections
    context = client.trust.ssl_context()
    protocols = [o for o in gc.get_objects() if isinstance(o, asyncio.sslproto.SSLProtocol)]
    ours = [p for p in protocols if p._sslcontext is context]
    drivers = {type(p._app_protocol).__module__.split(".")[0] for p in ours}
    assert len(ours) >= 6  # postgres, mysql, 3 Redis masters, rabbitmq
    assert {"asyncpg", "asyncmy", "asyncio"} <= drivers  # redis-py and aiormq use asyncio streams


async def test_publish_and_consume_keep_no_object_per_call(client: DevStackClient) -> None:
    """aio-pika's robust channel keeps every queue declared through it; the library must not
    declare through it, or each publish would hold memory for the life of the process."""
    queue = "devstack.client.noleak"

    def queue_objects() -> int:
        return sum(isinstance(o, aio_pika.abc.AbstractQueue) for o in gc.get_objects())

    try:
        await client.queues.publish(queue, {"n": 0})
        await client.queues.consume(queue)
        gc.collect()
        before = queue_objects()
        for n in range(200):
            await client.queues.publish(queue, {"n": n})
            if n % 10 == 0:
                await client.queues.consume(queue, max_messages=100)
        gc.collect()
        assert queue_objects() - before < 10
        assert (await client.queues.inspect(queue)).message_count == 9  # 191..199 not consumed
    finally:
        await client.queues.delete(queue)


async def test_a_frozen_redis_master_times_out_at_the_operation_deadline(
    stack: StackUnderTest,
) -> None:
    """redis-py is given no socket timeout of its own (each command would run in a task of its
    own, `asyncio.wait_for`): the operation's deadline is what bounds a master that takes the
    command and never answers. SIGSTOP it: the read is a 504 within the deadline, not a hang,
    and the same client works again once the master runs."""
    settings = client_settings(stack, operation_timeout=1.0)
    async with DevStackClient(settings) as devstack:
        await devstack.cache.put("frozen", "v", ttl_seconds=60)
        owner = await devstack.cache.node_for("frozen")
        tls_ports = [stack.port("redis", "tls", i) for i in range(3)]
        instance = [f"127.0.0.1:{port}" for port in tls_ports].index(owner)
        pid = stack.processes()[f"redis-{instance + 1}"]["pid"]
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(DependencyTimeout):
                # 30 s: far beyond the 1 s deadline, so only a read left to hang fails here
                await asyncio.wait_for(devstack.cache.get("frozen"), 30)
        finally:
            os.kill(pid, signal.SIGCONT)

        async def read_again() -> str | None:
            try:
                return (await devstack.cache.get("frozen")).value
            except DependencyError:
                return None

        assert await wait_for(read_again, 30, "the master to answer again") == "v"
        await devstack.cache.delete("frozen")
