"""A token with a 3 s TTL and a 12 s max TTL: the client keeps working for 36 s (three times
the max TTL), renewing and logging in again on schedule, and no call fails."""

from __future__ import annotations

import asyncio
import time

from devstack_client import DevStackClient
from tests.support import AppRole, StackUnderTest, approle_settings

RUN_FOR = 36.0  # seconds: three times the max TTL


async def test_short_ttl_token_never_fails_a_call(
    stack: StackUnderTest, short_ttl_approle: AppRole
) -> None:
    settings = approle_settings(stack, short_ttl_approle, secret_ttl=2.0)
    async with DevStackClient(settings, dependencies=["postgres", "redis"]) as client:
        ttl = client.vault.token_ttl()
        assert ttl is not None
        assert ttl <= 3
        calls = failures = 0
        deadline = time.monotonic() + RUN_FOR
        while time.monotonic() < deadline:
            try:
                # A Vault read with the current token, a database query and a cache write.
                await client.secrets.refresh("postgres")
                await client.items("postgres").query()
                await client.cache.put("token-lifecycle", "ok", ttl_seconds=10)
            except Exception:
                failures += 1
            calls += 1
            await asyncio.sleep(0.25)  # a steady pace for RUN_FOR seconds: the tokens must expire
        health = await client.health()
        assert failures == 0, f"{failures} of {calls} rounds failed"
        assert client.vault.logins >= 3, "re-logged in before each max TTL"
        assert client.vault.renewals >= 6, "renewed at 2/3 of each TTL"
        assert health.checks["vault"].status == "healthy"
        assert client.secrets.stale_paths() == []
