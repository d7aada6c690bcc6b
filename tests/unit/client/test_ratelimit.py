"""The Redis-counted rate limiter: fixed windows aligned to the epoch, one key per client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import cast

import pytest

from devstack_client import ConfigurationError, DependencyUnavailable, RedisRateLimiter
from devstack_client.pools import RedisPool
from devstack_client.ratelimit import window_position


class FakeCluster:
    """Runs the limiter's script the way Redis would: INCR the key, then EXPIRE it."""

    def __init__(self) -> None:
        self.store: dict[str, int] = {}
        self.expiries: dict[str, int] = {}

    async def eval(self, script: str, numkeys: int, key: str, seconds: int) -> int:
        assert numkeys == 1
        assert "INCR" in script
        assert "EXPIRE" in script
        self.store[key] = self.store.get(key, 0) + 1
        self.expiries[key] = seconds
        return self.store[key]


class FakePool:
    """What RedisRateLimiter uses of RedisPool: `operation()`."""

    def __init__(self, down: bool = False) -> None:
        self.cluster = FakeCluster()
        self.down = down

    @contextlib.asynccontextmanager
    async def operation(self, what: str) -> AsyncIterator[FakeCluster]:
        if self.down:
            raise DependencyUnavailable("redis", f"{what}: connection refused")
        yield self.cluster


def as_pool(fake: FakePool) -> RedisPool:
    return cast(RedisPool, fake)  # it has all the limiter uses of a RedisPool


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(pool: FakePool, clock: Clock, limit: int = 3) -> RedisRateLimiter:
    return RedisRateLimiter(as_pool(pool), limit=limit, window_seconds=60, clock=clock)


def test_window_position() -> None:
    assert window_position(120.0, 60) == (2, 60)
    assert window_position(150.2, 60) == (2, 30)  # 29.8 s left: rounded up
    assert window_position(179.9, 60) == (2, 1)  # never 0


async def test_counts_per_client_within_a_window() -> None:
    pool, clock = FakePool(), Clock(1_000_020.0)
    rl = limiter(pool, clock)
    decisions = [await rl.hit("10.0.0.1") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert {d.reset_seconds for d in decisions} == {60 - (1_000_020 % 60)}
    assert (await rl.hit("10.0.0.2")).allowed  # another client, its own budget
    key = f"devstack:ratelimit:10.0.0.1:{1_000_020 // 60}"
    assert pool.cluster.store[key] == 4
    assert pool.cluster.expiries[key] == 61  # outlives the window a little


async def test_a_new_window_starts_afresh() -> None:
    pool, clock = FakePool(), Clock(600.0)
    rl = limiter(pool, clock, limit=1)
    assert (await rl.hit("c")).allowed
    assert not (await rl.hit("c")).allowed
    clock.now = 660.0
    assert (await rl.hit("c")).allowed


async def test_two_limiters_on_one_redis_share_the_budget() -> None:
    pool, clock = FakePool(), Clock(600.0)
    a, b = limiter(pool, clock, limit=2), limiter(pool, clock, limit=2)
    assert (await a.hit("c")).allowed
    assert (await b.hit("c")).allowed
    assert not (await a.hit("c")).allowed


async def test_redis_down_raises_the_library_error() -> None:
    rl = limiter(FakePool(down=True), Clock(0.0))
    with pytest.raises(DependencyUnavailable):
        await rl.hit("c")


def test_bad_configuration() -> None:
    with pytest.raises(ConfigurationError):
        RedisRateLimiter(as_pool(FakePool()), limit=0)
    with pytest.raises(ConfigurationError):
        RedisRateLimiter(as_pool(FakePool()), limit=1, window_seconds=0)
