"""A dead secret-id under a running client: one refused login, then none with the same secret-id
(OpenBao locks the AppRole out after 5 failures, refusing even a good secret-id for 15 minutes);
a new secret-id written to the file is picked up without a restart, and it logs in, which a
locked-out role could not."""

from __future__ import annotations

import asyncio
import os

import pytest

from devstack_client import DevStackClient
from tests.support import (
    AppRole,
    LogCapture,
    StackUnderTest,
    approle_settings,
    root_vault,
    wait_for,
)


def write_secret_id(role: AppRole, value: str) -> None:
    new = role.secret_id_file.with_suffix(".new")
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, value.encode())
    os.close(fd)
    new.replace(role.secret_id_file)


async def use(client: DevStackClient) -> None:
    await client.items("postgres").query()
    await client.cache.put("secret-id-test", "x", ttl_seconds=30)


@pytest.mark.parametrize("short_ttl_approle", [("3s", "6s")], indirect=True)
async def test_a_dead_secret_id_is_not_retried_and_a_new_one_is_picked_up(
    stack: StackUnderTest, short_ttl_approle: AppRole, captured_logs: LogCapture
) -> None:
    role = short_ttl_approle
    # Retries as eager as they get: without the wait for refused credentials, the client would
    # log in about every second and lock the role out within seconds.
    settings = approle_settings(stack, role, secret_ttl=2.0, backoff_initial=0.2, backoff_max=1.0)
    async with DevStackClient(settings) as client:
        await use(client)
        dead = role.secret_id_file.read_text().strip()
        with root_vault(stack) as vault:
            vault.write(f"auth/approle/role/{role.name}/secret-id/destroy", {"secret_id": dead})

        async def refused() -> bool:
            await use(client)  # pools keep working on their cached credentials meanwhile
            return client.vault.login_refusals >= 1

        await wait_for(refused, 60, "the token to expire and the dead secret-id to be refused")
        # Several seconds of refresh attempts (each second, from the secret cache and the token
        # schedule): not one more login with the same dead secret-id.
        for _ in range(16):
            await use(client)
            await asyncio.sleep(0.5)  # time must pass: nothing may happen during it
        assert client.vault.login_refusals == 1
        assert (await client.health()).checks["vault"].status == "degraded"

        with root_vault(stack) as vault:
            fresh = vault.write(f"auth/approle/role/{role.name}/secret-id", {})["data"]["secret_id"]
        captured_logs.extra_secrets.append(fresh)
        logins = client.vault.logins
        write_secret_id(role, fresh)

        async def back() -> bool:
            report = await client.health()
            return client.vault.logins > logins and report.checks["vault"].status == "healthy"

        await wait_for(back, 60, "the new secret-id to be picked up without a restart")
        assert client.vault.login_refusals == 1
        await use(client)
        await client.cache.delete("secret-id-test")
