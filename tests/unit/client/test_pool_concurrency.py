"""`ManagedPool.operation` under concurrency, without servers.

A pool with `max_concurrency` (Redis: its client raises instead of waiting when it runs out of
connections) lets that many operations run at once; the others wait for a slot within the same
operation timeout, and only a wait that really exceeds it is a DependencyTimeout."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from pydantic import SecretStr

from devstack_client import ClientSettings, DependencyTimeout
from devstack_client.pools import MongoPool, MySQLPool, PostgresPool, RabbitPool, RedisPool
from devstack_client.secretstore import SecretStore
from devstack_client.tls import TrustStore
from devstack_client.vault import VaultSecret


@pytest.fixture(autouse=True)
def no_devstack_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("DEVSTACK_"):
            monkeypatch.delenv(name)


class _Secrets:
    async def get(self, path: str) -> VaultSecret:
        return VaultSecret(path=path, data={"password": "x"}, version=1)


class _FakeRedisPool(RedisPool):
    async def _build(self, secret: VaultSecret) -> Any:
        return object()

    async def _close_client(self, client: Any) -> None:
        pass


def redis_pool(**settings: Any) -> RedisPool:
    return _FakeRedisPool(
        ClientSettings(vault_token=SecretStr("s.test"), **settings),
        cast(SecretStore, _Secrets()),
        cast(TrustStore, None),
    )


async def test_redis_operations_beyond_the_pool_size_wait_and_all_succeed() -> None:
    pool = redis_pool(pool_max_size=3, operation_timeout=5)
    running, peak = 0, 0

    async def one(i: int) -> int:
        nonlocal running, peak
        async with pool.operation("test"):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)  # the operation holds its slot a moment: the rest queue
            running -= 1
        return i

    assert await asyncio.gather(*(one(i) for i in range(50))) == list(range(50))
    assert peak == 3


async def test_a_wait_for_a_slot_longer_than_the_timeout_is_a_dependency_timeout() -> None:
    pool = redis_pool(pool_max_size=1, operation_timeout=0.2)
    assert pool._slots is not None
    async with pool._slots:  # every slot busy (an operation running longer than we wait)
        with pytest.raises(DependencyTimeout, match=r"waiter timed out after 0\.2s"):
            async with pool.operation("waiter"):
                pass
    async with pool.operation("after"):  # the slot is free again, and none leaked
        pass
    assert not pool._slots.locked()


async def test_a_failed_operation_gives_its_slot_back() -> None:
    pool = redis_pool(pool_max_size=1, operation_timeout=1)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            async with pool.operation("boom"):
                raise RuntimeError("boom")
    async with pool.operation("after"):
        pass


def test_only_redis_is_bounded_the_other_clients_queue_callers_themselves() -> None:
    assert redis_pool(pool_max_size=7).max_concurrency == 7
    for cls in (PostgresPool, MySQLPool, MongoPool, RabbitPool):
        assert cls.max_concurrency is None
