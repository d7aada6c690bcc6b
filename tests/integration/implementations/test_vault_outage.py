"""Vault stopped under every implementation: data keeps flowing on cached credentials, health
says Vault is degraded (503, the report says which check); Vault back, health is whole again
without a restart."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.parity.compare import describe
from tests.parity.implementations import having
from tests.support import StackUnderTest, wait_for

pytestmark = pytest.mark.integration

# How long an implementation may take to notice: its Vault probe runs at least this often.
NOTICE_WITHIN = 30.0


async def vault_check(client: httpx.AsyncClient) -> dict[str, Any]:
    report: dict[str, Any] = (await client.get("/health/all")).json()
    return report


async def use_data_routes(name: str, client: httpx.AsyncClient) -> None:
    key = f"/examples/cache/vault-outage-{name}"
    for method, path, body, status in (
        ("GET", "/examples/postgres/query", None, 200),
        ("GET", "/examples/mysql/items", None, 200),
        ("GET", "/examples/mongodb/items", None, 200),
        ("PUT", key, {"value": "still here", "ttl_seconds": 60}, None),
        ("GET", key, None, 200),
        ("GET", "/examples/vault/secret/postgres", None, 200),  # from the cache
        ("POST", f"/examples/messaging/queues/vault-outage-{name}/messages", {"n": 1}, None),
        ("GET", f"/examples/messaging/queues/vault-outage-{name}/messages", None, 200),
    ):
        response = await client.request(method, path, json=body)
        ok = response.status_code == status if status else response.is_success
        assert ok, (name, describe(response))


async def test_vault_down_then_back(
    apps: dict[str, httpx.AsyncClient], stack: StackUnderTest
) -> None:
    implementations = having(apps, "vault-health-next-check")
    for name, client in implementations.items():
        assert (await client.get("/health/all")).status_code == 200, name
        await use_data_routes(name, client)
    stopped = await asyncio.to_thread(stack.cli, "stop", "vault")
    assert stopped.returncode == 0, stopped.stderr
    try:
        for name, client in implementations.items():

            async def degraded(client: httpx.AsyncClient = client) -> bool:
                status: str = (await vault_check(client))["checks"]["vault"]["status"]
                return status == "degraded"

            await wait_for(degraded, NOTICE_WITHIN, f"{name} to report Vault degraded", 0.5)
            response = await client.get("/health/all")
            assert response.status_code == 503, (name, describe(response))
            assert int(response.headers["retry-after"]) >= 1, name
            report = response.json()
            assert report["status"] == "degraded", (name, report)
            others = {k: v["status"] for k, v in report["checks"].items() if k != "vault"}
            assert set(others.values()) == {"healthy"}, (name, others)
            await use_data_routes(name, client)
    finally:
        started = await asyncio.to_thread(stack.cli, "start", "vault")
        assert started.returncode == 0, started.stderr
    for name, client in implementations.items():

        async def whole(client: httpx.AsyncClient = client) -> bool:
            return (await client.get("/health/all")).status_code == 200

        await wait_for(whole, 60, f"{name} to report every dependency healthy again", 0.5)
        await use_data_routes(name, client)
