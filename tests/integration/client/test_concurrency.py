"""Many operations at once on a healthy stack: callers wait for a connection, none fails.

The Redis Cluster client raises `MaxConnectionsError` once a node has `pool_max_size`
connections, instead of waiting, and its async pipeline breaks under load (an AttributeError
from inside redis-py); `RedisPool` bounds operations to the pool's size and the cache reads
value and TTL with one script, so 200 concurrent callers all get their answer. The other pools
(asyncpg, asyncmy, PyMongo, aio-pika's channel pool) queue callers by themselves: checked too."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from devstack_client import DevStackClient, ItemRepository, NotFound, QueryResult
from tests.support import StackUnderTest, client_settings

pytestmark = pytest.mark.integration

CONCURRENCY = 200


@pytest.fixture(scope="module")
async def client(stack: StackUnderTest) -> AsyncIterator[DevStackClient]:
    """What is proven here is that callers queue and all succeed, not how fast: the timeouts
    are far above what any machine load could take (200 callers share 4 connections)."""
    settings = client_settings(stack, operation_timeout=120, health_timeout=60)
    async with DevStackClient(settings) as patient:
        yield patient


async def all_succeed(name: str, make: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """Run `make(i)` for 200 i at once; every result or an error summary in the message."""
    results = await asyncio.gather(*(make(i) for i in range(CONCURRENCY)), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    kinds = collections.Counter(f"{type(r).__name__}: {r}" for r in failures)
    assert not failures, f"{len(failures)} of {CONCURRENCY} concurrent {name} failed: {kinds}"
    return results


async def test_concurrent_cache_gets_of_a_missing_key_are_all_not_found(
    client: DevStackClient,
) -> None:
    async def get_missing(_i: int) -> str:
        try:
            await client.cache.get("concurrency-missing")
        except NotFound:
            return "not found"
        return "found"

    assert set(await all_succeed("cache gets (missing)", get_missing)) == {"not found"}


async def test_concurrent_cache_puts_and_gets_on_every_master(client: DevStackClient) -> None:
    keys = [f"concurrency-{n}" for n in range(12)]  # enough to land on each of the 3 masters
    masters = {await client.cache.node_for(k) for k in keys}
    assert len(masters) == 3, masters

    async def put(i: int) -> bool:
        _, created = await client.cache.put(keys[i % len(keys)], f"v{i}", ttl_seconds=60)
        return created

    await all_succeed("cache puts", put)

    async def get(i: int) -> tuple[str, int | None]:
        entry = await client.cache.get(keys[i % len(keys)])
        return entry.value, entry.ttl_seconds

    for value, ttl in await all_succeed("cache gets", get):
        assert value.startswith("v")
        assert ttl is not None
        assert 0 < ttl <= 60

    async def mixed(i: int) -> object:
        key = keys[i % len(keys)]
        return await (client.cache.put(key, "w") if i % 2 else client.cache.get(key))

    await all_succeed("cache puts and gets", mixed)
    for key in keys:
        await client.cache.delete(key)


async def test_concurrent_cluster_info_and_redis_health(client: DevStackClient) -> None:
    for info in await all_succeed("cluster info", lambda _i: client.cluster.info()):
        assert info.cluster_state == "ok"
    for report in await all_succeed("redis health", lambda _i: client.health(["redis"])):
        assert report.http_status == 200, report


async def test_every_other_pool_waits_for_a_connection(client: DevStackClient) -> None:
    for backend in ("postgres", "mysql", "mongodb"):
        repo = client.items(backend)

        async def query(_i: int, repo: ItemRepository = repo) -> QueryResult:
            return await repo.query()

        await all_succeed(f"{backend} queries", query)
    queue = "devstack-client-concurrency"
    await all_succeed("publishes", lambda i: client.queues.publish(queue, {"i": i}))
    taken = 0
    while taken < CONCURRENCY:
        batch = await client.queues.consume(queue, max_messages=100)
        assert batch.messages, f"only {taken} of {CONCURRENCY} messages came back"
        taken += len(batch.messages)
    assert taken == CONCURRENCY


async def test_concurrent_health_of_everything(client: DevStackClient) -> None:
    reports = await all_succeed("health checks", lambda _i: client.health())
    unhealthy = collections.Counter(
        name
        for report in reports
        for name, check in report.checks.items()
        if check.status != "healthy"
    )
    assert not unhealthy, unhealthy
