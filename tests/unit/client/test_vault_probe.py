"""The Vault check asks Vault (sys/health, no token) at each health check: a Vault that died is
reported at once, not at the next token or secret refresh minutes later."""

from __future__ import annotations

import asyncio

import httpx

from devstack_client import VaultClient
from tests.support import FakeVault, fake_vault_settings


class ProbedVault(FakeVault):
    sealed: bool = False
    health_calls: int = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/sys/health":
            self.health_calls += 1
            if self.down:
                raise httpx.ConnectError("connection refused", request=request)
            assert "x-vault-token" not in request.headers  # no token: nothing to audit
            return httpx.Response(503 if self.sealed else 200, json={"sealed": self.sealed})
        return super().handler(request)


async def test_a_dead_vault_is_reported_by_the_next_probe() -> None:
    fake = ProbedVault()
    vault = VaultClient(fake_vault_settings(), transport=httpx.MockTransport(fake.handler))
    await vault.start()
    try:
        assert (await vault.probe()).reachable
        requests = vault.requests
        fake.down = True
        status = await vault.probe()  # no other call since: the probe alone finds out
        assert not status.reachable
        assert status.down_for is not None
        fake.down, fake.sealed = False, True
        status = await vault.probe()
        assert not status.reachable
        assert "sealed" in (status.last_error or "")
        fake.sealed = False
        assert (await vault.probe()).reachable
        assert vault.requests == requests  # probes are not authenticated requests
    finally:
        await vault.aclose()


async def test_concurrent_probes_share_one_request() -> None:
    fake = ProbedVault()
    vault = VaultClient(fake_vault_settings(), transport=httpx.MockTransport(fake.handler))
    await vault.start()
    try:
        statuses = await asyncio.gather(*(vault.probe() for _ in range(20)))
        assert all(s.reachable for s in statuses)
        assert fake.health_calls == 1
    finally:
        await vault.aclose()
