"""The Vault client against an in-process fake Vault (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from devstack_client import ClientSettings, ConfigurationError, DependencyUnavailable, VaultClient
from devstack_client.errors import VaultError
from devstack_client.metrics import Metrics
from devstack_client.vault import vault_trust
from tests.support import FakeVault, fake_vault_settings, wait_for


def client_for(fake: FakeVault, **extra: Any) -> VaultClient:
    return VaultClient(fake_vault_settings(**extra), transport=httpx.MockTransport(fake.handler))


async def test_login_and_read_a_secret() -> None:
    fake = FakeVault()
    async with client_for(fake) as vault:
        secret = await vault.kv_read("postgres")
        assert secret is not None
        assert secret.version == 4
        assert secret.data["password"] == "pw-123456"
        assert await vault.kv_read("nothing") is None
        assert vault.logins == 1
    assert fake.calls[-1] == "auth/token/revoke-self", "the token dies with the client"


async def test_a_refused_token_is_replaced_once_for_many_concurrent_callers() -> None:
    fake = FakeVault()
    async with client_for(fake) as vault:
        fake.tokens.clear()  # every token Vault knew is gone (expired, revoked)
        results = await asyncio.gather(*(vault.kv_read("postgres") for _ in range(10)))
        assert all(r is not None for r in results)
        assert fake.issued == 2, "one login for all ten callers"


async def test_a_refusal_of_a_token_replaced_in_flight_is_asked_again() -> None:
    # A read sent with the old token is answered 403 only after another caller's login replaced
    # that token: asking Vault about the (new) token would hear it is fine, yet the read must not
    # fail as a permission error.
    fake = FakeVault()
    held = asyncio.Event()
    release = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/secret/data/postgres" and not held.is_set():
            held.set()
            await release.wait()
        return fake.handler(request)

    settings = fake_vault_settings()
    async with VaultClient(settings, transport=httpx.MockTransport(handler)) as vault:
        first = asyncio.create_task(vault.kv_read("postgres"))

        async def in_flight() -> bool:
            return held.is_set()

        await wait_for(in_flight, timeout=10, what="the first read in flight", interval=0.01)
        fake.tokens.clear()  # the token dies while the first read is in flight
        assert await vault.kv_read("other") is None  # a 403, a check, a new login
        assert fake.issued == 2
        release.set()
        secret = await first
        assert secret is not None
        assert fake.issued == 2, "the in-flight read needed no login of its own"


async def test_a_genuine_permission_denied_does_not_log_in_again() -> None:
    fake = FakeVault()
    async with client_for(fake) as vault:
        with pytest.raises(VaultError) as caught:
            await vault.kv_read("admin/postgres")
        assert caught.value.status == 403
        assert fake.issued == 1


async def test_wrong_approle_credentials_are_a_configuration_error() -> None:
    fake = FakeVault()
    vault = client_for(fake, vault_secret_id="wrong")
    with pytest.raises(ConfigurationError, match="refused"):
        await vault.start()
    await vault.aclose()


async def test_start_retries_while_vault_is_unreachable() -> None:
    fake = FakeVault(down=True)
    vault = client_for(fake, backoff_initial=0.05, backoff_max=0.1, vault_start_timeout=5)

    async def come_back() -> None:
        async def tried_thrice() -> bool:
            return fake.calls.count("auth/approle/login") >= 3

        await wait_for(tried_thrice, 4, "three logins tried while Vault is down", interval=0.01)
        fake.down = False

    restore = asyncio.create_task(come_back())
    try:
        await vault.start()
        assert vault.logins == 1
        assert fake.calls.count("auth/approle/login") >= 3
    finally:
        await restore
        await vault.aclose()


async def test_start_gives_up_after_the_start_timeout() -> None:
    fake = FakeVault(down=True)
    vault = client_for(fake, backoff_initial=0.05, backoff_max=0.1, vault_start_timeout=0.3)
    with pytest.raises(DependencyUnavailable):
        await vault.start()
    await vault.aclose()


async def test_short_ttl_token_is_renewed_then_replaced_and_never_fails_a_call() -> None:
    """TTL 0.3 s, max TTL 1 s: renewals, re-logins, and every read succeeds meanwhile.

    Not timed: it reads until three renewals and three logins happened (however slow the
    machine), and a read that found its token expired (a late schedule on a loaded machine)
    must still succeed. That the schedule acts before expiry is test_token_schedule's, on a
    simulated clock."""
    fake = FakeVault(ttl=0.3, max_ttl=1.0)
    metrics = Metrics()
    vault = VaultClient(
        fake_vault_settings(backoff_initial=0.05),
        transport=httpx.MockTransport(fake.handler),
        metrics=metrics,
    )
    await vault.start()
    try:

        async def renewed_and_replaced() -> bool:
            assert await vault.kv_read("postgres") is not None
            return vault.renewals >= 3 and vault.logins >= 3

        # 120 s: a bound for a hung test, not a speed requirement.
        await wait_for(renewed_and_replaced, 120, "3 renewals and 3 logins", interval=0.02)
        assert metrics.registry.get_sample_value(
            "devstack_vault_renewals_total", {"result": "success"}
        ) == pytest.approx(vault.renewals)
        ttl = metrics.registry.get_sample_value("devstack_vault_token_ttl_seconds")
        assert ttl is not None
        assert 0 <= ttl <= 0.3
    finally:
        await vault.aclose()


async def test_renewal_resumes_after_an_outage() -> None:
    fake = FakeVault(ttl=0.4, max_ttl=100)
    vault = client_for(fake, backoff_initial=0.05, backoff_max=0.1)
    await vault.start()
    try:
        fake.down = True
        await asyncio.sleep(0.6)  # time must pass: the token expires while Vault is away
        assert not vault.status().reachable
        assert vault.status().down_for is not None
        fake.down = False

        async def recovered() -> bool:
            status = vault.status()
            return status.reachable and status.authenticated and vault.logins >= 2

        await wait_for(recovered, 10, "the client to log in again", interval=0.02)
        status = vault.status()
        assert status.reachable
        assert status.authenticated
        assert vault.logins >= 2, "the expired token was replaced by a new login"
        assert await vault.kv_read("postgres") is not None
    finally:
        await vault.aclose()


async def test_an_explicit_root_token_is_refused() -> None:
    fake = FakeVault(policies=["root"])
    fake.tokens["s.rootrootrootrootrootroot"] = {"exp": time.monotonic() + 100, "max": 1e12}
    vault = VaultClient(
        ClientSettings(vault_token=SecretStr("s.rootrootrootrootrootroot")),
        transport=httpx.MockTransport(fake.handler),
    )
    with pytest.raises(ConfigurationError, match="root token"):
        await vault.start()
    await vault.aclose()


async def test_an_explicit_token_is_used_with_a_warning() -> None:
    fake = FakeVault()
    fake.tokens["s.staticstaticstaticstati"] = {"exp": time.monotonic() + 100, "max": 1e12}
    vault = VaultClient(
        ClientSettings(vault_token=SecretStr("s.staticstaticstaticstati")),
        transport=httpx.MockTransport(fake.handler),
    )
    with capture_logs() as logs:
        async with vault:
            assert await vault.kv_read("postgres") is not None
            assert vault.logins == 0
    assert any(e["log_level"] == "warning" and "explicitly" in e["event"] for e in logs)
    assert "auth/token/revoke-self" not in fake.calls, "a token we were given is not ours to revoke"


def test_plain_http_vault_trusts_nothing_and_loads_no_ca_store() -> None:
    """httpx's default would load certifi's ~140 CAs (3.6 MB) into a client that speaks HTTP."""
    context = vault_trust(fake_vault_settings(vault_addr="http://127.0.0.1:8200"))
    assert isinstance(context, ssl.SSLContext)
    assert context.cert_store_stats()["x509_ca"] == 0
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_https_vault_trusts_the_stack_ca_file_else_the_system(
    foreign_ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No stack around: a developer's exported state folder would give its CA file.
    monkeypatch.delenv("DEVSTACK_STATE_DIR", raising=False)
    monkeypatch.delenv("DEVSTACK_CA_FILE", raising=False)
    context = vault_trust(
        fake_vault_settings(vault_addr="https://vault.example:8200", ca_file=foreign_ca_file)
    )
    assert isinstance(context, ssl.SSLContext)
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "Not Our CA"),),)]
    assert vault_trust(fake_vault_settings(vault_addr="https://vault.example:8200")) is True
