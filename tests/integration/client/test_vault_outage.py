"""Vault stopped: databases, cache and queue keep working on cached credentials, health says
Vault is down and the credentials are stale; when Vault is back, renewal resumes."""

from __future__ import annotations

import asyncio

import pytest

from devstack_client import DevStackClient
from tests.support import AppRole, StackUnderTest, approle_settings, wait_for


async def use_everything(client: DevStackClient) -> None:
    for backend in ("postgres", "mysql", "mongodb"):
        await client.items(backend).query()
    await client.cache.put("vault-outage", "still here", ttl_seconds=30)
    assert (await client.cache.get("vault-outage")).value == "still here"
    await client.queues.publish("devstack.client.outage", {"during": "outage"})
    assert (await client.queues.consume("devstack.client.outage")).messages


@pytest.mark.parametrize("short_ttl_approle", [("8s", "10m")], indirect=True)
async def test_vault_outage(stack: StackUnderTest, short_ttl_approle: AppRole) -> None:
    settings = approle_settings(stack, short_ttl_approle, secret_ttl=4.0, backoff_max=2.0)
    async with DevStackClient(settings) as client:
        await use_everything(client)
        assert (await client.health()).status == "healthy"
        stopped = await asyncio.to_thread(stack.cli, "stop", "vault")
        assert stopped.returncode == 0, stopped.stderr
        try:

            async def vault_reported_down() -> bool:
                # Every secret goes stale secret_ttl after its last read; Vault may have stopped
                # in the middle of a refresh, so they need not all go stale at the same moment.
                vault = (await client.health()).checks["vault"]
                stale = set(vault.details.get("stale_secrets") or ())
                return vault.status != "healthy" and stale == set(client.dependencies)

            await wait_for(vault_reported_down, 15, "health to report Vault down", interval=0.2)
            report = await client.health()
            vault = report.checks["vault"]
            assert vault.status == "degraded"
            assert vault.error == "unavailable"
            assert vault.details["reachable"] is False
            assert set(vault.details["stale_secrets"]) == {
                "postgres",
                "mysql",
                "mongodb",
                "redis",
                "rabbitmq",
            }
            assert report.status == "degraded"
            assert all(report.checks[d].status == "healthy" for d in client.dependencies)
            await use_everything(client)  # cached credentials, pools unaffected
            renewals_before = client.vault.renewals + client.vault.logins
        finally:
            started = await asyncio.to_thread(stack.cli, "start", "vault")
            assert started.returncode == 0, started.stderr

        async def vault_back() -> bool:
            vault = (await client.health()).checks["vault"]
            return vault.status == "healthy"

        await wait_for(vault_back, 20, "health to report Vault back", interval=0.2)

        async def renewed() -> bool:
            return client.vault.renewals + client.vault.logins > renewals_before

        await wait_for(renewed, 15, "the token to be renewed again", interval=0.2)
        assert client.secrets.stale_paths() == []
        await use_everything(client)
        await client.queues.delete("devstack.client.outage")
