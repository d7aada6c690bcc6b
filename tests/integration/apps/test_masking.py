"""Masking on every secret route of both apps: no secret value from Vault ever reaches a client."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from devstack_cli.vault import Vault
from tests.parity.compare import assert_problem, describe, schema_errors
from tests.parity.implementations import STACK_APPS, load_spec
from tests.support import StackUnderTest

pytestmark = pytest.mark.integration

SERVICES = ("postgres", "mysql", "mongodb", "redis", "rabbitmq")
MASK = "********"


def masked_substrings() -> list[str]:
    found: list[str] = load_spec()["components"]["schemas"]["VaultSecret"][
        "x-masked-key-substrings"
    ]
    return found


def looks_secret(key: str) -> bool:
    return any(part in key.lower() for part in masked_substrings())


def every_secret_value(stack: StackUnderTest) -> set[str]:
    """Every value of a secret-looking key in Vault: the apps' secrets and the admin ones."""
    values: set[str] = set()
    with stack.login("code_first") as vault:  # the apps' own AppRole reads these
        for service in SERVICES:
            secret = vault.kv_get(service)
            assert secret is not None
            values |= {str(v) for k, v in secret.items() if looks_secret(k)}
    with Vault.for_settings(stack.settings, stack.root_token()) as root:
        for service in ("postgres", "mysql", "rabbitmq"):
            admin = root.kv_get(f"admin/{service}")
            if admin:
                values |= {str(v) for k, v in admin.items() if looks_secret(k)}
    values.add(stack.root_token())
    values.discard("")
    assert any(len(v) >= 16 for v in values), "expected generated passwords in Vault"
    return values


def as_text(value: Any) -> str:
    """How a non-string Vault value reads in VaultSecret.data (strings only): its JSON text."""
    return value if isinstance(value, str) else json.dumps(value)


def assert_no_secret(response: httpx.Response, secrets: set[str]) -> None:
    text = response.text
    leaked = [s[:4] + "..." for s in secrets if s in text]
    assert not leaked, f"secret values leaked by {response.request.url}: {leaked}"


@pytest.mark.parametrize("app", STACK_APPS)
async def test_every_secret_route_masks(
    apps: dict[str, httpx.AsyncClient], stack: StackUnderTest, app: str
) -> None:
    client = apps[app]
    secrets = every_secret_value(stack)
    with stack.login("code_first") as vault:
        stored: dict[str, dict[str, Any]] = {s: vault.kv_get(s) or {} for s in SERVICES}
    for service in SERVICES:
        response = await client.get(f"/examples/vault/secret/{service}")
        assert response.status_code == 200, describe(response)
        assert_no_secret(response, secrets)
        body = response.json()
        assert not schema_errors(body, "VaultSecret"), schema_errors(body, "VaultSecret")
        assert body["service"] == service
        assert body["path"] == f"secret/{service}"
        assert set(body["data"]) == set(stored[service])
        expected_masked = sorted(k for k in stored[service] if looks_secret(k))
        assert "password" in expected_masked
        assert body["masked_keys"] == expected_masked
        for key, value in body["data"].items():
            if key in expected_masked:
                assert value == MASK, (service, key)
            else:
                assert value == as_text(stored[service][key]), (service, key, value)
        for key in stored[service]:
            one = await client.get(f"/examples/vault/secret/{service}/{key}")
            assert one.status_code == 200, describe(one)
            assert_no_secret(one, secrets)
            assert not schema_errors(one.json(), "VaultSecretValue")
            masked = key in expected_masked
            assert one.json()["masked"] is masked, (service, key)
            assert one.json()["service"] == service
            assert one.json()["key"] == key
            if masked:
                assert one.json()["value"] == MASK
        # Admin secrets are never reachable, whatever the spelling.
        for path in (
            f"/examples/vault/secret/admin/{service}",
            f"/examples/vault/secret/admin%2F{service}",
            f"/examples/vault/secret/{service}/..%2F..%2Fadmin%2F{service}",
        ):
            refused = await client.get(path)
            assert_no_secret(refused, secrets)
            assert refused.status_code == 404, describe(refused)
            assert_problem(refused, 404)
