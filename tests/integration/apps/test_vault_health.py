"""Vault stopped under both apps: the very next /health/all says Vault is degraded (not minutes
later, at the next secret refresh), the example routes keep working on cached credentials, and
health is back to 200 once Vault is."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.parity.compare import describe, schema_errors
from tests.parity.implementations import having
from tests.support import StackUnderTest, wait_for

pytestmark = pytest.mark.integration


async def test_vault_down_is_reported_by_the_next_health_check(
    apps: dict[str, httpx.AsyncClient], stack: StackUnderTest
) -> None:
    for client in having(apps, "vault-health-next-check").values():
        response = await client.get("/health/all")
        assert response.status_code == 200, describe(response)
    stopped = await asyncio.to_thread(stack.cli, "stop", "vault")
    assert stopped.returncode == 0, stopped.stderr
    try:
        for name, client in having(apps, "vault-health-next-check").items():
            response = await client.get("/health/all")  # the first one after the stop
            assert response.status_code == 503, (name, describe(response))
            assert int(response.headers["retry-after"]) >= 1
            report = response.json()
            assert not schema_errors(report, "HealthReport"), schema_errors(report, "HealthReport")
            vault = report["checks"]["vault"]
            assert (vault["status"], vault["error"]) == ("degraded", "unavailable"), (name, vault)
            assert report["status"] == "degraded", (name, report)
            others = {k: v["status"] for k, v in report["checks"].items() if k != "vault"}
            assert set(others.values()) == {"healthy"}, (name, others)
            # Still serving: credentials come from the cache.
            query = await client.get("/examples/postgres/query")
            assert query.status_code == 200, (name, describe(query))
    finally:
        started = await asyncio.to_thread(stack.cli, "start", "vault")
        assert started.returncode == 0, started.stderr

    async def healthy_again() -> bool:
        for client in having(apps, "vault-health-next-check").values():
            if (await client.get("/health/all")).status_code != 200:
                return False
        return True

    await wait_for(healthy_again, 60, "both apps to report Vault healthy again")
