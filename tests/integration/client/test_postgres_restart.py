"""PostgreSQL restarted under a stream of queries: calls fail fast during the outage, and
succeed again within 5 s after the server is back, without restarting anything."""

from __future__ import annotations

import asyncio
import functools
import time

import asyncpg

from devstack_client import DependencyError, DevStackClient
from tests.support import StackUnderTest, client_settings, wait_for


async def server_accepts(stack: StackUnderTest) -> bool:
    try:
        conn = await stack.postgres(timeout=2)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False
    await conn.close()
    return True


async def test_postgres_restart_under_load(stack: StackUnderTest) -> None:
    settings = client_settings(stack, operation_timeout=3.0, connect_timeout=2.0)
    async with DevStackClient(settings, dependencies=["postgres"]) as client:
        repo = client.items("postgres")
        results: list[tuple[float, float, bool]] = []  # (started, duration, ok)
        stop = asyncio.Event()

        async def stream() -> None:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    await repo.query()
                    ok = True
                except DependencyError:
                    ok = False
                results.append((started, time.monotonic() - started, ok))
                await asyncio.sleep(0.05)  # a steady stream, not a busy loop

        async def flowing() -> bool:
            return sum(ok for *_, ok in results) >= 8

        workers = [asyncio.create_task(stream()) for _ in range(4)]
        try:
            await wait_for(flowing, 30, "queries to succeed before the outage", interval=0.1)
            stopped = await asyncio.to_thread(stack.cli, "stop", "postgres")
            assert stopped.returncode == 0, stopped.stderr
            outage_started = time.monotonic()
            await asyncio.sleep(2)  # time must pass: the outage lasts, calls meanwhile fail fast
        finally:
            started = await asyncio.to_thread(stack.cli, "start", "postgres")
        assert started.returncode == 0, started.stderr
        accepts = functools.partial(server_accepts, stack)
        await wait_for(accepts, 60, "PostgreSQL to accept connections again", interval=0.1)
        back = time.monotonic()
        await asyncio.sleep(6)  # time must pass: every call of the 5 s after recovery is judged
        stop.set()
        await asyncio.gather(*workers)

    during = [r for r in results if outage_started + 0.5 < r[0] < back - 1]
    failed = [r for r in during if not r[2]]
    assert failed, "calls during the outage must fail, not pretend"
    assert max(d for _, d, _ in failed) < 2.5, "failures are fast (no hang)"
    recovered = min(s + d for s, d, ok in results if ok and s + d > back)
    assert recovered - back < 5.0, f"recovered {recovered - back:.1f}s after the server was back"
    after = [r for r in results if r[0] > back + 5]
    assert after, "calls were made after recovery"
    assert all(ok for _, _, ok in after), "every call succeeds after recovery"
