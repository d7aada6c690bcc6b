"""A PostgreSQL password rotated in Vault and on the server is picked up without a restart."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import asyncpg
import pytest

from devstack_client import DevStackClient
from tests.conftest import StackUnderTest
from tests.integration.client.conftest import _capture, client_settings, root_vault


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


async def test_rotated_password_is_picked_up_without_restart(stack: StackUnderTest) -> None:
    with root_vault(stack) as vault:
        original = vault.kv_get("postgres")
    assert original is not None
    new_password = secrets.token_urlsafe(24)
    _capture.extra_secrets.append(new_password)
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
            deadline = time.monotonic() + 10
            while client.postgres.version != new_version and time.monotonic() < deadline:
                await repo.query()  # the application keeps serving meanwhile
                await asyncio.sleep(0.1)
            assert client.postgres.version == new_version != old_version
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
        deadline = time.monotonic() + 10
        while client.postgres.rebuilds < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await repo.query()
    assert stack.creds("postgres")["password"] == original["password"]
