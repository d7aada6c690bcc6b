"""A secret-id Vault refuses (destroyed, expired) is not tried again and again: Vault locks an
AppRole out after a few failed logins. A new secret-id file is used as soon as it is there."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from devstack_client import ClientSettings, DependencyUnavailable, VaultClient
from tests.support import FakeVault


class RotatingVault(FakeVault):
    """A fake Vault whose accepted secret-id can change (the old one then dies)."""

    accepted: str = "secret-1"

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/auth/approle/login":
            self.calls.append("auth/approle/login")
            if json.loads(request.content)["secret_id"] != self.accepted:
                return httpx.Response(400, json={"errors": ["invalid role or secret ID"]})
            request = httpx.Request(
                "POST", request.url, json={"role_id": "role", "secret_id": "secret"}
            )
            self.calls.pop()
        return super().handler(request)


def write_secret_id(path: Path, value: str) -> None:
    new = path.with_suffix(".new")
    new.write_text(value)
    new.chmod(0o600)
    new.replace(path)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret-id"
    write_secret_id(path, "secret-1")
    return path


async def test_refused_credentials_wait_and_a_new_secret_id_is_used_at_once(
    secret_file: Path,
) -> None:
    fake = RotatingVault()
    settings = ClientSettings(
        vault_role_id=SecretStr("role"), vault_secret_id_file=secret_file, login_refused_retry=3600
    )
    vault = VaultClient(settings, transport=httpx.MockTransport(fake.handler))
    await vault.start()
    try:
        assert await vault.kv_read("postgres") is not None
        # The secret-id dies (destroyed in Vault) and so does the token.
        fake.accepted = "secret-2"
        fake.tokens.clear()
        with pytest.raises(DependencyUnavailable):
            await vault.kv_read("postgres")
        assert vault.login_refusals == 1
        sent = len(fake.calls)
        for _ in range(50):  # a refresh loop asking again and again
            with pytest.raises(DependencyUnavailable, match="not retried"):
                await vault.kv_read("postgres")
        assert vault.login_refusals == 1
        assert len(fake.calls) == sent, fake.calls[sent:]  # not even a request to Vault
        # A new secret-id file (what `devstack vault` writes): used by the next attempt.
        write_secret_id(secret_file, "secret-2")
        assert await vault.kv_read("postgres") is not None
        assert vault.login_refusals == 1
        assert vault.logins == 2
    finally:
        await vault.aclose()


async def test_refused_credentials_are_tried_again_after_the_wait(secret_file: Path) -> None:
    now = [1000.0]
    fake = RotatingVault()
    settings = ClientSettings(
        vault_role_id=SecretStr("role"), vault_secret_id_file=secret_file, login_refused_retry=960
    )
    vault = VaultClient(settings, transport=httpx.MockTransport(fake.handler), clock=lambda: now[0])
    await vault.start()
    try:
        fake.accepted = "secret-2"
        fake.tokens.clear()
        with pytest.raises(DependencyUnavailable):
            await vault.kv_read("postgres")
        now[0] += 959
        with pytest.raises(DependencyUnavailable, match="not retried"):
            await vault.kv_read("postgres")
        assert vault.login_refusals == 1
        now[0] += 2  # past the wait (longer than OpenBao's 15-minute lockout counter reset)
        fake.accepted = "secret-1"  # say the operator repaired the role meanwhile
        assert await vault.kv_read("postgres") is not None
    finally:
        await vault.aclose()
