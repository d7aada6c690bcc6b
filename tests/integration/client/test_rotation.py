"""A PostgreSQL password rotated in Vault and on the server is picked up without a restart."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import asyncpg
import pytest

from devstack_client import DevStackClient
from tests.support import LogCapture, StackUnderTest, client_settings, root_vault, wait_for


async def alter_password(stack: StackUnderTest, user: str, password: str) -> None:
    with root_vault(stack) as vault:
        admin = vault.kv_get("admin/postgres")
    assert admin is not None
    conn = await stack.postgres(creds=admin, database="postgres")
    try:
        escaped = password.replace("'", "''")
        await conn.execute(f"ALTER ROLE \"{user}\" WITH PASSWORD '{escaped}'")
    finally:
        await conn.close()


def write_secret(stack: StackUnderTest, data: dict[str, Any]) -> int:
    with root_vault(stack) as vault:
        result = vault.write("secret/data/postgres", {"data": data})
    return int(result["data"]["version"])


async def test_rotated_password_is_picked_up_without_restart(
    stack: StackUnderTest, captured_logs: LogCapture
) -> None:
    with root_vault(stack) as vault:
        original = vault.kv_get("postgres")
    assert original is not None
    new_password = secrets.token_urlsafe(24)
    captured_logs.extra_secrets.append(new_password)
    settings = client_settings(stack, secret_ttl=2.0)
    async with DevStackClient(settings, dependencies=["postgres"]) as client:
        repo = client.items("postgres")
        await repo.query()
        old_version = client.postgres.version
        try:
            await alter_password(stack, original["user"], new_password)
            new_version = await asyncio.to_thread(
                write_secret, stack, {**original, "password": new_password}
            )
            assert new_version != old_version

            async def rotated() -> bool:
                await repo.query()  # the application keeps serving meanwhile
                return client.postgres.version == new_version

            await wait_for(rotated, 10, "the pool to pick up the new password", interval=0.1)
            assert client.postgres.rebuilds == 1
            # The rebuilt pool opens new connections with the new password.
            async with client.postgres.operation("check") as pool:
                await pool.expire_connections()
            item = await repo.query()
            assert item.database == "postgres"
            with pytest.raises(asyncpg.InvalidPasswordError):
                await stack.postgres(creds=original)
        finally:
            await alter_password(stack, original["user"], original["password"])
            await asyncio.to_thread(write_secret, stack, original)

        async def restored() -> bool:
            return client.postgres.rebuilds >= 2

        await wait_for(restored, 10, "the pool to pick up the original password", interval=0.1)
        await repo.query()
    assert stack.creds("postgres")["password"] == original["password"]
