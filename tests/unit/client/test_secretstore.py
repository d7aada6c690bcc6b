"""The secret cache: hits within the TTL, one read per path at a time, stale through outages,
subscribers told about new versions."""

from __future__ import annotations

import asyncio

import pytest

from devstack_client import DependencyUnavailable, NotFound, SecretStore, VaultSecret
from devstack_client.metrics import Metrics
from tests.support import wait_for


class FakeVault:
    def __init__(self) -> None:
        self.version = 1
        self.reads = 0
        self.down = False
        self.delay = 0.0

    async def read(self, path: str) -> VaultSecret | None:
        self.reads += 1
        if self.delay:
            await asyncio.sleep(self.delay)  # a slow Vault: the time is the point
        if self.down:
            raise DependencyUnavailable("vault", "unreachable")
        if path == "missing":
            return None
        return VaultSecret(path, {"user": "u", "password": f"pw{self.version}"}, self.version)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def vault() -> FakeVault:
    return FakeVault()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def store_for(vault: FakeVault, clock: Clock, metrics: Metrics | None = None) -> SecretStore:
    return SecretStore(vault.read, ttl=60, clock=clock, metrics=metrics)


async def test_reads_within_the_ttl_hit_the_cache(vault: FakeVault, clock: Clock) -> None:
    metrics = Metrics()
    store = store_for(vault, clock, metrics)
    first = await store.get("postgres")
    for _ in range(100):
        assert await store.get("postgres") is first
    assert vault.reads == 1
    assert (store.misses, store.hits) == (1, 100)
    assert metrics.registry.get_sample_value(
        "devstack_secret_cache_requests_total", {"result": "hit"}
    ) == pytest.approx(100)


async def test_an_expired_entry_is_read_again(vault: FakeVault, clock: Clock) -> None:
    store = store_for(vault, clock)
    await store.get("postgres")
    clock.now += 61
    await store.get("postgres")
    assert vault.reads == 2


async def test_concurrent_misses_make_one_read(vault: FakeVault, clock: Clock) -> None:
    vault.delay = 0.05
    store = store_for(vault, clock)
    results = await asyncio.gather(*(store.get("postgres") for _ in range(20)))
    assert vault.reads == 1
    assert all(r is results[0] for r in results)


async def test_the_last_good_value_is_served_while_vault_is_down(
    vault: FakeVault, clock: Clock
) -> None:
    store = store_for(vault, clock)
    good = await store.get("postgres")
    vault.down = True
    clock.now += 120
    assert await store.get("postgres") is good
    assert store.stale_paths() == ["postgres"]
    assert store.stale_served == 1
    vault.down = False
    await store.get("postgres")
    assert store.stale_paths() == []


async def test_without_a_cached_value_an_outage_raises(vault: FakeVault, clock: Clock) -> None:
    vault.down = True
    with pytest.raises(DependencyUnavailable):
        await store_for(vault, clock).get("postgres")


async def test_a_missing_secret_is_not_found(vault: FakeVault, clock: Clock) -> None:
    with pytest.raises(NotFound):
        await store_for(vault, clock).get("missing")


async def test_subscribers_hear_about_new_versions_only(vault: FakeVault, clock: Clock) -> None:
    store = store_for(vault, clock)
    seen: list[int] = []

    async def on_change(secret: VaultSecret) -> None:
        seen.append(secret.version)

    unsubscribe = store.subscribe("postgres", on_change)
    await store.get("postgres")
    await store.refresh("postgres")
    assert seen == [], "the same version is no news"
    vault.version = 2
    await store.refresh("postgres")
    assert seen == [2]
    unsubscribe()
    vault.version = 3
    await store.refresh("postgres")
    assert seen == [2]


async def test_refresh_with_max_age_skips_a_recent_read(vault: FakeVault, clock: Clock) -> None:
    store = store_for(vault, clock)
    await store.get("postgres")
    await store.refresh("postgres", max_age=2.0)
    assert vault.reads == 1
    clock.now += 3
    await store.refresh("postgres", max_age=2.0)
    assert vault.reads == 2


async def test_the_background_refresher_keeps_entries_fresh_and_notices_versions() -> None:
    vault = FakeVault()
    store = SecretStore(vault.read, ttl=0.2)
    changed = asyncio.Event()

    async def on_change(_secret: VaultSecret) -> None:
        changed.set()

    store.subscribe("postgres", on_change)
    await store.get("postgres")
    store.start()
    try:
        vault.version = 2
        await asyncio.wait_for(changed.wait(), timeout=2)
        peeked = store.peek("postgres")
        assert peeked is not None
        assert peeked.version == 2
        vault.down = True

        async def stale() -> list[str]:
            return store.stale_paths()

        assert await wait_for(stale, 2, "the secret to be marked stale", 0.05) == ["postgres"]
    finally:
        await store.aclose()


def test_a_secret_repr_masks_its_password() -> None:
    secret = VaultSecret("postgres", {"user": "u", "password": "hunter2-secret"}, 3)
    assert "hunter2-secret" not in repr(secret)
    assert secret.masked() == {"user": "u", "password": "********"}
